#!/usr/bin/env python3
"""hammer publishing at a paced rate against mosquitto: client CPU per message, rate
accuracy, PUBACK latency in microseconds, packets per write, and (with --e2e) delivery.

    python bench/mqtt_paced.py [--rate 10000] [--qos 1] [--rounds 3]
        [--variant NAME=FLAGS ...] [--short 2] [--long 12] [--json out.json]

One private mosquitto (tests/mqttpeer.py's Broker: a free 127.0.0.1 port, Nagle off)
pinned to CPU 0, every hammer run pinned to CPU 1, 10 connections, 64-byte payloads. No
MQTT peer paces a total rate (they pace per client, in whole milliseconds or seconds),
so the figures stand alone; the MQTT issue asks for <= 5 us of client CPU per message at
10,000 msg/s over 10 connections at QoS 1, the rate within 0.5 %.

Client CPU per message is marginal: each variant runs --short and --long seconds in the
same round, and (CPU_long - CPU_short) / (messages_long - messages_short) cancels the
fixed cost of starting Python and the engine. A counting subscriber (QoS 1, in this
process, pinned with the broker) checks that the broker delivered every message hammer
counted ok. Variants (default: the default pacing; 1 ms quanta with 16 in flight per
connection, so that a wake's messages leave in one write; the same with --e2e):
"NAME=FLAGS", the flags added to `hammer run URL -r RATE -c 10 --qos Q`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from hb.procs import CLIENT_CPU, SERVER_CPU, log, run_pinned  # noqa: E402

from mqttpeer import Broker, Subscriber, find_mosquitto  # noqa: E402

CLIENTS = 10
PAYLOAD = 64
DEFAULT_VARIANTS = ("default=", "quantum-1ms=--pacing 1ms --inflight 16",
                    "quantum-1ms-e2e=--pacing 1ms --inflight 16 --e2e")


def run_once(args: argparse.Namespace, broker: Broker, workdir: Path, flags: list[str],
             duration_s: float, run_no: int) -> dict[str, Any]:
    topic = f"paced/run{run_no:05d}"
    sub = Subscriber(broker.port, topic)
    out = workdir / f"run{run_no}.json"
    argv = [*args.hammer, "run", f"{broker.url}/{topic}", "-r", str(args.rate),
            "-c", str(CLIENTS), "--qos", str(args.qos), "--payload-size", str(PAYLOAD),
            "-d", f"{duration_s:g}s", "--json", str(out), "-q", *flags]
    try:
        proc = run_pinned(argv, CLIENT_CPU, duration_s + 60, workdir)
        data = json.loads(out.read_text())
        ok = int(data["counts"]["ok"])
        delivered = sub.wait_for(ok, timeout=10)
    finally:
        sub.close()
    writes = data["hammer"].get("writes") or {}
    e2e = data["hammer"].get("e2e")
    return {
        "argv": argv, "returncode": proc.returncode, "cpu_s": proc.cpu_s, "ok": ok,
        "scheduled": int(data["counts"]["scheduled"]),
        "achieved_rps": data["rate"]["achieved_rps"], "duration_s": data["duration_s"],
        "p50_us": _us(data["latency_ms"]["p50"]), "p99_us": _us(data["latency_ms"]["p99"]),
        "lag_p99_us": _us(data["send_lag_ms"]["p99"]),
        "packets_per_write": writes.get("packets_per_write"),
        "delivered": delivered,
        "e2e": None if e2e is None else {k: e2e[k] for k in
                                         ("unique", "lost", "duplicates", "out_of_order")}
        | {"p99_us": _us(e2e["latency_ms"]["p99"])},
    }


def _us(ms: float | None) -> float | None:
    return None if ms is None else round(ms * 1000, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hammer", default="hammer", help="the hammer command (split by shlex)")
    ap.add_argument("--mosquitto", default=None)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--qos", type=int, default=1, choices=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--short", type=float, default=2.0, help="seconds (default 2)")
    ap.add_argument("--long", type=float, default=12.0, help="seconds (default 12)")
    ap.add_argument("--variant", action="append", metavar="NAME=FLAGS")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    args.hammer = shlex.split(args.hammer)
    variants = [(v.split("=", 1)[0], shlex.split(v.split("=", 1)[1]))
                for v in (args.variant or DEFAULT_VARIANTS)]
    binary = args.mosquitto or find_mosquitto()
    if binary is None:
        print("mosquitto not found", file=sys.stderr)
        return 2
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    with tempfile.TemporaryDirectory(prefix="hammer-mqtt-paced-") as tmp:
        workdir = Path(tmp)
        broker = Broker(binary, workdir)
        os.sched_setaffinity(broker.proc.pid, {SERVER_CPU})
        try:
            run_no = 0
            for rnd in range(args.rounds):
                for name, flags in variants:
                    pair = []
                    for duration_s in (args.short, args.long):
                        run_no += 1
                        pair.append(run_once(args, broker, workdir, flags, duration_s,
                                             run_no))
                    short, long_ = pair
                    marginal = (long_["cpu_s"] - short["cpu_s"]) / max(
                        long_["ok"] - short["ok"], 1) * 1e6
                    row = {"round": rnd + 1, "variant": name, "flags": flags,
                           "cpu_us_per_msg": round(marginal, 2), "short": short,
                           "long": long_}
                    results[name].append(row)
                    log(f"round {rnd + 1} {name:<18} {marginal:6.2f} us/msg  "
                        f"rate {long_['achieved_rps']:,.1f}/s  p50/p99 "
                        f"{long_['p50_us']}/{long_['p99_us']} us  lag p99 "
                        f"{long_['lag_p99_us']} us  {long_['packets_per_write']} pkt/write  "
                        f"delivered {long_['delivered']:,}/{long_['ok']:,}"
                        + (f"  e2e {long_['e2e']}" if long_["e2e"] else ""))
        finally:
            broker.stop()
    print(f"\nmosquitto pinned to CPU {SERVER_CPU}, hammer to CPU {CLIENT_CPU}; "
          f"{args.rate:,} msg/s, QoS {args.qos}, {CLIENTS} connections, {PAYLOAD}-byte "
          f"payloads; medians of {args.rounds} rounds (marginal CPU: {args.long:g} s run "
          f"minus {args.short:g} s run)")
    print(f"{'variant':<18} {'CPU us/msg':>10} {'rate error':>10} {'PUBACK p50':>10} "
          f"{'p99 us':>8} {'lag p99':>8} {'pkt/write':>9} {'delivered':>10} {'e2e p99':>8}")
    for name, rows in results.items():
        longs = [r["long"] for r in rows]
        error = statistics.median(abs(r["achieved_rps"] / args.rate - 1) for r in longs)
        exact = all(r["delivered"] == r["ok"] == r["scheduled"] for r in longs)
        e2e_p99 = [r["e2e"]["p99_us"] for r in longs if r["e2e"]]
        print(f"{name:<18} {statistics.median(r['cpu_us_per_msg'] for r in rows):>10.2f} "
              f"{error:>10.3%} {statistics.median(r['p50_us'] for r in longs):>10.1f} "
              f"{statistics.median(r['p99_us'] for r in longs):>8.1f} "
              f"{statistics.median(r['lag_p99_us'] for r in longs):>8.1f} "
              f"{statistics.median(r['packets_per_write'] or 0 for r in longs):>9.2f} "
              f"{'all' if exact else 'NOT ALL':>10} "
              f"{statistics.median(e2e_p99) if e2e_p99 else '-':>8}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
