#!/usr/bin/env python3
"""A gmqtt publisher for bench/mqtt_bench.py: N clients, one message in flight each.

    python3 bench/peers/gmqtt_pub.py --port PORT --topic T [--clients 10] [--qos 1]
        [--size 64] (--duration S | --count N) [--client-prefix P]

Each client (gmqtt, MQTT 3.1.1, clean session, on uvloop when it is importable) connects,
then all publish at once, as fast as they can: at QoS 1 and 2 a client publishes its
next message once the broker acknowledged the last one (PUBACK; QoS 2: when gmqtt
drops the message from its in-flight store, which gmqtt >= 0.8 does on PUBCOMP and
older versions on PUBREC); at QoS 0 nothing answers, so a client hands the message to
its transport and yields to the event loop (the other clients' turn), waiting while
its transport holds more than --max-buffer bytes the kernel has not taken (gmqtt has
no flow control of its own). Each client stops at --count messages or at --duration
seconds, whichever is given; then all disconnect.

Prints one JSON object on stdout: messages published and acked (acked: QoS 1/2 only),
errors, the publish phase's length (from the common start to the last client's last
ack or write; connects excluded, they are connect_s), msg/s over it, and the mean and
max time per message (publish to ack; QoS 0: publish to the next turn).

gmqtt gives no hook on a PUBACK/PUBCOMP: the ack is seen through the in-flight store
that gmqtt's Client accepts (persistent_storage=), which the client empties on the
ack. gmqtt logs to the "gmqtt" logger: silenced here below warnings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

import gmqtt
import gmqtt.storage
from gmqtt.mqtt.constants import MQTTv311

try:
    import uvloop
except ImportError:              # the bench still runs on asyncio's own loop, and says so
    uvloop = None  # type: ignore[assignment]

# the client's default in-flight store: PersistentStorage in gmqtt >= 0.8, before it
# HeapPersistentStorage
_Storage: Any = (getattr(gmqtt.storage, "PersistentStorage", None)
                 or gmqtt.storage.HeapPersistentStorage)


class AckStorage(_Storage):
    """gmqtt's in-memory in-flight store, which also wakes the publisher when gmqtt
    removes a message (its ack arrived). One per client: one message in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.waiter: asyncio.Future[int] | None = None

    def remove_message_by_mid(self, mid: int) -> Any:
        # gmqtt >= 0.8 calls this synchronously, older ones schedule the coroutine it
        # returns: either way it runs when the ack is handled
        result = super().remove_message_by_mid(mid)
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(mid)
        return result


def transport_buffer(client: gmqtt.Client) -> int:
    """Bytes the client's transport holds that the kernel has not taken (0 if gmqtt's
    internals differ from what is expected)."""
    conn = getattr(client, "_connection", None)
    transport = getattr(conn, "_transport", None)
    try:
        return int(transport.get_write_buffer_size())  # type: ignore[union-attr]
    except (AttributeError, TypeError):
        return 0


class Pub:
    def __init__(self, args: argparse.Namespace, n: int) -> None:
        self.args = args
        self.storage = AckStorage()
        self.client = gmqtt.Client(f"{args.client_prefix}-{n}", clean_session=True,
                                   persistent_storage=self.storage)
        self.published = 0
        self.acked = 0
        self.errors = 0
        self.lat_sum = 0.0
        self.lat_max = 0.0
        self.last_done = 0.0

    async def run(self, start: asyncio.Event, deadline_box: list[float]) -> None:
        args = self.args
        await start.wait()
        deadline = deadline_box[0]
        loop = asyncio.get_running_loop()
        client, storage = self.client, self.storage
        topic, payload, qos = args.topic, b"x" * args.size, args.qos
        count = args.count if args.count is not None else -1
        max_buffer, timeout = args.max_buffer, args.ack_timeout
        clock = time.perf_counter
        lat_sum, lat_max = 0.0, 0.0
        while count < 0 or self.published < count:
            if deadline and loop.time() >= deadline:
                break
            t0 = clock()
            if qos:
                w = storage.waiter = loop.create_future()
                client.publish(topic, payload, qos=qos)
                self.published += 1
                try:
                    await asyncio.wait_for(w, timeout)
                except asyncio.TimeoutError:
                    self.errors += 1
                    break
                self.acked += 1
            else:
                client.publish(topic, payload, qos=0)
                self.published += 1
                if max_buffer and transport_buffer(client) > max_buffer:
                    while transport_buffer(client) > max_buffer // 2:
                        await asyncio.sleep(0.0005)
                else:
                    await asyncio.sleep(0)
            dt = clock() - t0
            lat_sum += dt
            if dt > lat_max:
                lat_max = dt
        self.last_done = time.perf_counter()
        self.lat_sum, self.lat_max = lat_sum, lat_max


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    pubs = [Pub(args, n) for n in range(args.clients)]
    t_conn = time.perf_counter()
    await asyncio.gather(*(p.client.connect(args.host, args.port, keepalive=60,
                                            version=MQTTv311) for p in pubs))
    connect_s = time.perf_counter() - t_conn
    start = asyncio.Event()
    loop = asyncio.get_running_loop()
    deadline_box = [0.0]
    tasks = [asyncio.ensure_future(p.run(start, deadline_box)) for p in pubs]
    await asyncio.sleep(0)                  # every task waiting on the start event
    t0 = time.perf_counter()
    if args.duration is not None:
        deadline_box[0] = loop.time() + args.duration
    start.set()
    await asyncio.gather(*tasks)
    elapsed = max(p.last_done for p in pubs) - t0
    await asyncio.gather(*(p.client.disconnect() for p in pubs))
    published = sum(p.published for p in pubs)
    acked = sum(p.acked for p in pubs)
    done = acked if args.qos else published
    return {
        "tool": "gmqtt", "gmqtt_version": getattr(gmqtt, "__version__", "?"),
        "loop": "uvloop" if uvloop is not None else "asyncio",
        "python": sys.version.split()[0], "clients": args.clients, "qos": args.qos,
        "payload_bytes": args.size, "published": published,
        "acked": acked if args.qos else None,
        "errors": sum(p.errors for p in pubs), "connect_s": round(connect_s, 4),
        "elapsed_s": round(elapsed, 6),
        "msg_per_s": round(done / elapsed, 1) if elapsed > 0 else None,
        "lat_mean_ms": round(sum(p.lat_sum for p in pubs) / published * 1e3, 4)
        if published else None,
        "lat_max_ms": round(max(p.lat_max for p in pubs) * 1e3, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--qos", type=int, default=1, choices=[0, 1, 2])
    ap.add_argument("--size", type=int, default=64, help="payload bytes")
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--duration", type=float, help="seconds of publishing")
    how.add_argument("--count", type=int, help="messages per client")
    ap.add_argument("--client-prefix", default="gmqtt-bench")
    ap.add_argument("--ack-timeout", type=float, default=10.0,
                    help="seconds a client waits for an ack before it gives up")
    ap.add_argument("--max-buffer", type=int, default=64 << 10,
                    help="QoS 0: bytes a client's transport may hold before it waits "
                         "(0: never waits)")
    args = ap.parse_args()
    logging.getLogger("gmqtt").setLevel(logging.WARNING)
    if uvloop is not None:
        uvloop.install()
    out = asyncio.run(main_async(args))
    print(json.dumps(out))
    return 0 if not out["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
