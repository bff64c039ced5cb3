"""Benchmark driver: hammer against its peers (wrk, wrk2, hey, ab, h2load) on nginx.

    python bench/run.py [--duration 10s] [--rounds 3] [--connections 64]
                        [--scenario NAME ...] [--client NAME ...]
                        [--wrk2 PATH | --wrk2-src DIR]
                        [--hammer-pythonpath DIR] [--baseline REF] [--json out.json]

nginx (one worker, private config from bench/nginx.conf.template, a private prefix in a
temp dir) runs pinned to CPU 0; every client runs pinned to CPU 1 (`taskset -c 1 ...`),
so each side has one core. Runs alternate over rounds (A B C A B C ...). For each run
the driver records what the client says it completed, what nginx says it served
(stub_status `requests` delta, minus the driver's own status queries), the client's CPU
time and peak RSS from the rusage of exactly that child (os.wait4), and the latency
percentiles the tool prints. With --baseline REF, every hammer client runs twice per
round, the second time as hammer-base (hammer as of REF, built into a temp dir), and the
tables give their paired ratio. See bench/README.md.

Standard library plus hammer, and tests/servers.py (standard library only) for what the
tests do alike: free ports, finding nginx and its workers, stub_status, the test PKI.
Every run is bounded: the tool stops itself after the
duration, and the driver SIGKILLs it (by pid) DURATION + 30 s after the start.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hammer import units
from servers import find_nginx

from . import spacing
from .build import HammerBuild, build_hammer, build_wrk2, compile_floor, compile_hammer
from .clients import ALL_CLIENTS, Tools
from .nginx import Nginx
from .procs import CLIENT_CPU, SERVER_CPU, log
from .report import baseline_ratios, describe, live_ratios, render_spacing, render_table
from .runs import (
    HELP_SAMPLES,
    RunRecord,
    calibrate,
    do_run,
    failed_run,
    hammer_fixed_cost,
    help_timing,
)
from .scenarios import OPEN_SCENARIOS, SCENARIOS, THREADS_MIN_ROUNDS, build_scenario
from .stats import ClientSummary, fmt, pct, summarise


def parse_duration(text: str) -> int:
    ns = units.parse_duration_ns(text)
    secs = -(-ns // 1_000_000_000)
    if secs * 1_000_000_000 != ns:
        log(f"note: --duration {text} rounded up to {secs}s (ab and h2load take whole seconds)")
    return int(secs)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", default="10s", help="length of each run (default 10s)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--connections", type=int, default=64,
                    help="connections for closed-64, open-*, 64k, threads-2 (default 64)")
    ap.add_argument("--scenario", action="extend", nargs="+", choices=SCENARIOS,
                    metavar="NAME", help=f"scenarios to run (default all): {', '.join(SCENARIOS)}")
    ap.add_argument("--client", action="extend", nargs="+", choices=ALL_CLIENTS, metavar="NAME",
                    help="only these clients (default all available)")
    wrk2 = ap.add_mutually_exclusive_group()
    wrk2.add_argument("--wrk2", metavar="PATH", help="a wrk2 binary (open-loop scenarios)")
    wrk2.add_argument("--wrk2-src", metavar="DIR",
                      help="a wrk2 source tree (github.com/giltene/wrk2): run make in it "
                           "(in a copy in the temp dir when it is not writable) and use the "
                           "wrk binary it builds, as --wrk2 would")
    ap.add_argument("--nginx", default=find_nginx() or "/usr/sbin/nginx",
                    help="nginx binary (default: from PATH, else /usr/sbin/nginx, "
                         "/usr/local/sbin/nginx or /usr/local/nginx/sbin/nginx)")
    ap.add_argument("--json", metavar="PATH", help="write every run and summary here")
    ap.add_argument("--spacing", action="store_true",
                    help="open-loop scenarios (open-*): capture with tcpdump, on the loopback, "
                         "when each request reaches nginx's port, and report how evenly each "
                         "client spaces them (per-ms counts, crowded windows, gaps); tcpdump "
                         "runs pinned to nginx's core; needs root")
    ap.add_argument("--no-pin", action="store_true", help="do not pin server and client CPUs")
    ap.add_argument("--hammer-pythonpath", metavar="DIR",
                    help="run the hammer clients with PYTHONPATH=DIR (a build of hammer, e.g. "
                         "`pip install --target DIR .`; default: the installed hammer)")
    ap.add_argument("--baseline", metavar="REF",
                    help="build hammer as of git REF into a temp dir and run it as hammer-base "
                         "beside every hammer client, with the same arguments; the tables "
                         "give hammer/hammer-base paired round by round")
    ap.add_argument("--live-view", action="store_true",
                    help="run hammer twice per round, the second time with its live view "
                         "forced on (hammer-live), and give their paired CPU ratio")
    args = ap.parse_args(argv)
    try:
        duration_s = parse_duration(args.duration)
    except ValueError as exc:
        ap.error(f"--duration: {exc}")
    if args.rounds < 1 or args.connections < 1:
        ap.error("--rounds and --connections must be >= 1")
    if not os.access(args.nginx, os.X_OK):
        log(f"error: nginx not found at {args.nginx}")
        return 1
    if args.hammer_pythonpath and not Path(args.hammer_pythonpath).is_dir():
        ap.error(f"--hammer-pythonpath: {args.hammer_pythonpath} is not a directory")
    scenarios = [s for s in SCENARIOS if not args.scenario or s in args.scenario]
    tmp = Path(tempfile.mkdtemp(prefix="hammer-bench-"))
    hammers = {"hammer": HammerBuild(
        "hammer", str(Path(args.hammer_pythonpath).resolve()) if args.hammer_pythonpath
        else None)}
    try:
        if args.baseline:
            hammers["hammer-base"] = build_hammer(args.baseline, tmp / "baseline")
        build_notes = [compile_hammer(b) for b in hammers.values()]
        wrk2_path = args.wrk2
        if args.wrk2_src:
            wrk2_path = build_wrk2(Path(args.wrk2_src).resolve(), tmp)
            build_notes.append(f"wrk2: built from {args.wrk2_src}: {wrk2_path}")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        log(f"error: {exc}")
        shutil.rmtree(tmp, ignore_errors=True)
        return 1
    tools = Tools(wrk2_path, compile_floor(tmp), hammers)
    capture = args.spacing
    if capture and (why := spacing.available()):
        log(f"--spacing: {why}; no capture")
        capture = False

    notes: list[str] = []
    cpus = os.sched_getaffinity(0)
    server_cpu: int | None = SERVER_CPU
    client_cpu: int | None = CLIENT_CPU
    if args.no_pin or shutil.which("taskset") is None or not {SERVER_CPU, CLIENT_CPU} <= cpus:
        server_cpu = client_cpu = None
        notes.append("CPU pinning off (--no-pin, no taskset, or CPUs 0 and 1 not available)")
    if len(cpus) > 2:
        notes.append(f"{len(cpus)} CPUs: only CPU {SERVER_CPU} (nginx) and {CLIENT_CPU} "
                     "(client) are used")

    result: dict[str, Any] = {
        "meta": {"duration_s": duration_s, "rounds": args.rounds, "spacing": capture,
                 "connections": args.connections, "python": sys.version.split()[0],
                 "server_cpu": server_cpu, "client_cpu": client_cpu,
                 "tools": tools.paths, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "hammers": {t: asdict(b) for t, b in hammers.items()}},
        "notes": notes, "scenarios": {},
    }
    for line in build_notes:
        notes.append(line)
        log(line)
    work = tmp / "client"
    work.mkdir()
    nginx = Nginx(args.nginx, tmp / "nginx", server_cpu)
    head_lines: list[str] = []      # printed again at the end, after the tables
    base_lines: list[str] = []      # hammer against hammer-base, every scenario
    live_lines: list[str] = []      # hammer-live against hammer (--live-view)
    closed64: dict[str, ClientSummary] | None = None
    fixed_cpu_s: dict[str, float | None] = {}
    exit_code = 0
    try:
        for tool, build in hammers.items():
            help_t = help_timing(work, client_cpu, build)
            result[f"{tool.replace('-', '_')}_help"] = help_t
            line = ("" if tool == "hammer" else f"{tool}: ") + (
                f"python -m hammer --help: {help_t['wall_s_median'] * 1e3:.0f} ms wall (median "
                f"of {HELP_SAMPLES}), {help_t['cpu_s_median'] * 1e3:.0f} ms CPU; bare "
                f"`python -c pass`: {help_t['bare_python_wall_s_median'] * 1e3:.0f} ms"
                + ("" if help_t["ok"] else "  [FAILED]"))
            log(line)
            head_lines.append(line)

        nginx.start()
        result["meta"]["nginx"] = {"port": nginx.port, "prefix": str(nginx.prefix),
                                   "workers": nginx.workers, "pinning": nginx.pinning}
        log(f"nginx on {nginx.base_url} (master {nginx.proc.pid if nginx.proc else '?'}, "
            f"workers {nginx.workers}); " + "; ".join(nginx.pinning))
        for tool, build in hammers.items():
            fixed = hammer_fixed_cost(nginx.base_url + "/", work, client_cpu, build)
            result[f"{tool.replace('-', '_')}_fixed_cost"] = fixed
            fixed_cpu_s[tool] = fixed["cpu_s"] if fixed["ok"] else None
            line = (f"{tool} fixed cost per run (1-request run: start-up, imports, report): "
                    f"{fixed['cpu_s'] * 1e3:.0f} ms CPU, {fixed['wall_s'] * 1e3:.0f} ms wall, "
                    f"RSS {fixed['peak_rss_kib'] / 1024:.1f} MB"
                    + ("" if fixed["ok"] else " [FAILED]"))
            log(line)
            head_lines.append(line)

        for name in scenarios:
            rate = None
            calib: RunRecord | None = None
            if name == "open-max":
                rate, calib = calibrate(nginx, tools, args.connections, duration_s, work,
                                        client_cpu)
                log(f"[open-max] calibration (hammer closed loop): {describe(calib)}"
                    + (f" -> rate {rate:,}/s" if rate else ""))
            sc = build_scenario(name, tools, nginx.base_url, args.connections, duration_s, rate,
                                nginx.tls_url, nginx.ca_file)
            if calib is not None and calib.ok:
                busy = calib.machine.get("server_busy_frac")
                per_req = calib.machine.get("server_cpu_us_per_request")
                sc.notes.append(
                    f"calibration: hammer closed loop {calib.requests_per_s or 0:,.0f} req/s "
                    f"with nginx {fmt(pct(busy), '.0f')}% busy"
                    + (f" ({per_req:.1f} CPU-µs/req: about {1e6 / per_req:,.0f} req/s at 100 %)"
                       if per_req else "")
                    + ("; nginx was not saturated, so the client set the max"
                       if busy is not None and busy < 0.9 else ""))
            sc.clients = tools.with_baseline(sc.clients)
            if args.live_view:
                sc.clients = tools.with_live(sc.clients)
            # a baseline twin goes with its hammer client unless named itself
            skipped = [c for c in sc.clients if args.client and c.name not in args.client
                       and not (c.tool == "hammer-base"
                                and "hammer" + c.name.removeprefix("hammer-base")
                                in args.client)]
            if skipped:
                sc.notes.append("not selected: " + ", ".join(c.name for c in skipped))
            sc.clients = [c for c in sc.clients if c not in skipped]
            runs: list[RunRecord] = []
            rounds = args.rounds
            if name == "threads-2" and rounds < THREADS_MIN_ROUNDS:
                rounds = THREADS_MIN_ROUNDS
                sc.notes.append(f"{rounds} rounds (at least {THREADS_MIN_ROUNDS} for this "
                                "scenario: its verdict is a 10 % difference)")
            for rnd in range(1, rounds + 1):
                for client in sc.clients:
                    try:
                        rec = do_run(nginx, tools, name, client, rnd, work, client_cpu,
                                     capture=capture and name in OPEN_SCENARIOS)
                    except (OSError, RuntimeError, http.client.HTTPException) as exc:
                        rec = failed_run(name, client, rnd, f"{type(exc).__name__}: {exc}")
                    runs.append(rec)
                    log(f"[{name} {rnd}/{rounds}] {client.name}: {describe(rec)}")
            summaries = summarise(runs, sc.clients, fixed_cpu_s)
            base_lines.extend(f"{name}: {line}" for line in baseline_ratios(summaries))
            live_lines.extend(f"{name}: {line}" for line in live_ratios(summaries))
            if name == "closed-64":
                closed64 = {s.client: s for s in summaries}
            table = render_table(sc, summaries, closed64)
            spaced = spacing.summarise(runs, sc.clients, fixed_cpu_s)
            if capture and name in OPEN_SCENARIOS:
                table += "\n" + "\n".join(render_spacing(spaced, nginx.port))
            print(table + "\n", flush=True)
            result["scenarios"][name] = {
                "description": sc.description, "notes": sc.notes,
                "calibration": asdict(calib) if calib else None, "rate": rate,
                "summary": [asdict(s) for s in summaries], "runs": [asdict(r) for r in runs],
                "spacing": spaced,
            }
        for line in head_lines:
            print(line)
        if "hammer-base" in hammers:
            base = hammers["hammer-base"]
            print(f"hammer ({hammers['hammer'].package}) against hammer-base ({base.ref} = "
                  f"{base.commit}) (CPU-µs/req below 1: hammer is cheaper):")
            for line in base_lines or ["(no pair completed)"]:
                print(f"  {line}")
            result["baseline_ratios"] = base_lines
        if args.live_view:
            print("hammer with its live view (hammer-live) against without (CPU-µs/req above "
                  "1: the view costs):")
            for line in live_lines or ["(no pair completed)"]:
                print(f"  {line}")
            result["live_view_ratios"] = live_lines
    except KeyboardInterrupt:
        log("interrupted: stopping")
        exit_code = 130
    except RuntimeError as exc:
        log(f"error: {exc}")
        exit_code = 1
    finally:
        err_tail = nginx.error_log().strip().splitlines()[-5:]
        nginx.stop()
        result["nginx_error_log_tail"] = err_tail
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
            log(f"wrote {args.json}")
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code
