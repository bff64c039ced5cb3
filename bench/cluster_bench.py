"""How a run sharded over a Dask cluster scales, where the generator itself is the bound.

A no-op Python hammer (hammer.hammers.noop), closed loop, no server: every hit costs only
hammer's own pacing, timing and accounting, so hits per second measure the generator.
One LocalCluster worker against two (each a process), in alternated rounds, both
clusters started once. Also: how long the client's merge of the workers' reports takes,
against the run's wall time.

    python bench/cluster_bench.py [--rounds 3] [--duration 5s] [--inflight 64] [--json out]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from distributed import Client

from hammer.distributed import local_cluster, run_on_cluster


def one_run(client: Any, duration: str, inflight: int) -> dict[str, Any]:
    timing: dict[str, float] = {}
    wall0 = time.perf_counter()
    merged = run_on_cluster({"hammer": "hammer.hammers.noop:NoopHammer", "duration": duration,
                             "connections": inflight}, client, timing=timing)
    wall_s = time.perf_counter() - wall0
    ok = merged["counts"]["ok"]
    assert ok == merged["counts"]["scheduled"], merged["counts"]
    return {"hits": ok, "duration_s": merged["duration_s"],
            "hits_per_s": ok / merged["duration_s"], "wall_s": wall_s,
            "merge_s": timing["merge_s"],
            "cpu_s": [p.get("cpu_s") for p in merged["parts"]]}


def _spin(seconds: float) -> int:
    """A bare CPU-bound Python loop: how many turns it makes in `seconds`."""
    end = time.perf_counter() + seconds
    turns = 0
    while time.perf_counter() < end:
        for _ in range(1000):
            pass
        turns += 1
    return turns


def ceiling(seconds: float = 3.0) -> float:
    """What two busy processes get from this machine against one: the bound of any
    two-worker scaling here (2.0 on two idle, independent cores)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        one = pool.apply(_spin, (seconds,))
        two = sum(pool.map(_spin, [seconds, seconds]))
    return two / one


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--inflight", type=int, default=64,
                    help="hits in flight in total (split between the workers)")
    ap.add_argument("--json", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    ceilings: list[float] = []
    clusters = {n: local_cluster(n) for n in (1, 2)}   # as --cluster local:N makes them
    clients = {n: Client(c) for n, c in clusters.items()}
    try:
        for rnd in range(1, args.rounds + 1):
            for n in (1, 2):
                r = one_run(clients[n], args.duration, args.inflight)
                results[n].append(r)
                print(f"[round {rnd}] {n} worker(s): {r['hits']:,} hits, "
                      f"{r['hits_per_s']:,.0f}/s, merge {r['merge_s'] * 1e3:.1f} ms of "
                      f"{r['wall_s']:.2f} s wall, worker CPU {r['cpu_s']}", file=sys.stderr)
            ceilings.append(ceiling())
            print(f"[round {rnd}] two busy processes against one: x{ceilings[-1]:.2f}",
                  file=sys.stderr)
    finally:
        for c in clients.values():
            c.close()
        for cl in clusters.values():
            cl.close()
    ratios = [two["hits_per_s"] / one["hits_per_s"]
              for one, two in zip(results[1], results[2], strict=True)]
    merge_share = [r["merge_s"] / r["wall_s"] for r in results[2]]
    summary = {
        "one_worker_hits_per_s": statistics.median(r["hits_per_s"] for r in results[1]),
        "two_workers_hits_per_s": statistics.median(r["hits_per_s"] for r in results[2]),
        "paired_ratio_median": statistics.median(ratios),
        "paired_ratios": ratios,
        "merge_ms_median": statistics.median(r["merge_s"] for r in results[2]) * 1e3,
        "merge_share_of_wall_max": max(merge_share),
        "machine_ceiling_median": statistics.median(ceilings),
        "machine_ceilings": ceilings,
        "rounds": results,
    }
    print(f"one worker {summary['one_worker_hits_per_s']:,.0f} hits/s, two workers "
          f"{summary['two_workers_hits_per_s']:,.0f} hits/s: x{summary['paired_ratio_median']:.2f}"
          f" paired by round ({', '.join(f'{x:.2f}' for x in ratios)}); merge "
          f"{summary['merge_ms_median']:.1f} ms, at most {max(merge_share):.3%} of a run's "
          "wall time; this machine gives two busy processes "
          f"x{summary['machine_ceiling_median']:.2f} of one "
          f"({', '.join(f'{x:.2f}' for x in ceilings)})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
