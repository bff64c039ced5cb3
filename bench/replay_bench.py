#!/usr/bin/env python3
"""Access-log replay at scale: parse rate and memory of a million-line log, then the
replay's send lag at 20,000 req/s against a private nginx (one core each).

    python bench/replay_bench.py [--lines 1000000] [--urls 200000] [--replay-s 10]

The log is generated (combined format with a leading $msec, 1,000 requests a second,
--urls distinct paths with numbers and ids in them) into a temp dir. Parsing runs in a
child process so its peak RSS is its own (ru_maxrss), beside the RSS of a bare
interpreter that imported hammer. The replay takes the first --replay-s x 20,000 lines at
speed 20 and reports hammer's achieved rate, send lag and the count nginx served.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hb.nginx import Nginx  # noqa: E402
from hb.procs import SERVER_CPU  # noqa: E402

REPLAY_RATE = 20_000
LOG_RATE = 1_000


def write_log(path: Path, lines: int, urls: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    base = 1_764_600_000.0
    with open(path, "w") as f:
        for i in range(lines):
            u = rng.randrange(urls)
            kind = ("users", "items", "orders", "search")[u % 4]
            path_ = (f"/{kind}/{u}" if kind != "search" else f"/search?q=term{u}")
            f.write(f"{base + i / LOG_RATE:.3f} 203.0.113.{u % 250} - - "
                    f'[30/Nov/2026:13:55:36 -0700] "GET {path_} HTTP/1.1" 200 {u % 5000} '
                    f'"-" "bench/1.0"\n')


PARSE_CHILD = """
import json, resource, sys, time
from hammer.replay import build_timeline
t0 = time.perf_counter()
timeline = build_timeline([sys.argv[1]])
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "lines": timeline.stats.lines,
                  "requests": len(timeline.offsets_ns), "distinct": len(timeline.requests),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
BASE_CHILD = """
import json, resource
import hammer.replay
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                         text=True, check=True, timeout=600)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--urls", type=int, default=200_000)
    ap.add_argument("--replay-s", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hammer-replay-bench-") as tmp:
        log = Path(tmp) / "access.log"
        t0 = time.perf_counter()
        write_log(log, args.lines, args.urls)
        print(f"log: {args.lines:,} lines, {log.stat().st_size / 2**20:.0f} MiB, written in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
        base = child(BASE_CHILD)
        parse = child(PARSE_CHILD, str(log))
        rate = parse["lines"] / parse["seconds"]
        extra_mb = parse["peak_rss_mb"] - base["peak_rss_mb"]
        print(f"parse: {parse['lines']:,.0f} lines in {parse['seconds']:.2f} s = "
              f"{rate:,.0f} lines/s; {parse['distinct']:,.0f} distinct requests; peak RSS "
              f"{parse['peak_rss_mb']:.0f} MB ({extra_mb:.0f} MB above a bare import, "
              f"{extra_mb * 2**20 / parse['lines']:.0f} B a line)")
        # the replay: the first replay_s x 20,000 lines at speed 20 -> 20,000 req/s
        part = Path(tmp) / "part.log"
        n = args.replay_s * REPLAY_RATE
        with open(log) as src, open(part, "w") as dst:
            for i, line in enumerate(src):
                if i >= n:
                    break
                dst.write(line)
        import shutil

        (Path(tmp) / "nginx").mkdir()
        nginx = Nginx(shutil.which("nginx") or "/usr/sbin/nginx", Path(tmp) / "nginx",
                      SERVER_CPU)
        nginx.start()
        try:
            start_count = nginx.status()["requests"]
            cmd = ["taskset", "-c", "1", sys.executable, "-m", "hammer", "replay", str(part),
                   "--target", nginx.base_url, "--speed", str(REPLAY_RATE // LOG_RATE),
                   "--json", "-", "-q"]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                                 env=dict(os.environ))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            report = json.loads(out.stdout)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            # minus the two status requests of this count and the one before
            served = nginx.status()["requests"] - start_count - 1
        finally:
            nginx.stop()
        lag = report["send_lag_ms"]
        print(f"replay: {report['counts']['sent']:,} sent at {report['rate']['achieved_rps']:,.0f}"
              f"/s (asked {REPLAY_RATE:,}/s), nginx served {served:,}; send lag p50 "
              f"{lag['p50']:.3f} ms p99 {lag['p99']:.3f} ms max {lag['max']:.3f} ms; client CPU "
              f"{cpu / max(report['counts']['sent'], 1) * 1e6:.1f} us/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
