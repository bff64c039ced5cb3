#!/usr/bin/env python3
"""Pacing quanta side by side: hammer's open loop against nginx at one rate, each quantum
in turn within every round, client CPU per request and send lag.

    python bench/pacing_ab.py [--rate 20000] [--rounds 6] [--duration 5s]
        [--quantum 100us 150us ...] [--connections 64]

nginx (bench/hb/nginx.py) pinned to CPU 0, hammer to CPU 1, as bench/run.py runs them.
`auto` as a quantum runs without --pacing (the default). CPU per request is the client
process's user + sys over the requests it sent (start-up included, the same for every
quantum); the medians over rounds are printed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hb.nginx import Nginx  # noqa: E402  (puts tests/ on the path too)
from hb.procs import CLIENT_CPU, SERVER_CPU, log, run_pinned  # noqa: E402

from servers import find_nginx  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--quantum", nargs="+", default=["100us", "150us"])
    ap.add_argument("--hammer", default="hammer")
    args = ap.parse_args()
    binary = find_nginx()
    if binary is None:
        print("nginx not found", file=sys.stderr)
        return 2
    rows: dict[str, list[tuple[float, float]]] = {q: [] for q in args.quantum}
    with tempfile.TemporaryDirectory(prefix="hammer-pacing-ab-") as tmp:
        workdir = Path(tmp)
        nginx = Nginx(binary, workdir / "nginx", SERVER_CPU)
        nginx.start()
        try:
            for rnd in range(args.rounds):
                for quantum in args.quantum:
                    out = workdir / "report.json"
                    argv = [args.hammer, "run", nginx.base_url, "-r", str(args.rate),
                            "-d", args.duration, "-c", str(args.connections),
                            "--json", str(out), "-q"]
                    if quantum != "auto":
                        argv += ["--pacing", quantum]
                    proc = run_pinned(argv, CLIENT_CPU, 120, workdir)
                    report = json.loads(out.read_text())
                    us = proc.cpu_s / max(report["counts"]["sent"], 1) * 1e6
                    lag = report["send_lag_ms"]["p99"]
                    rows[quantum].append((us, lag))
                    log(f"round {rnd + 1} {quantum:>6}: {us:6.2f} us/req, send-lag p99 "
                        f"{lag:.3f} ms, exit {proc.returncode}")
        finally:
            nginx.stop()
    print(f"\n{args.rate:,}/s, {args.connections} connections, {args.duration} x "
          f"{args.rounds} rounds, medians:")
    for quantum, values in rows.items():
        print(f"  {quantum:>6}: {statistics.median(v[0] for v in values):6.2f} us/req, "
              f"send-lag p99 {statistics.median(v[1] for v in values):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
