#!/usr/bin/env python3
"""Micro-benchmarks of hammer's core parts, with plain timing (no pytest).

    python bench/micro.py [--seconds 1.0] [--ring-items 20000000] [--no-pin] [--json PATH]

What is measured, and what the figure includes:

- pacer: `hammer.pacer.intended_ns`, the pure-Python twin of the core's pacer (the
  core's `_core.intended_ns` is a thin Python wrapper around one integer expression, so
  timing it from Python measures the Python call, not the pacer; it is printed beside
  the twin for reference). The core's own per-slot cost is part of the worker loop.
- framing: `_core.ResponseScanner().feed(resp)` on a typical 153-byte nginx response,
  per call (a reset() per response is needed and is included; the reset alone is shown).
- ring: `_core.ResultRing(1 << 16).produce_nogil(N)` on one thread against
  `consume_nogil(N)` on another, both without the GIL, pinned to two CPUs: results/s
  through the ring. Also on one thread (fill, then empty), without cross-core traffic.
- histogram: `_core.Histogram().record(v)` per call from Python: includes the Python
  call overhead, which dominates; `_core.monotonic_ns()` is timed as the cheapest core
  call for scale.

The aggregator (ring pop + three histogram records per result) cannot be timed without
Python overhead yet: the core has no nogil batch entry point for it (see README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from hammer import _core, pacer

RING_CAPACITY = 1 << 16
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"
            b"Date: Fri, 27 Nov 2026 00:54:39 GMT\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 6\r\nConnection: keep-alive\r\n\r\nhello\n")


def per_call(fn: Callable[[int], None], seconds: float, batch: int = 10_000) -> tuple[float, int]:
    """Call fn(batch) repeatedly for about `seconds`; fn runs `batch` operations.
    Returns (ns per operation, operations)."""
    fn(batch)  # warm up
    ops = 0
    t0 = time.perf_counter_ns()
    deadline = t0 + int(seconds * 1e9)
    now = t0
    while now < deadline:
        fn(batch)
        ops += batch
        now = time.perf_counter_ns()
    return (now - t0) / ops, ops


def bench_pacer(seconds: float) -> dict[str, Any]:
    rate = Fraction(20_000)
    num, den = pacer.period_ns(rate)
    start = 1_000_000_000

    def twin(n: int) -> None:
        f = pacer.intended_ns
        for i in range(n):
            f(start, rate, i)

    def core(n: int) -> None:
        f = _core.intended_ns
        for i in range(n):
            f(start, num, den, i)

    twin_ns, twin_ops = per_call(twin, seconds)
    core_ns, core_ops = per_call(core, seconds)
    return {"pacer.intended_ns_ns_per_call": twin_ns, "pacer_ops": twin_ops,
            "core.intended_ns_ns_per_call": core_ns, "core_ops": core_ops}


def bench_framing(seconds: float) -> dict[str, Any]:
    scanner = _core.ResponseScanner()
    verdict = scanner.feed(RESPONSE)
    if verdict != ("done", len(RESPONSE)):
        raise SystemExit(f"framing: unexpected verdict {verdict!r}")

    def feed(n: int) -> None:
        s = scanner
        r = RESPONSE
        for _ in range(n):
            s.reset()
            s.feed(r)

    def reset_only(n: int) -> None:
        s = scanner
        for _ in range(n):
            s.reset()

    feed_ns, ops = per_call(feed, seconds)
    reset_ns, _ = per_call(reset_only, seconds / 2)
    return {"response_bytes": len(RESPONSE), "feed_plus_reset_ns": feed_ns,
            "reset_ns": reset_ns, "feed_ns_est": feed_ns - reset_ns, "ops": ops}


def _pin_this_thread(cpu: int | None) -> None:
    """os.sched_setaffinity(0, ...) on Linux applies to the calling thread only."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def bench_ring(items: int, pin: bool) -> dict[str, Any]:
    ring = _core.ResultRing(RING_CAPACITY)
    out: dict[str, Any] = {}
    cpus = sorted(os.sched_getaffinity(0))
    pinned = pin and len(cpus) >= 2
    saved = os.sched_getaffinity(0)

    def consume() -> None:
        _pin_this_thread(cpus[1] if pinned else None)
        out["seen"], out["in_order"] = ring.consume_nogil(items)

    t = threading.Thread(target=consume)
    _pin_this_thread(cpus[0] if pinned else None)
    try:
        t0 = time.perf_counter_ns()
        t.start()
        waits = ring.produce_nogil(items)
        t.join(timeout=300)
        elapsed = time.perf_counter_ns() - t0
    finally:
        os.sched_setaffinity(0, saved)
    if t.is_alive() or out.get("seen") != items or not out.get("in_order"):
        raise SystemExit(f"ring: consumer did not see {items} results in order: {out}")
    return {"items": items, "elapsed_s": elapsed / 1e9, "results_per_s": items / elapsed * 1e9,
            "ns_per_result": elapsed / items, "producer_full_waits": waits,
            "capacity": RING_CAPACITY,
            "threads_pinned_to": [cpus[0], cpus[1]] if pinned else None}


def bench_ring_one_thread(items: int) -> dict[str, Any]:
    """Push a ring-full, then pop it, on one thread: the cost of push + pop without
    cache-line traffic between cores (one Python call per RING_CAPACITY results)."""
    ring = _core.ResultRing(RING_CAPACITY)
    rounds = max(1, items // RING_CAPACITY)
    t0 = time.perf_counter_ns()
    for _ in range(rounds):
        ring.produce_nogil(RING_CAPACITY)
        ring.consume_nogil(RING_CAPACITY)
    elapsed = time.perf_counter_ns() - t0
    n = rounds * RING_CAPACITY
    return {"items": n, "results_per_s": n / elapsed * 1e9, "ns_per_result": elapsed / n}


def bench_histogram(seconds: float) -> dict[str, Any]:
    hist = _core.Histogram()
    values = [(i * 7919) % 50_000_000 + 50_000 for i in range(4096)]  # 50 µs .. 50 ms

    def record(n: int) -> None:
        rec = hist.record
        vals = values
        for i in range(n):
            rec(vals[i & 4095])

    def clock(n: int) -> None:
        f = _core.monotonic_ns
        for _ in range(n):
            f()

    rec_ns, ops = per_call(record, seconds)
    base_ns, _ = per_call(clock, seconds / 2)
    return {"record_ns_per_call": rec_ns, "ops": ops, "total_count": hist.total_count,
            "monotonic_ns_call_ns": base_ns}


def machine_busy_s() -> float:
    """Busy seconds of all CPUs together (user+nice+system+irq+softirq), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:8]]
        return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


def own_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description="hammer core micro-benchmarks")
    ap.add_argument("--seconds", type=float, default=1.0, help="per timed loop (default 1)")
    ap.add_argument("--ring-items", type=int, default=20_000_000,
                    help="results pushed through the ring (default 20M)")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin the ring's producer and consumer to two CPUs")
    ap.add_argument("--json", metavar="PATH", help="write the results here")
    args = ap.parse_args()

    res: dict[str, Any] = {}
    busy0, own0, t0 = machine_busy_s(), own_cpu_s(), time.monotonic()
    res["pacer"] = p = bench_pacer(args.seconds)
    print(f"pacer      hammer.pacer.intended_ns (Python twin)  "
          f"{p['pacer.intended_ns_ns_per_call']:8.1f} ns/call  "
          f"{1e9 / p['pacer.intended_ns_ns_per_call']:14,.0f} /s")
    print(f"           _core.intended_ns (Python call bound)   "
          f"{p['core.intended_ns_ns_per_call']:8.1f} ns/call  "
          f"{1e9 / p['core.intended_ns_ns_per_call']:14,.0f} /s")
    res["framing"] = f = bench_framing(args.seconds)
    print(f"framing    ResponseScanner reset+feed ({f['response_bytes']} B)     "
          f"{f['feed_plus_reset_ns']:8.1f} ns/resp  "
          f"{1e9 / f['feed_plus_reset_ns']:14,.0f} /s   (reset alone "
          f"{f['reset_ns']:.1f} ns)")
    res["ring"] = r = bench_ring(args.ring_items, pin=not args.no_pin)
    where = (f"CPUs {r['threads_pinned_to'][0]} and {r['threads_pinned_to'][1]}"
             if r["threads_pinned_to"] else "unpinned")
    print(f"ring       produce_nogil || consume_nogil, 2 threads  "
          f"{r['ns_per_result']:8.1f} ns/res   {r['results_per_s']:14,.0f} results/s  "
          f"({r['items']:,} items, {where}, producer found it full {r['producer_full_waits']:,}"
          f" times)")
    res["ring_one_thread"] = r1 = bench_ring_one_thread(args.ring_items)
    print(f"           push {RING_CAPACITY:,} then pop them, 1 thread       "
          f"{r1['ns_per_result']:8.1f} ns/res   {r1['results_per_s']:14,.0f} results/s")
    res["histogram"] = h = bench_histogram(args.seconds)
    print(f"histogram  Histogram.record from Python            "
          f"{h['record_ns_per_call']:8.1f} ns/call  {1e9 / h['record_ns_per_call']:14,.0f} /s"
          f"   (incl. Python call; _core.monotonic_ns() call: "
          f"{h['monotonic_ns_call_ns']:.1f} ns)")
    res["framing_nogil_ns"] = fn = min(_core.bench_framing(RESPONSE, 2_000_000)
                                       for _ in range(3))
    print(f"           framer in the core, no Python in the loop    {fn:8.1f} ns/resp  "
          f"{1e9 / fn:14,.0f} /s")
    res["aggregator_results_per_s"] = agg = max(_core.bench_aggregator(args.ring_items)
                                                for _ in range(3))
    print(f"aggregator ring push + pop + 3 histogram records, nogil "
          f"{1e9 / agg:6.1f} ns/res   {agg:14,.0f} results/s (one core; target >= 20M/s)")
    wall = time.monotonic() - t0
    others = max(machine_busy_s() - busy0 - (own_cpu_s() - own0), 0.0) / wall
    res["others_cpu_frac"] = others
    print(f"noise      other processes used {others:.0%} of a CPU on average during this run"
          + ("  -> NOISY: figures unreliable" if others > 0.10 else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
