#!/usr/bin/env python3
"""hammer's MQTT publisher against mqtt-benchmark, mqtt-stresser and gmqtt, side by side.

    python bench/mqtt_bench.py --mqtt-benchmark /tmp/mqtt-benchmark-build/mqtt-benchmark \\
        [--mqtt-stresser /tmp/mqtt-stresser-build/mqtt-stresser] [--gmqtt | --no-gmqtt] \\
        [--rounds 3] [--duration 3] [--qos 0 1 2] [--qos0-rate auto|N] [--json out.json]

The peers, each optional: krylovsk/mqtt-benchmark (Go, paho; --mqtt-benchmark),
inovex/mqtt-stresser (Go, paho; --mqtt-stresser) and gmqtt (Python asyncio, run by
bench/peers/gmqtt_pub.py; on by default when importable, pip install '.[bench]').

One private mosquitto (tests/mqttpeer.py's Broker: a free 127.0.0.1 port, Nagle off, no
inflight or queue limits, no persistence) pinned to CPU 0; every client run pinned to
CPU 1 (with one CPU nothing is pinned, and the report says so). 10 clients, 64-byte
payloads, one message in flight per client. For each QoS, in alternated rounds:

- mqtt-benchmark `-clients 10 -count N -size 64 -qos Q -message-interval 0 -format json
  -quiet`, N per client picked by a calibration run so that a run lasts about --duration
  (its -message-interval defaults to 1 s between messages: 0 removes that pause);
- hammer `-c 10 -d Ds --qos Q --payload-size 64 --json ... -q`, closed loop at QoS 1 and
  2. QoS 0 has no closed loop in hammer (nothing answers), so two open-loop runs:
  `hammer` at --qos0-rate (auto: the highest of a ramp, 100k/s upwards in 25k/s steps,
  that hammer holds against this broker with the subscriber on: no saturation note, every
  message delivered, and delivered within 50 ms of hammer's exit, i.e. the broker keeps
  up rather than draining socket buffers afterwards) and `hammer@peer`, run right after
  mqtt-benchmark in each round, at the rate mqtt-benchmark just reached (the same message
  rate as the peer: CPU per message at equal load).
- mqtt-stresser `-num-clients 10 -num-messages N -publisher-qos Q -subscriber-qos 0
  -constant-payload <64 bytes> -topic-base-path T -no-progress`, N calibrated as for
  mqtt-benchmark. Each of its clients is a publisher and a subscriber to its own topic
  (T/HOST/workerI-RANDOM: the counting subscriber takes T/#), publishing one message at
  a time (it waits for paho's token); its CPU and the broker's include that second
  delivery of every message.
- gmqtt_pub.py `--clients 10 --qos Q --size 64 --duration D`: 10 gmqtt clients in one
  asyncio process (uvloop when importable), one message in flight each.

Measured per run: messages the client claims (hammer counts.ok: written at QoS 0, PUBACK
at 1, PUBCOMP at 2; mqtt-benchmark successes: its paho token done, which at QoS 0 is
"written"; mqtt-stresser: its publish calls; gmqtt: acks, at QoS 0 messages handed to
the transport), the client's msg/s (its own figure), the client's CPU (user+sys from wait4:
exactly that process), CPU us/msg gross and net of a 10-connection, 1-message run of the
same tool and QoS (the fixed start-up cost, median of 3), the broker's CPU
(/proc/PID/stat delta) per message, latency (hammer p50/p99/mean; mqtt-benchmark only
reports a mean and a max), and what the broker delivered: a raw subscriber (QoS 0, on a
topic of its own per run, in this process, pinned with the broker) counts every PUBLISH
and the table shows whether that equals the client's claim.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from hb.procs import CLIENT_CPU, SERVER_CPU, log, proc_cpu_s, run_pinned  # noqa: E402

from mqttpeer import Broker, _packet, _str, find_mosquitto  # noqa: E402

CLIENTS = 10
PAYLOAD = 64
FIXED_REPS = 3
CAL_COUNT = 1000                  # messages per client in mqtt-benchmark's calibration
CAL_MIN_S = 1.0                   # ... repeated (larger) while a run lasts less than this
CAL_TRIES = 3
RAMP_START, RAMP_STEP, RAMP_MAX = 100_000, 25_000, 1_000_000
RAMP_MAX_DRAIN_S = 0.05           # the broker's backlog when the client exits, at most
HARD_TIMEOUT_S = 60.0
POLL_S = 0.005                    # the subscriber's sleep between drains
GMQTT_PUB = HERE / "peers" / "gmqtt_pub.py"
STRESSER_PAYLOAD = "m" * PAYLOAD  # mqtt-stresser's -constant-payload (64 bytes)
STRESSER_GLOBAL_TIMEOUT_S = 40.0  # its -global-timeout: it reports before HARD_TIMEOUT_S
COUNTED = ("mqtt-benchmark", "mqtt-stresser")   # peers run for a count (calibrated)
PEERS = ("mqtt-benchmark", "mqtt-stresser", "gmqtt")


class CountingSubscriber:
    """Subscribes at QoS 0 to one exact topic and counts the PUBLISH packets delivered.

    Every message of a run has the same topic and payload size, so every delivered
    packet has the same length L: the count is the byte total / L, checked by reading
    the fixed header byte (0x30: PUBLISH, QoS 0) and the one-byte remaining length at
    each multiple of L (strided slices: no Python work per message, so 300k msg/s cost
    little). Anything else in the stream is counted as a framing error.

    wildcard=True subscribes to `topic/#` instead, for a client that picks its own topics
    under a base (mqtt-stresser: BASE/HOST/workerN-RANDOM, one per client, of varying
    lengths): the packets are then parsed one by one (fixed header, remaining length),
    a Python step per message."""

    def __init__(self, port: int, topic: str, payload_size: int,
                 wildcard: bool = False) -> None:
        rem = 2 + len(topic.encode()) + payload_size
        if rem > 127 and not wildcard:
            raise ValueError("topic + payload too long for a one-byte remaining length")
        self.wildcard = wildcard
        self.plen = 2 + rem
        self._rem = rem
        self.count = 0
        self.framing_errors = 0
        self.cpu_s = 0.0
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        # CONNECT: clean session, keep-alive 0 (the broker never expects a ping)
        self.sock.sendall(_packet(1, 0, _str("MQTT") + bytes([4, 2]) + struct.pack(">H", 0)
                                  + _str(f"bench-counter-{os.getpid()}-{id(self)}")))
        buf = self._recv_exact(4)
        if buf[0] != 0x20 or buf[3] != 0:
            raise RuntimeError(f"no CONNACK accepted: {buf!r}")
        topic_filter = f"{topic}/#" if wildcard else topic
        self.sock.sendall(_packet(8, 2, struct.pack(">H", 1) + _str(topic_filter) + b"\x00"))
        buf = self._recv_exact(5)
        if buf[0] != 0x90 or buf[4] != 0:
            raise RuntimeError(f"no SUBACK granting QoS 0: {buf!r}")
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed")
            buf += chunk
        return buf

    def _run(self) -> None:
        t0 = time.thread_time()
        pending = bytearray()
        plen, rem = self.plen, self._rem
        self.sock.setblocking(False)
        closed = False
        while not self._stop and not closed:
            # drain what is there, then sleep: a wake-up per message would cost the
            # broker's CPU (this thread shares it) more than the messages themselves
            got = False
            while True:
                try:
                    chunk = self.sock.recv(1 << 20)
                except BlockingIOError:
                    break
                except OSError:
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                pending += chunk
                got = True
            time.sleep(POLL_S)
            if self.wildcard:
                if got:
                    self._parse_any(pending)
                continue
            n = len(pending) // plen
            if not got or not n:
                continue
            end = n * plen
            good = (pending[0:end:plen].count(0x30) == n
                    and pending[1:end:plen].count(rem) == n)
            if good:
                self.count += n
                del pending[:end]
            else:
                # not the fixed-length stream expected: count what parses, drop the rest
                self.framing_errors += 1
                i = 0
                while i + plen <= len(pending) and pending[i] == 0x30 and pending[i + 1] == rem:
                    self.count += 1
                    i += plen
                pending.clear()
        self.cpu_s = time.thread_time() - t0

    def _parse_any(self, pending: bytearray) -> None:
        """Counts the whole PUBLISH packets (QoS 0) at the head of pending and drops
        them; a partial packet stays for the next drain; anything else is a framing
        error (counted, and the buffer dropped)."""
        i, n, count = 0, len(pending), 0
        while i + 2 <= n:
            if pending[i] != 0x30:
                self.framing_errors += 1
                i = n
                break
            rem, shift, j = 0, 0, i + 1
            while j < n and shift <= 21:
                b = pending[j]
                j += 1
                rem |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            else:
                if shift > 21:
                    self.framing_errors += 1
                    i = n
                break                           # the length is not all here yet
            if j + rem > n:
                break                           # the packet is not all here yet
            count += 1
            i = j + rem
        self.count += count
        del pending[:i]

    def settle(self, expected: int, timeout: float = 10.0) -> tuple[int, float | None]:
        """The count once it reaches expected (plus a pause that would show extras), or
        once it has not moved for a second, or at the timeout; and how long after the
        call the count reached expected (None if it did not): the broker's backlog."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        last, last_change = self.count, t0
        while time.monotonic() < deadline:
            c = self.count
            if c >= expected:
                reached = time.monotonic() - t0
                time.sleep(0.2)
                return self.count, reached
            if c != last:
                last, last_change = c, time.monotonic()
            elif time.monotonic() - last_change > 1.0:
                break
            time.sleep(0.005)
        return self.count, None

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.sock.close()


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, broker: Broker,
                 pin: bool) -> None:
        self.args = args
        self.workdir = workdir
        self.broker = broker
        self.client_cpu = CLIENT_CPU if pin else None
        self.run_no = 0
        self.hammer = args.hammer

    def topic(self) -> str:
        self.run_no += 1
        return f"bench/run{self.run_no:05d}"      # the same length for every run

    def hammer_argv(self, topic: str, qos: int, json_path: Path, *, rate: int | None,
                    duration_s: float | None, requests: int | None) -> list[str]:
        argv = [*self.hammer, "run", f"{self.broker.url}/{topic}", "-c", str(CLIENTS),
                "--qos", str(qos), "--payload-size", str(PAYLOAD), "--json", str(json_path),
                "-q"]
        if duration_s is not None:
            argv += ["-d", f"{duration_s:g}s"]
        if requests is not None:
            argv += ["-n", str(requests)]
        if rate is not None:
            argv += ["-r", str(rate)]
        return argv

    def peer_argv(self, topic: str, qos: int, count: int) -> list[str]:
        return [self.args.mqtt_benchmark, "-broker", f"tcp://127.0.0.1:{self.broker.port}",
                "-topic", topic, "-clients", str(CLIENTS), "-count", str(count),
                "-size", str(PAYLOAD), "-qos", str(qos), "-message-interval", "0",
                "-format", "json", "-quiet", "-client-prefix", f"mb-{self.run_no}"]

    def stresser_argv(self, topic: str, qos: int, count: int) -> list[str]:
        # topics: TOPIC/HOSTNAME/workerN-RANDOM, one per client (the subscriber takes
        # TOPIC/#); its own subscribers at QoS 0 (the lightest delivery for the broker);
        # 10 clients start at once (-rampup-size 100: no ramp-up pause below 100)
        return [self.args.mqtt_stresser, "-broker", f"tcp://127.0.0.1:{self.broker.port}",
                "-num-clients", str(CLIENTS), "-num-messages", str(count),
                "-publisher-qos", str(qos), "-subscriber-qos", "0",
                "-constant-payload", STRESSER_PAYLOAD, "-topic-base-path", topic,
                "-rampup-size", "100", "-rampup-delay", "0s", "-timeout", "5s",
                "-global-timeout", f"{STRESSER_GLOBAL_TIMEOUT_S:g}s", "-no-progress"]

    def gmqtt_argv(self, topic: str, qos: int, *, count: int | None) -> list[str]:
        argv = [self.args.gmqtt_python, str(GMQTT_PUB), "--port", str(self.broker.port),
                "--topic", topic, "--clients", str(CLIENTS), "--qos", str(qos),
                "--size", str(PAYLOAD), "--client-prefix", f"gm-{self.run_no}"]
        if count is not None:
            return [*argv, "--count", str(count)]
        return [*argv, "--duration", f"{self.args.duration:g}"]

    def one(self, client: str, qos: int, *, rate: int | None = None,
            count: int | None = None, fixed: bool = False) -> dict[str, Any]:
        """One client run with a fresh subscriber on its own topic."""
        topic = self.topic()
        rundir = self.workdir / f"run{self.run_no:05d}"
        rundir.mkdir()
        json_path = rundir / "hammer.json"
        if client.startswith("hammer"):
            if fixed:
                argv = self.hammer_argv(topic, qos, json_path, rate=1000 if qos == 0 else None,
                                        duration_s=None, requests=1)
            else:
                argv = self.hammer_argv(topic, qos, json_path, rate=rate,
                                        duration_s=self.args.duration, requests=None)
        elif client == "gmqtt":
            argv = self.gmqtt_argv(topic, qos, count=1 if fixed else None)
        elif client == "mqtt-stresser":
            assert count is not None
            argv = self.stresser_argv(topic, qos, count)
        else:
            assert count is not None
            argv = self.peer_argv(topic, qos, count)
        sub = CountingSubscriber(self.broker.port, topic, PAYLOAD,
                                 wildcard=client == "mqtt-stresser")
        try:
            b0 = proc_cpu_s(self.broker.proc.pid)
            res = run_pinned(argv, self.client_cpu, HARD_TIMEOUT_S, rundir)
            rec: dict[str, Any] = {"client": client, "qos": qos, "topic": topic,
                                   "argv": res.argv, "returncode": res.returncode,
                                   "timed_out": res.timed_out, "wall_s": round(res.wall_s, 4),
                                   "user_s": res.user_s, "sys_s": res.sys_s,
                                   "cpu_s": res.cpu_s}
            if client.startswith("hammer"):
                rec.update(parse_hammer(json_path))
            elif client == "gmqtt":
                rec.update(parse_gmqtt(res.stdout))
            elif client == "mqtt-stresser":
                rec.update(parse_stresser(res.stdout, count or 0))
            else:
                rec.update(parse_peer(res.stdout, qos))
            if res.stderr.strip():
                rec["stderr_tail"] = res.stderr.strip()[-800:]
            claimed = rec.get("claimed") or 0
            rec["delivered"], drain = sub.settle(claimed)
            rec["drain_s"] = None if drain is None else round(drain, 3)
            rec["broker_cpu_s"] = round(proc_cpu_s(self.broker.proc.pid) - b0, 4)
        finally:
            sub.close()
        rec["subscriber_cpu_s"] = round(sub.cpu_s, 4)
        rec["framing_errors"] = sub.framing_errors
        rec["delivered_eq_claimed"] = rec["delivered"] == rec.get("claimed")
        n = rec.get("claimed") or 0
        # one definition for every tool: claimed / the tool's own run time (hammer: -d;
        # mqtt-benchmark: its total_run_time, connects included; gmqtt: its publish
        # phase; mqtt-stresser: its slowest client's publish loop); the tools' own
        # figures are tool_msg_per_s
        rec["msg_per_s"] = n / rec["duration_s"] if n and rec.get("duration_s") else None
        rec["client_cpu_pct"] = 100 * rec["cpu_s"] / res.wall_s if res.wall_s else None
        rec["broker_cpu_pct"] = 100 * rec["broker_cpu_s"] / res.wall_s if res.wall_s else None
        rec["cpu_us_per_msg"] = rec["cpu_s"] / n * 1e6 if n else None
        rec["broker_cpu_us_per_msg"] = rec["broker_cpu_s"] / n * 1e6 if n else None
        return rec


def parse_hammer(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return {"parse_error": str(e), "claimed": None}
    c = d["counts"]
    lat = d.get("latency_ms") or {}
    return {"claimed": c["ok"], "sent": c["sent"], "errors": c["error"] + c["http_error"],
            "acked": c["ok"] if d["hammer"]["qos"] > 0 else None,
            "tool_msg_per_s": d["throughput_rps"], "duration_s": d["duration_s"],
            "lat_p50_ms": lat.get("p50"), "lat_p99_ms": lat.get("p99"),
            "lat_mean_ms": lat.get("mean"), "lat_max_ms": lat.get("max"),
            "send_lag_p99_ms": (d.get("send_lag_ms") or {}).get("p99"),
            "saturated": d.get("saturated"), "notes": d.get("notes")}


def parse_peer(stdout: str, qos: int) -> dict[str, Any]:
    try:
        t = json.loads(stdout[stdout.index("{"):])["totals"]
    except (ValueError, KeyError) as e:
        return {"parse_error": str(e), "claimed": None}
    return {"claimed": t["successes"], "sent": t["successes"] + t["failures"],
            "errors": t["failures"], "acked": t["successes"] if qos > 0 else None,
            "tool_msg_per_s": t["total_msgs_per_sec"], "duration_s": t["total_run_time"],
            "lat_p50_ms": None, "lat_p99_ms": None, "lat_mean_ms": t["msg_time_mean_avg"],
            "lat_max_ms": t["msg_time_max"]}


def parse_gmqtt(stdout: str) -> dict[str, Any]:
    try:
        d = json.loads(stdout[stdout.index("{"):])
    except ValueError as e:
        return {"parse_error": str(e), "claimed": None}
    return {"claimed": d["acked"] if d["qos"] else d["published"], "sent": d["published"],
            "errors": d["errors"], "acked": d["acked"], "tool_msg_per_s": d["msg_per_s"],
            "duration_s": d["elapsed_s"], "connect_s": d["connect_s"],
            "lat_p50_ms": None, "lat_p99_ms": None, "lat_mean_ms": d["lat_mean_ms"],
            "lat_max_ms": d["lat_max_ms"], "gmqtt_version": d["gmqtt_version"],
            "loop": d["loop"]}


_STRESSER_FIELDS = {
    "published": r"^Published Messages:\s+(\d+)", "received": r"^Received Messages:\s+(\d+)",
    "completed": r"^Completed:\s+(\d+)", "errors": r"^Errors:\s+(\d+)",
}
_STRESSER_RATES = r"# Publishing Throughput\s+Fastest: (\d+) msg/sec\s+Slowest: (\d+) msg/sec\s+" \
    r"Median: (\d+) msg/sec"


def parse_stresser(stdout: str, count: int) -> dict[str, Any]:
    """mqtt-stresser's text summary: messages published (publish calls, each after the
    previous one's token was done or timed out: it does not check the outcome), received
    by its own subscribers, clients completed and in error, and per-client publish rates
    (fastest, slowest, median: each client's count / its publish loop's time). Its run
    time here is the slowest client's publish loop: count / the slowest rate."""
    v: dict[str, int] = {}
    for k, rx in _STRESSER_FIELDS.items():
        m = re.search(rx, stdout, re.M)
        if not m:
            return {"parse_error": f"no {k!r} in mqtt-stresser's output", "claimed": None}
        v[k] = int(m.group(1))
    m = re.search(_STRESSER_RATES, stdout)
    if not m:
        return {"parse_error": "no publishing throughput in mqtt-stresser's output",
                "claimed": None}
    fastest, slowest, median = (int(x) for x in m.groups())
    return {"claimed": v["published"], "sent": v["published"], "errors": v["errors"],
            "acked": None, "self_received": v["received"], "completed": v["completed"],
            "tool_msg_per_s": median * CLIENTS,
            "duration_s": count / slowest if slowest else None,
            "client_rate_fastest": fastest, "client_rate_slowest": slowest,
            "client_rate_median": median,
            "lat_p50_ms": None, "lat_p99_ms": None, "lat_mean_ms": None, "lat_max_ms": None}


def med(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return statistics.median(vs) if vs else None


def max_or_none(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return max(vs) if vs else None


def f(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mqtt-benchmark", metavar="PATH",
                    help="the mqtt-benchmark binary (bench/build_mqtt_benchmark.sh builds "
                         "it); without it only hammer runs")
    ap.add_argument("--mqtt-stresser", metavar="PATH",
                    help="the mqtt-stresser binary (bench/build_mqtt_stresser.sh builds "
                         "it); without it, it does not run")
    ap.add_argument("--gmqtt", action=argparse.BooleanOptionalAction, default=None,
                    help="run bench/peers/gmqtt_pub.py (default: when --gmqtt-python can "
                         "import gmqtt)")
    ap.add_argument("--gmqtt-python", default=sys.executable, metavar="PYTHON",
                    help="the interpreter for the gmqtt client (default: this one)")
    ap.add_argument("--hammer", default="hammer",
                    help="hammer's command (split on spaces; default: hammer on PATH)")
    ap.add_argument("--mosquitto", default=None, help="default: mosquitto on PATH or "
                    "/usr/sbin/mosquitto")
    ap.add_argument("--qos", type=int, nargs="+", default=[0, 1, 2], choices=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0,
                    help="seconds per run (hammer's -d; mqtt-benchmark's count is picked "
                         "to last about as long)")
    ap.add_argument("--qos0-rate", default="auto",
                    help="hammer's -r at QoS 0: a number, or auto (a ramp finds it)")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    args.hammer = args.hammer.split()
    if not shutil.which(args.hammer[0]):
        ap.error(f"{args.hammer[0]}: not found")
    for opt, path in (("--mqtt-benchmark", args.mqtt_benchmark),
                      ("--mqtt-stresser", args.mqtt_stresser)):
        if path and not os.access(path, os.X_OK):
            ap.error(f"{opt} {path}: not an executable")
    gmqtt_info = gmqtt_probe(args.gmqtt_python)
    if args.gmqtt is None:
        args.gmqtt = gmqtt_info is not None
        if not args.gmqtt:
            log(f"gmqtt: not importable by {args.gmqtt_python}, not run "
                "(pip install '.[bench]')")
    elif args.gmqtt and gmqtt_info is None:
        ap.error(f"--gmqtt: {args.gmqtt_python} cannot import gmqtt")
    mosquitto = args.mosquitto or find_mosquitto()
    if not mosquitto:
        ap.error("mosquitto not found (apt-get install mosquitto)")

    cpus = os.sched_getaffinity(0)
    pin = not args.no_pin and len(cpus) >= 2 and {SERVER_CPU, CLIENT_CPU} <= cpus
    pin_note = (f"broker and the counting subscriber on CPU {SERVER_CPU}, each client on "
                f"CPU {CLIENT_CPU}" if pin else
                f"not pinned ({'--no-pin' if args.no_pin else f'{len(cpus)} CPU(s)'})")
    if pin:
        # this thread (and so the subscriber threads started later) with the broker
        os.sched_setaffinity(0, {SERVER_CPU})
    log(f"pinning: {pin_note}")
    enabled = (args.mqtt_benchmark, args.mqtt_stresser, args.gmqtt)
    peers = [p for p, on in zip(PEERS, enabled, strict=True) if on]
    t_start = time.monotonic()
    out: dict[str, Any] = {"config": {
        "clients": CLIENTS, "payload_bytes": PAYLOAD, "rounds": args.rounds,
        "duration_s": args.duration, "qos": args.qos, "pinning": pin_note,
        "hammer": args.hammer, "mqtt_benchmark": args.mqtt_benchmark,
        "mqtt_stresser": args.mqtt_stresser, "gmqtt": gmqtt_info if args.gmqtt else None,
        "peers": peers, "mosquitto": mosquitto, "mosquitto_version": mosquitto_version(mosquitto),
        "subscriber": "raw, QoS 0, one exact topic per run (mqtt-stresser: "
                      "TOPIC/#), in the driver"}}
    with tempfile.TemporaryDirectory(prefix="mqtt-bench-") as tmp:
        workdir = Path(tmp)
        broker = Broker(mosquitto, workdir)
        try:
            if pin:
                os.sched_setaffinity(broker.proc.pid, {SERVER_CPU})
            b = Bench(args, workdir, broker, pin)
            out.update(drive(b, args, peers))
        finally:
            broker.stop()
    out["total_s"] = round(time.monotonic() - t_start, 1)
    report(out, peers)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        log(f"wrote {args.json}")
    return 0


def gmqtt_probe(python: str) -> dict[str, str] | None:
    """gmqtt's version and the event loop gmqtt_pub.py would use, as that interpreter
    sees them; None if it cannot import gmqtt."""
    code = ("import json, gmqtt\ntry:\n import uvloop; loop = 'uvloop ' + uvloop.__version__\n"
            "except ImportError:\n loop = 'asyncio'\n"
            "print(json.dumps({'version': getattr(gmqtt, '__version__', '?'), 'loop': loop}))")
    try:
        p = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30)
        return json.loads(p.stdout) if p.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def mosquitto_version(binary: str) -> str:
    try:
        p = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5)
        return (p.stdout or p.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def drive(b: Bench, args: argparse.Namespace, peers: list[str]) -> dict[str, Any]:
    clients = ["hammer", *peers]
    mb = "mqtt-benchmark" in peers
    # fixed cost: 10 connections, one message, per tool and QoS (median of FIXED_REPS)
    fixed: dict[str, dict[int, float]] = {c: {} for c in clients}
    fixed_runs = []
    for qos in args.qos:
        for c in clients:
            runs = [b.one(c, qos, count=1, fixed=True) for _ in range(FIXED_REPS)]
            fixed_runs += runs
            fixed[c][qos] = statistics.median(r["cpu_s"] for r in runs)
            log(f"fixed cost {c} qos{qos}: {fixed[c][qos] * 1e3:.1f} ms CPU "
                f"({', '.join(format(r['cpu_s'] * 1e3, '.0f') for r in runs)})")
    # calibration: a counted peer's rate per QoS sets its count (per client) so that a
    # run lasts about --duration; mqtt-benchmark's also sets hammer@peer's rate
    peer_rate: dict[str, dict[int, float]] = {c: {} for c in peers if c in COUNTED}
    peer_count: dict[str, dict[int, int]] = {c: {} for c in peers if c in COUNTED}
    cal_runs = []
    for c in peer_rate:
        for qos in args.qos:
            count = CAL_COUNT
            for _ in range(CAL_TRIES):
                r = b.one(c, qos, count=count)
                cal_runs.append(r)
                rate = r.get("msg_per_s") or 0.0
                if c == "mqtt-stresser" and rate:
                    # its own subscribers read after its publish loop (at QoS 0 for
                    # about as long again): its count follows its wall time
                    rate = (r.get("claimed") or 0) / r["wall_s"]
                if not rate:
                    raise SystemExit(f"{c} calibration failed: {r}")
                if r["wall_s"] >= CAL_MIN_S:
                    break
                # too short for start-up to fade: aim at about 1.5 s
                count = max(count + 1, round(rate * 1.5 / CLIENTS))
            peer_rate[c][qos] = rate
            peer_count[c][qos] = max(1, round(rate * args.duration / CLIENTS))
            log(f"calibration {c} qos{qos}: {rate:,.0f} msg/s -> count "
                f"{peer_count[c][qos]} per client")
    qos0_rate = None
    ramp: list[dict[str, Any]] = []
    if 0 in args.qos:
        if args.qos0_rate == "auto":
            qos0_rate, ramp = find_qos0_rate(b)
        else:
            qos0_rate = int(float(args.qos0_rate))
        log(f"hammer's QoS 0 rate: {qos0_rate:,}/s")
    runs = []
    for rnd in range(args.rounds):
        for qos in args.qos:
            # the clients alternate their order (reversed every other round);
            # hammer@peer (QoS 0) always right after mqtt-benchmark, at the rate it just
            # reached
            order = list(clients)
            if rnd % 2:
                order.reverse()
            if mb and qos == 0:
                order.insert(order.index("mqtt-benchmark") + 1, "hammer@peer")
            peer_now = None
            for client in order:
                if client in COUNTED:
                    r = b.one(client, qos, count=peer_count[client][qos])
                    if client == "mqtt-benchmark":
                        peer_now = r.get("msg_per_s")
                elif client == "gmqtt":
                    r = b.one(client, qos)
                elif client == "hammer@peer":
                    rate = round(peer_now or peer_rate["mqtt-benchmark"][0])
                    r = b.one(client, qos, rate=rate)
                    r["rate"] = rate
                else:
                    r = b.one(client, qos, rate=qos0_rate if qos == 0 else None)
                r["round"] = rnd
                base = fixed["hammer" if client.startswith("hammer") else client].get(qos)
                n = r.get("claimed") or 0
                r["fixed_cpu_s"] = base
                r["net_cpu_us_per_msg"] = ((r["cpu_s"] - base) / n * 1e6
                                           if n and base is not None else None)
                runs.append(r)
                log(progress(r))
    return {"fixed_cpu_s": {c: {str(q): v for q, v in d.items()} for c, d in fixed.items()},
            "fixed_runs": fixed_runs, "calibration": cal_runs,
            "peer_rate_calibration": {str(q): v for q, v in
                                      peer_rate.get("mqtt-benchmark", {}).items()},
            "peer_count_per_client": {str(q): v for q, v in
                                      peer_count.get("mqtt-benchmark", {}).items()},
            "calibration_by_peer": {c: {"msg_per_s": {str(q): v for q, v in d.items()},
                                        "count_per_client": {str(q): v for q, v in
                                                             peer_count[c].items()}}
                                    for c, d in peer_rate.items()},
            "qos0_rate": qos0_rate, "qos0_rate_mode": args.qos0_rate, "qos0_ramp": ramp,
            "runs": runs}


def find_qos0_rate(b: Bench) -> tuple[int, list[dict[str, Any]]]:
    """The highest rate of a ramp (runs as long as the measured ones) that hammer holds
    at QoS 0: exit 0, no saturation note, the broker delivered every message, within
    RAMP_MAX_DRAIN_S of hammer's exit."""
    ramp, best = [], None
    rate = RAMP_START
    while rate <= RAMP_MAX:
        r = b.one("hammer", 0, rate=rate)
        ok = (r["returncode"] == 0 and not r.get("saturated")
              and r["delivered_eq_claimed"] and (r.get("msg_per_s") or 0) >= 0.99 * rate
              and r["drain_s"] is not None and r["drain_s"] <= RAMP_MAX_DRAIN_S)
        ramp.append({"rate": rate, "held": ok, "msg_per_s": r.get("msg_per_s"),
                     "send_lag_p99_ms": r.get("send_lag_p99_ms"),
                     "saturated": r.get("saturated"), "delivered": r["delivered"],
                     "claimed": r.get("claimed"), "drain_s": r["drain_s"],
                     "cpu_s": r["cpu_s"],
                     "broker_cpu_s": r["broker_cpu_s"]})
        log(f"qos0 ramp {rate:,}/s: {'held' if ok else 'not held'} "
            f"(send lag p99 {f(r.get('send_lag_p99_ms'), '.2f')} ms, broker CPU "
            f"{r['broker_cpu_s']:.2f} s, delivery done {f(r['drain_s'], '.3f')} s after "
            "the client's exit)")
        if not ok:
            break
        best = rate
        rate += RAMP_STEP
    if best is None:
        log(f"qos0 ramp: not even {RAMP_START:,}/s held; using it anyway")
    return best or RAMP_START, ramp


def progress(r: dict[str, Any]) -> str:
    return (f"round {r['round']} {r['client']:<14} qos{r['qos']}: "
            f"{f(r.get('msg_per_s'), ',.0f')} msg/s, claimed {r.get('claimed')}, "
            f"delivered {r['delivered']} (+{f(r['drain_s'], '.3f')} s), CPU {r['cpu_s']:.2f} s "
            f"({f(r['cpu_us_per_msg'], '.2f')} us/msg), broker "
            f"{f(r['broker_cpu_us_per_msg'], '.2f')} us/msg")


FOOTNOTE = """\
Medians over rounds. msg/s: messages claimed / the tool's own run time. CPU us/msg:
median (min-max) of the client process's user+sys per message; net: less the same
tool's 10-connection 1-message run (median). broker: mosquitto's CPU us/msg (delivery to
the counting subscriber included). CPU% c/b: client and broker CPU over the client's
wall time (100 = one core). backlog: the longest time (s), over the rounds, the broker
took to finish delivering after the client exited (the subscriber polls every 5 ms).
p50/p99: hammer only (mqtt-benchmark reports a mean and a max). mean: per-message time
(QoS 0: hammer from the scheduled send until written, paho until written).
published/acked: median per run. delivered==claimed: runs where the subscriber's count
equals the client's claim (the differences if not)."""

FOOTNOTE_PEERS = {
    "gmqtt": """\
gmqtt: bench/peers/gmqtt_pub.py, 10 asyncio clients in one process ({loop}), gmqtt
{version}; msg/s over its publish phase (connects excluded); mean: publish to ack (QoS 0:
publish to the client's next turn); claimed: acks (QoS 0: messages handed to the
transport).""",
    "mqtt-stresser": """\
mqtt-stresser: its CPU includes its own 10 subscribers (QoS 0), which receive every
message it publishes, and the broker's includes that second delivery (two PUBLISH out
per PUBLISH in, against one for the others). claimed: its publish calls (it waits for
each token, 5 s at most, but does not check the outcome: acked '-'); msg/s: claimed /
the slowest client's publish loop. Its own subscribers' count is self_received in the
JSON.""",
}


def report(out: dict[str, Any], peers: list[str]) -> None:
    runs = out.get("runs", [])
    cfg = out["config"]
    print(f"\nMQTT publish, {cfg['clients']} clients, {cfg['payload_bytes']}-byte payloads, "
          f"{cfg['rounds']} rounds of ~{cfg['duration_s']:g} s; {cfg['mosquitto_version']}; "
          f"{cfg['pinning']}")
    if out.get("qos0_rate") is not None:
        rate_note = ("found by the ramp" if out["qos0_rate_mode"] == "auto"
                     else "given")
        at_peer = [r["rate"] for r in runs if r["client"] == "hammer@peer"]
        print(f"hammer at QoS 0: -r {out['qos0_rate']:,} ({rate_note}); hammer@peer: -r "
              f"{', '.join(format(x, ',') for x in at_peer) or '-'} (mqtt-benchmark's rate "
              "in the same round)")
    hdr = (f"{'client':<15}{'QoS':>3} {'msg/s':>9} {'CPU us/msg':>18} {'net':>6} "
           f"{'broker':>7} {'CPU% c/b':>9} {'backlog':>8} {'p50/p99 ms':>12} {'mean ms':>8} "
           f"{'published':>10} {'acked':>9} {'delivered==claimed':>19}")
    print(hdr)
    print("-" * len(hdr))
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["client"], r["qos"]), []).append(r)
    for (client, qos), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cpu = [r["cpu_us_per_msg"] for r in rs if r["cpu_us_per_msg"] is not None]
        cpu_s = (f"{med(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f})" if cpu else "-")
        lat = (f"{f(med([r['lat_p50_ms'] for r in rs]), '.3f')}/"
               f"{f(med([r['lat_p99_ms'] for r in rs]), '.3f')}")
        eq = sum(1 for r in rs if r["delivered_eq_claimed"])
        mism = [f"{r['delivered'] - (r.get('claimed') or 0):+d}" for r in rs
                if not r["delivered_eq_claimed"]]
        eq_s = f"{eq}/{len(rs)}" + (f" ({', '.join(mism)})" if mism else "")
        acked = med([r.get("acked") for r in rs])
        pct = (f"{f(med([r['client_cpu_pct'] for r in rs]), '.0f')}/"
               f"{f(med([r['broker_cpu_pct'] for r in rs]), '.0f')}")
        print(f"{client:<15}{qos:>3} {f(med([r.get('msg_per_s') for r in rs]), ',.0f'):>9} "
              f"{cpu_s:>18} {f(med([r['net_cpu_us_per_msg'] for r in rs]), '.2f'):>6} "
              f"{f(med([r['broker_cpu_us_per_msg'] for r in rs]), '.2f'):>7} {pct:>9} "
              f"{f(max_or_none([r['drain_s'] for r in rs]), '.3f'):>8} {lat:>12} "
              f"{f(med([r.get('lat_mean_ms') for r in rs]), '.3f'):>8} "
              f"{f(med([r.get('claimed') for r in rs]), ',.0f'):>10} "
              f"{f(acked, ',.0f'):>9} {eq_s:>19}")
    print(FOOTNOTE)
    for c in peers:
        if c in FOOTNOTE_PEERS:
            info = cfg.get("gmqtt") or {}
            print(FOOTNOTE_PEERS[c].format(version=info.get("version", "?"),
                                           loop=info.get("loop", "?")))
    if not peers:
        return
    ratios: dict[str, Any] = {}
    by_peer: dict[str, Any] = {}
    for peer in peers:
        print(f"\nhammer / {peer}, paired by round (msg/s ratio; CPU us/msg ratio)")
        into = ratios if peer == "mqtt-benchmark" else by_peer.setdefault(peer, {})
        for qos in sorted({r["qos"] for r in runs}):
            for hname in ("hammer", "hammer@peer"):
                if hname == "hammer@peer" and peer != "mqtt-benchmark":
                    continue
                pairs = []
                for rnd in sorted({r["round"] for r in runs}):
                    h = next((r for r in runs if r["client"] == hname and r["qos"] == qos
                              and r["round"] == rnd), None)
                    p = next((r for r in runs if r["client"] == peer
                              and r["qos"] == qos and r["round"] == rnd), None)
                    if h and p and h.get("msg_per_s") and p.get("msg_per_s") \
                            and h["cpu_us_per_msg"] and p["cpu_us_per_msg"]:
                        pairs.append((h["msg_per_s"] / p["msg_per_s"],
                                      h["cpu_us_per_msg"] / p["cpu_us_per_msg"]))
                if not pairs:
                    continue
                rate_r = [a for a, _ in pairs]
                cpu_r = [c for _, c in pairs]
                into[f"{hname} qos{qos}"] = {"msg_per_s": rate_r, "cpu_us_per_msg": cpu_r}
                print(f"  {hname:<12} qos{qos}: msg/s x{statistics.median(rate_r):.2f} "
                      f"({', '.join(f'{x:.2f}' for x in rate_r)}); CPU/msg "
                      f"x{statistics.median(cpu_r):.2f} "
                      f"({', '.join(f'{x:.2f}' for x in cpu_r)})")
    out["paired_ratios"] = ratios               # hammer / mqtt-benchmark
    out["paired_ratios_by_peer"] = {"mqtt-benchmark": ratios, **by_peer} \
        if ratios else by_peer
    odd = [r for r in runs if r.get("returncode") not in (0,) or r.get("errors")
           or r.get("framing_errors") or r.get("timed_out") or r.get("parse_error")]
    for r in odd:
        print(f"  note: round {r['round']} {r['client']} qos{r['qos']}: exit "
              f"{r.get('returncode')}, errors {r.get('errors')}, framing errors "
              f"{r.get('framing_errors')}, saturated {r.get('saturated')}"
              + (f", {r['parse_error']}" if r.get("parse_error") else ""))
    print(f"\ntotal {out['total_s']} s")


if __name__ == "__main__":
    sys.exit(main())
