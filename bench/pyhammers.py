#!/usr/bin/env python3
"""Per-hit cost of Python hammers against locust, one core each.

    python bench/pyhammers.py [--duration 5s] [--rounds 3] [--scenario noop get-closed get-open]
                              [--rates 50000 20000] [--connections 16] [--get-rate 2000]
                              [--json out.json]

Run it with an interpreter that can import hammer, and locust and aiohttp for the
peers and the GET hammer (a venv with --system-site-packages sees the installed
hammer): both tools run as `sys.executable -m ...`. A scenario whose package is missing
is skipped, with a note.

Scenarios (each client pinned to CPU 1 with `taskset -c 1`; nginx, when there is one,
to CPU 0; clients alternate within every round: A B C A B C ...):

  noop        a Python hammer whose async hit() does nothing (bench/pyhammer_targets.py
              Noop), open loop at each --rates R for D seconds, plus closed loop with
              --noop-connections hits in flight (its top rate); against locust with a
              User whose task does nothing and wait_time = constant(0) (locust's top rate
              on one core), twice: `locust-noop` counts its calls in a global (nothing
              else: the cheapest a locust task can be), `locust-noop-event` also fires
              events.request per call, timed as FastHttpUser times a request (so it is
              recorded into locust's stats, as hammer records every hit). Both again
              paced at the first --rates R, hammer's job (`locust-noop@R`,
              `locust-noop-event@R`: --paced-users users, constant_throughput(R / N)).
              Each round also runs the wake floor: bench/wake_floor.py (the event loop's
              timer wakes alone) and bench/wake_floor.c (the same wakes from C).
  get-closed  one GET per hit on a private nginx: the AiohttpGet hammer (one aiohttp
              ClientSession, TCPConnector(limit=N)) closed loop with N hits in flight,
              against locust's FastHttpUser with N users and constant(0).
  get-open    the same at --get-rate req/s: hammer open loop (-r, N in flight at most),
              locust with N users and constant_throughput(rate / N) (locust's nearest to
              an open loop: a paced closed loop).

Per run: calls (hammer: the report's counts; locust: its own counter / stats), CPU time
of exactly that child (rusage from os.wait4, user + sys), and the load phase's CPU alone
(getrusage inside the client at the start and end of its load phase: hammer's setup() and
teardown(), locust's test_start and test_stop), so that start-up (imports: about 0.15 s
for hammer, 0.6-0.9 s for locust) does not decide a short run. Hammer's send lag, latency
and exact counts come from its JSON report; with nginx, its stub_status `requests` delta
(minus the driver's own status queries) is set against each client's count. For each pair
(hammer vs a locust client) the CPU-µs per call ratio is given for every round and as the
median of those paired ratios. All traffic goes to 127.0.0.1; every client is killed (by
pid) D + 30 s after its start. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# bench/run.py's parts (bench/hb): pinned runs with their own rusage, the private nginx,
# CPU stats
from hb.build import compile_c  # noqa: E402
from hb.cli import parse_duration  # noqa: E402
from hb.nginx import Nginx  # noqa: E402
from hb.procs import (  # noqa: E402
    CLIENT_CPU,
    HARD_TIMEOUT_EXTRA_S,
    SERVER_CPU,
    cpu_stat,
    log,
    proc_cpu_s,
    run_pinned,
)

from servers import find_nginx  # noqa: E402

SCENARIOS = ("noop", "get-closed", "get-open")
NOISE_FRAC = 0.10          # a run where others took > 10 % of a core it uses is flagged
CPU_GOAL = 0.10            # noop: hammer's CPU per call at most 1/10 of locust's
LAG_GOAL_MS = 1.0          # noop: send-lag p99 at most 1 ms
RATE_GOAL = 0.999          # noop: achieved rate at least 99.9 % of the target

# -- locustfiles (written into the temp dir) ---------------------------------------------

LOCUST_HEAD = '''\
"""Written by bench/pyhammers.py. Counts task calls in CALLS; at test_start and
test_stop notes the clock and this process's CPU time (getrusage: all threads), and at
test_stop writes them with locust's own request counts to $PYB_OUT (JSON)."""
import json
import os
import resource
import time

from locust import events

OUT = os.environ["PYB_OUT"]
CALLS = [0]
WINDOW = {}


def _cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@events.test_start.add_listener
def _start(environment, **kw):
    WINDOW.update(t0=time.monotonic(), cpu0=_cpu(), calls0=CALLS[0])


@events.test_stop.add_listener
def _stop(environment, **kw):
    if "t1" in WINDOW:
        return
    WINDOW.update(t1=time.monotonic(), cpu1=_cpu(), calls1=CALLS[0])
    total = environment.stats.total
    WINDOW.update(requests=total.num_requests, failures=total.num_failures)
    if total.num_requests:
        WINDOW.update(p50_ms=total.get_response_time_percentile(0.5),
                      p99_ms=total.get_response_time_percentile(0.99))
    with open(OUT, "w") as f:
        json.dump(WINDOW, f)
'''

LOCUST_PACING = '''

from locust import User, constant, constant_throughput, task  # noqa: E402

PER_USER_RPS = float(os.environ.get("PYB_PER_USER_RPS") or 0)
'''

LOCUST_NOOP = LOCUST_HEAD + LOCUST_PACING + '''

class Noop(User):
    """A task that does nothing but count itself (at top speed, or paced)."""
    wait_time = constant_throughput(PER_USER_RPS) if PER_USER_RPS else constant(0)

    @task
    def noop(self):
        CALLS[0] += 1
'''

LOCUST_NOOP_EVENT = LOCUST_HEAD + LOCUST_PACING + '''

class NoopEvent(User):
    """A task that does nothing, timed and recorded as a request (as FastHttpUser does)."""
    wait_time = constant_throughput(PER_USER_RPS) if PER_USER_RPS else constant(0)

    @task
    def noop(self):
        CALLS[0] += 1
        start = time.perf_counter()
        self.environment.events.request.fire(
            request_type="noop", name="noop",
            response_time=(time.perf_counter() - start) * 1000.0,
            response_length=0, exception=None, context={})
'''

LOCUST_GET = LOCUST_HEAD + '''

from locust import FastHttpUser, constant, constant_throughput, task  # noqa: E402

PER_USER_RPS = float(os.environ.get("PYB_PER_USER_RPS") or 0)


class Get(FastHttpUser):
    """One GET / per task; closed loop, or paced to PYB_PER_USER_RPS per user."""
    wait_time = constant_throughput(PER_USER_RPS) if PER_USER_RPS else constant(0)

    @task
    def get(self):
        CALLS[0] += 1
        self.client.get("/")
'''

LOCUSTFILES = {"noop": LOCUST_NOOP, "noop_event": LOCUST_NOOP_EVENT, "get": LOCUST_GET}


# -- clients and runs ------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    name: str                   # e.g. hammer-noop@50000, locust-get-closed
    tool: str                   # hammer | locust
    scenario: str
    rate: int | None = None     # open loop (hammer) / paced (locust) rate, total
    concurrency: int = 0        # hammer: hits in flight (-c); locust: users
    target: str = ""            # hammer: module:Class; locust: a LOCUSTFILES key
    pacing: str | None = None   # hammer: --pacing (None: its default)


@dataclass
class RunRecord:
    scenario: str
    client: str
    round: int
    argv: list[str]
    ok: bool
    failure: str | None
    exit_code: int | None
    calls: int | None = None                # hits completed / task calls
    rate_rps: float | None = None           # hammer: achieved or throughput; locust: per window
    cpu_s: float | None = None              # wait4: user + sys of the whole process
    cpu_user_s: float | None = None
    cpu_sys_s: float | None = None
    cpu_us_per_call: float | None = None
    load_cpu_s: float | None = None         # inside the client, over its load phase
    load_s: float | None = None
    load_cpu_us_per_call: float | None = None
    send_lag_p50_ms: float | None = None
    send_lag_p99_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    exact: bool | None = None               # hammer noop: scheduled == sent == ok, none lost
    errors: int | None = None
    server_requests: int | None = None      # nginx stub_status delta
    server_minus_client: int | None = None
    server_cpu_us_per_request: float | None = None
    wall_s: float | None = None
    machine: dict[str, float] = field(default_factory=dict)


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.duration_s: int = args.duration_s
        self.client_cpu = None if args.no_pin else CLIENT_CPU
        self.nginx: Nginx | None = None
        self.locustfiles: dict[str, Path] = {}
        for key, text in LOCUSTFILES.items():
            path = tmp / f"locustfile_{key}.py"
            path.write_text(text)
            self.locustfiles[key] = path

    # ---------------------------------------------------------------- argv

    def hammer_argv(self, c: Client, window: Path, report: Path) -> list[str]:
        config: dict[str, Any] = {"window_file": str(window)}
        if c.target.endswith(":AiohttpGet"):
            assert self.nginx is not None
            config.update(url=self.nginx.base_url + "/", limit=c.concurrency)
        argv = [sys.executable, "-m", "hammer", "run", "--hammer", c.target,
                "--hammer-config", json.dumps(config), "-d", f"{self.duration_s}s",
                "--json", str(report), "-q"]
        if c.rate:
            argv += ["-r", str(c.rate)]
        if c.concurrency:
            argv += ["-c", str(c.concurrency)]
        if c.pacing:
            argv += ["--pacing", c.pacing]
        return argv

    def locust_argv(self, c: Client) -> list[str]:
        argv = [sys.executable, "-m", "locust", "-f", str(self.locustfiles[c.target]),
                "--headless", "-u", str(c.concurrency),
                # all users at once (-r N with N users would ramp them up over 1 s)
                "-r", str(max(c.concurrency, 100)),
                "-t", f"{self.duration_s}s", "--only-summary", "--loglevel", "WARNING"]
        if self.nginx is not None and c.target == "get":
            argv += ["--host", self.nginx.base_url]
        return argv

    def env(self, c: Client, out: Path) -> dict[str, str]:
        env = dict(os.environ)
        if c.tool == "hammer":
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
        else:
            env["PYB_OUT"] = str(out)
            if c.rate:
                env["PYB_PER_USER_RPS"] = repr(c.rate / c.concurrency)
        return env

    # ---------------------------------------------------------------- one run

    def run(self, c: Client, rnd: int) -> RunRecord:
        workdir = self.tmp / "runs" / f"{c.name.replace('@', '-')}-r{rnd}"
        workdir.mkdir(parents=True, exist_ok=True)
        window = workdir / "window.json"       # hammer's setup/teardown, locust's $PYB_OUT
        report = workdir / "report.json"
        argv = (self.hammer_argv(c, window, report) if c.tool == "hammer"
                else self.locust_argv(c))
        nginx = self.nginx if c.scenario.startswith("get") else None
        before = calls0 = 0
        srv0 = 0.0
        if nginx is not None:
            if not nginx.alive():
                log("  nginx is gone: restarting it")
                nginx.start()
            nginx.wait_idle()
            before = nginx.status()["requests"]
            calls0 = nginx.status_calls
            srv0 = sum(proc_cpu_s(pid) for pid in nginx.workers)
        cpus0 = cpu_stat()
        res = run_pinned(argv, self.client_cpu, self.duration_s + HARD_TIMEOUT_EXTRA_S,
                         workdir, env=self.env(c, window))
        cpus1 = cpu_stat()
        rec = RunRecord(scenario=c.scenario, client=c.name, round=rnd, argv=res.argv,
                        ok=False, failure=None, exit_code=res.returncode, cpu_s=res.cpu_s,
                        cpu_user_s=res.user_s, cpu_sys_s=res.sys_s, wall_s=res.wall_s)
        srv_cpu = 0.0
        if nginx is not None:
            srv_cpu = sum(proc_cpu_s(pid) for pid in nginx.workers) - srv0
            rec.machine["server_cpu_s"] = srv_cpu
        # others' CPU time on the cores this run uses (noise): busy minus our own
        for label, cpu, own in (("client", self.client_cpu, res.cpu_s),
                                ("server", SERVER_CPU if nginx else None, srv_cpu)):
            if cpu is not None and cpu in cpus0 and cpu in cpus1:
                busy = cpus1[cpu][0] - cpus0[cpu][0]
                rec.machine[f"{label}_core_other_frac"] = max(busy - own, 0.0) / res.wall_s
                rec.machine[f"{label}_core_steal_frac"] = (
                    (cpus1[cpu][1] - cpus0[cpu][1]) / res.wall_s)
        if nginx is not None:
            try:
                nginx.wait_idle()
                after = nginx.status()["requests"]
                rec.server_requests = after - before - (nginx.status_calls - calls0)
            except (OSError, http.client.HTTPException) as exc:
                log(f"  stub_status failed after the run: {exc}")
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        if res.timed_out:
            rec.failure = f"hard timeout: killed after {res.wall_s:.1f}s"
        # hammer's exit 3: it ran, but fell behind its schedule (send lag, unsent): a
        # measurement. locust's exit 1: some requests failed (counted as errors).
        elif res.returncode not in ((0, 3) if c.tool == "hammer" else (0, 1)):
            rec.failure = f"exit {res.returncode} (signal {res.signal}): {tail or '(no output)'}"
        try:
            if c.tool == "hammer":
                self._read_hammer(rec, report, window)
            else:
                self._read_locust(rec, window)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            rec.failure = rec.failure or f"no result ({type(exc).__name__}: {exc}): {tail}"
        if rec.calls:
            rec.cpu_us_per_call = res.cpu_s * 1e6 / rec.calls
        if rec.server_requests is not None and rec.calls is not None:
            rec.server_minus_client = rec.server_requests - rec.calls - (rec.errors or 0)
            if rec.server_requests:
                rec.server_cpu_us_per_request = srv_cpu * 1e6 / rec.server_requests
        rec.ok = rec.failure is None and bool(rec.calls)
        if rec.failure is None and not rec.calls:
            rec.failure = "no call completed"
        return rec

    @staticmethod
    def _window(rec: RunRecord, window: Path, calls: int) -> None:
        w = json.loads(window.read_text())
        rec.load_cpu_s = w["cpu1"] - w["cpu0"]
        rec.load_s = w["t1"] - w["t0"]
        if calls:
            rec.load_cpu_us_per_call = rec.load_cpu_s * 1e6 / calls

    def _read_hammer(self, rec: RunRecord, report: Path, window: Path) -> None:
        rep = json.loads(report.read_text())
        counts = rep["counts"]
        rec.counts = {k: int(v) for k, v in counts.items()}
        rec.calls = counts["completed"]
        rec.errors = counts["error"]
        open_loop = rep.get("mode") == "open"
        rec.rate_rps = rep["rate"]["achieved_rps"] if open_loop else rep["throughput_rps"]
        rec.send_lag_p50_ms = (rep.get("send_lag_ms") or {}).get("p50")
        rec.send_lag_p99_ms = (rep.get("send_lag_ms") or {}).get("p99")
        rec.latency_p50_ms = (rep.get("latency_ms") or {}).get("p50")
        rec.latency_p99_ms = (rep.get("latency_ms") or {}).get("p99")
        rec.exact = (counts["scheduled"] == counts["sent"] == counts["ok"]
                     and counts["unsent"] == counts["error"] == counts["http_error"] == 0)
        if rec.calls:
            # every hit runs between setup() and teardown()
            self._window(rec, window, rec.calls)

    def _read_locust(self, rec: RunRecord, window: Path) -> None:
        w = json.loads(window.read_text())
        calls = w["calls1"] - w["calls0"]
        if w.get("requests"):
            # a request event per call (noop-event, FastHttpUser): locust's own count
            rec.calls = int(w["requests"])
            rec.errors = int(w.get("failures") or 0)
            rec.calls -= rec.errors
            rec.latency_p50_ms = w.get("p50_ms")
            rec.latency_p99_ms = w.get("p99_ms")
        else:
            rec.calls = calls       # noop: no request recorded, our own counter
        rec.counts = {"task_calls": calls, "requests": int(w.get("requests") or 0),
                      "failures": int(w.get("failures") or 0)}
        self._window(rec, window, calls)
        if rec.load_s:
            rec.rate_rps = calls / rec.load_s


# -- clients per scenario ----------------------------------------------------------------


def clients_for(scenario: str, args: argparse.Namespace) -> list[Client]:
    if scenario == "noop":
        out = []
        locusts = [Client("locust-noop", "locust", scenario, concurrency=args.noop_users,
                          target="noop"),
                   Client("locust-noop-event", "locust", scenario,
                          concurrency=args.noop_users, target="noop_event")]
        if args.rates and args.paced_users:
            # the same job as hammer's: the goal rate, paced (constant_throughput per user)
            r = args.rates[0]
            locusts += [Client(f"locust-noop@{r}", "locust", scenario, rate=r,
                               concurrency=args.paced_users, target="noop"),
                        Client(f"locust-noop-event@{r}", "locust", scenario, rate=r,
                               concurrency=args.paced_users, target="noop_event")]
        # hammer and locust alternate: hammer@R1, locust-noop, hammer@R2, locust-noop-event..
        hammers = [Client(f"hammer-noop@{r}", "hammer", scenario, rate=r,
                          target="pyhammer_targets:Noop") for r in args.rates]
        if args.pacing_variant and args.rates:
            # the first rate again at a coarser pacing quantum: fewer wakes, more send lag
            hammers.append(Client(f"hammer-noop@{args.rates[0]}/{args.pacing_variant}",
                                  "hammer", scenario, rate=args.rates[0],
                                  target="pyhammer_targets:Noop", pacing=args.pacing_variant))
        hammers.append(Client("hammer-noop-closed", "hammer", scenario,
                              concurrency=args.noop_connections,
                              target="pyhammer_targets:Noop"))
        for i, h in enumerate(hammers):
            out.append(h)
            if i < len(locusts):
                out.append(locusts[i])
        out.extend(locusts[len(hammers):])
        return out
    n = args.connections
    rate = args.get_rate if scenario == "get-open" else None
    return [Client(f"hammer-{scenario}", "hammer", scenario, rate=rate, concurrency=n,
                   target="pyhammer_targets:AiohttpGet"),
            Client(f"locust-{scenario}", "locust", scenario, rate=rate, concurrency=n,
                   target="get")]


def pairs_for(scenario: str, clients: list[Client]) -> list[tuple[str, str]]:
    hammers = [c.name for c in clients if c.tool == "hammer"]
    locusts = [c.name for c in clients if c.tool == "locust"]
    return [(h, lc) for h in hammers for lc in locusts]


# -- summaries -----------------------------------------------------------------------------


def _med(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def summarise(runs: list[RunRecord], clients: list[Client]) -> list[dict[str, Any]]:
    out = []
    for c in clients:
        rs = [r for r in runs if r.client == c.name and r.ok]
        allr = [r for r in runs if r.client == c.name]
        out.append({
            "client": c.name, "tool": c.tool, "runs_ok": len(rs), "runs": len(allr),
            "rate_rps": _med([r.rate_rps for r in rs]),
            "calls": _med([r.calls for r in rs]),
            "cpu_us_per_call": _med([r.cpu_us_per_call for r in rs]),
            "load_cpu_us_per_call": _med([r.load_cpu_us_per_call for r in rs]),
            "send_lag_p99_ms": _med([r.send_lag_p99_ms for r in rs]),
            "send_lag_p99_ms_max": max((r.send_lag_p99_ms for r in rs
                                        if r.send_lag_p99_ms is not None), default=None),
            "latency_p50_ms": _med([r.latency_p50_ms for r in rs]),
            "latency_p99_ms": _med([r.latency_p99_ms for r in rs]),
            "exact": (None if c.tool != "hammer" else
                      f"{sum(bool(r.exact) for r in rs)}/{len(rs)}"),
            "server_minus_client": [r.server_minus_client for r in allr],
            "server_cpu_us_per_request": _med([r.server_cpu_us_per_request for r in rs]),
            "noisy_rounds": [r.round for r in allr
                             if max(r.machine.get("client_core_other_frac", 0.0),
                                    r.machine.get("server_core_other_frac", 0.0))
                             > NOISE_FRAC],
            "failures": [f"round {r.round}: {r.failure}" for r in allr if not r.ok],
        })
    return out


def paired(runs: list[RunRecord], a: str, b: str, key: str) -> tuple[list[float], float | None]:
    """Per round: a's key / b's key (both runs ok); and the median of those ratios."""
    by = {(r.client, r.round): r for r in runs if r.ok}
    ratios = []
    for rnd in sorted({r.round for r in runs}):
        ra, rb = by.get((a, rnd)), by.get((b, rnd))
        va = getattr(ra, key) if ra else None
        vb = getattr(rb, key) if rb else None
        if va is not None and vb:
            ratios.append(va / vb)
    return ratios, (statistics.median(ratios) if ratios else None)


def render(scenario: str, summaries: list[dict[str, Any]], runs: list[RunRecord],
           pairs: list[tuple[str, str]]) -> list[str]:
    lines = [f"## {scenario}", "",
             "| client | rate/s | calls | CPU µs/call (process) | CPU µs/call (load phase) "
             "| send-lag p99 ms | latency p50 / p99 ms | exact | nginx − client "
             "| nginx CPU µs/req | runs ok | noisy rounds |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | --- |"]
    for s in summaries:
        lat = (f"{_fmt(s['latency_p50_ms'], '.3f')} / {_fmt(s['latency_p99_ms'], '.3f')}"
               if s["latency_p50_ms"] is not None else "-")
        smc = s["server_minus_client"]
        smc_text = "-" if all(v is None for v in smc) else " ".join(
            "?" if v is None else str(v) for v in smc)
        lines.append(
            f"| {s['client']} | {_fmt(s['rate_rps'], ',.0f')} | {_fmt(s['calls'], ',.0f')} "
            f"| {_fmt(s['cpu_us_per_call'], '.2f')} | {_fmt(s['load_cpu_us_per_call'], '.2f')} "
            f"| {_fmt(s['send_lag_p99_ms'], '.3f')} | {lat} | {s['exact'] or '-'} "
            f"| {smc_text} | {_fmt(s['server_cpu_us_per_request'], '.1f')} "
            f"| {s['runs_ok']}/{s['runs']} | {' '.join(map(str, s['noisy_rounds'])) or '-'} |")
    lines += ["", "| pair: CPU µs/call ratio | process, per round | median | load phase, per round "
              "| median |", "| --- | --- | ---: | --- | ---: |"]
    for a, b in pairs:
        pr, pm = paired(runs, a, b, "cpu_us_per_call")
        lr, lm = paired(runs, a, b, "load_cpu_us_per_call")
        lines.append(f"| {a} / {b} | {' '.join(f'{x:.3f}' for x in pr) or '-'} "
                     f"| {_fmt(pm, '.3f')} | {' '.join(f'{x:.3f}' for x in lr) or '-'} "
                     f"| {_fmt(lm, '.3f')} |")
    for s in summaries:
        for f in s["failures"]:
            lines.append(f"- failed: {s['client']} {f}")
    return lines


def _goal_lines(runs: list[RunRecord], name: str, rate: int) -> list[str]:
    rs = [r for r in runs if r.client == name]
    if not rs:
        return []
    held = [r for r in rs if r.ok and r.rate_rps is not None and r.rate_rps >= RATE_GOAL * rate
            and r.send_lag_p99_ms is not None and r.send_lag_p99_ms <= LAG_GOAL_MS and r.exact]
    lines = [f"- {name}: rate held (>= {RATE_GOAL:.1%}), send-lag p99 <= {LAG_GOAL_MS} ms and "
             f"exact counts in {len(held)}/{len(rs)} rounds (send-lag p99 by round: "
             + " ".join(_fmt(r.send_lag_p99_ms, ".3f") for r in rs) + " ms): "
             + ("MET" if len(held) == len(rs) else "MISSED")]
    for other in ("locust-noop-event", "locust-noop", f"locust-noop-event@{rate}",
                  f"locust-noop@{rate}"):
        for key, what in (("load_cpu_us_per_call", "load phase"),
                          ("cpu_us_per_call", "whole process")):
            _, med = paired(runs, name, other, key)
            if med is not None:
                lines.append(f"- {name} / {other}, CPU per call ({what}): median ratio "
                             f"{med:.3f} (goal <= {CPU_GOAL}): "
                             + ("MET" if med <= CPU_GOAL else "MISSED"))
    return lines


def noop_goals(runs: list[RunRecord], rates: list[int], floors: list[dict[str, float]],
               pacing_variant: str | None = None,
               c_floors: list[dict[str, float]] | None = None) -> list[str]:
    """The noop goals: 50k/s (the first --rates) held with send-lag p99 <= 1 ms and exact
    counts in every round; hammer's CPU per call <= 1/10 of locust's (median of ratios);
    and the floor under them, what the event loop's wakes alone cost (wake_floor.py)."""
    if not rates:
        return []
    rate = rates[0]
    names = [f"hammer-noop@{rate}"]
    if pacing_variant:
        names.append(f"hammer-noop@{rate}/{pacing_variant}")
    lines: list[str] = []
    for name in names:
        lines += _goal_lines(runs, name, rate)
    for paced in (f"locust-noop-event@{rate}", f"locust-noop@{rate}"):
        delivered = [r.rate_rps for r in runs if r.client == paced and r.ok]
        if delivered:
            lines.append(f"- {paced} delivered " + " ".join(f"{x:,.0f}" for x in delivered)
                         + f" calls/s by round (asked {rate:,})")
    if floors:
        per_wake = statistics.median(f["cpu_us_per_wake"] for f in floors)
        per_s = statistics.median(f["wakes_per_s"] for f in floors)
        floor = per_wake * per_s / rate
        locust = [r.load_cpu_us_per_call for r in runs
                  if r.client == "locust-noop" and r.load_cpu_us_per_call]
        versus = (f", {floor / statistics.median(locust):.3f} of locust-noop's load-phase "
                  "CPU per call" if locust else "")
        lines.append(f"- floor: the event loop's wakes alone (bench/wake_floor.py, the same "
                     f"{floors[0]['quantum_us']:.0f} µs quantum, pinned alike) cost "
                     f"{per_wake:.1f} µs of CPU each, {per_s:,.0f} a second: at {rate:,}/s "
                     f"that is {floor:.2f} µs per hit before any hit runs{versus}")
    if c_floors:
        per_wake = statistics.median(f["cpu_us_per_wake"] for f in c_floors)
        per_s = statistics.median(f["wakes_per_s"] for f in c_floors)
        lines.append(f"- the host's floor: the same wakes from C, no interpreter "
                     f"(bench/wake_floor.c) cost {per_wake:.1f} µs each, {per_s:,.0f} a "
                     f"second: {per_wake * per_s / rate:.2f} µs per hit at {rate:,}/s; wakes "
                     "came late by p99 " + " ".join(f"{f['late_p99_us']:.0f}"
                                                   for f in c_floors) + " µs by round")
    return lines


def wake_floor(bench: Bench, duration_s: float, tmp: Path,
               c_exe: str | None = None) -> dict[str, float]:
    """bench/wake_floor.py (or, given c_exe, its C twin wake_floor.c) at the Python
    hammers' pacing quantum, pinned like a client."""
    from hammer.plan import PYTHON_QUANTUM_NS

    quantum_us = str(PYTHON_QUANTUM_NS / 1e3)
    script = Path(__file__).resolve().parent / "wake_floor.py"
    argv = ([c_exe, quantum_us, str(duration_s)] if c_exe else
            [sys.executable, str(script), "--quantum-us", quantum_us,
             "--duration", str(duration_s)])
    res = run_pinned(argv, bench.client_cpu, duration_s + 30, tmp)
    if res.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed: {res.stderr.strip()[-300:]}")
    floor: dict[str, float] = json.loads(res.stdout.strip().splitlines()[-1])
    return floor


# -- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Per-hit cost of Python hammers against locust, one core each "
                    "(see bench/README.md).")
    p.add_argument("--duration", default="5s", help="each run (whole seconds; default 5s)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--scenario", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    p.add_argument("--rates", nargs="+", type=int, default=[50_000, 20_000],
                   help="noop: hammer's open-loop rates (default 50000 20000); the first "
                        "is the one the goals are checked at")
    p.add_argument("--pacing-variant", default="500us",
                   help="noop: also run the first rate at this --pacing quantum (default "
                        "500us; '' for none): fewer wakes, more send lag")
    p.add_argument("--noop-connections", type=int, default=64,
                   help="noop: hits in flight of hammer's closed-loop run (default 64)")
    p.add_argument("--noop-users", type=int, default=1,
                   help="noop: locust users at top speed (default 1: more users do not "
                        "raise its rate on one core)")
    p.add_argument("--paced-users", type=int, default=100,
                   help="noop: locust users of the paced peers, each at rate / N with "
                        "constant_throughput (default 100, the cheapest of 100, 500 and "
                        "2,000 here; 0: no paced peers)")
    p.add_argument("--connections", type=int, default=16,
                   help="get-*: hammer's hits in flight (and aiohttp connector limit), "
                        "locust's users (default 16)")
    p.add_argument("--get-rate", type=int, default=2000,
                   help="get-open: the fixed rate, req/s (default 2000)")
    p.add_argument("--nginx", default=None, help="nginx binary (default: found on PATH)")
    p.add_argument("--no-pin", action="store_true", help="do not pin anything (taskset)")
    p.add_argument("--json", default=None, help="write every run and summary here")
    args = p.parse_args(argv)
    args.duration_s = parse_duration(args.duration)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    notes: list[str] = []
    scenarios = list(dict.fromkeys(args.scenario))
    if importlib.util.find_spec("locust") is None:
        notes.append(f"locust is not importable by {sys.executable}: locust clients skipped")
    if any(s.startswith("get") for s in scenarios) and (
            importlib.util.find_spec("aiohttp") is None):
        notes.append("aiohttp is not importable: the get scenarios are skipped")
        scenarios = [s for s in scenarios if not s.startswith("get")]
    nginx_bin = args.nginx or find_nginx()
    if any(s.startswith("get") for s in scenarios) and not nginx_bin:
        notes.append("nginx not found: the get scenarios are skipped")
        scenarios = [s for s in scenarios if not s.startswith("get")]
    for n in notes:
        log(f"note: {n}")
    have_locust = importlib.util.find_spec("locust") is not None
    plan = {s: [c for c in clients_for(s, args) if have_locust or c.tool != "locust"]
            for s in scenarios}
    tmp = Path(tempfile.mkdtemp(prefix="pyhammers-"))
    bench = Bench(args, tmp)
    runs: list[RunRecord] = []
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "python": sys.executable,
        "duration_s": args.duration_s, "rounds": args.rounds, "notes": notes,
        "pinning": None if args.no_pin else {"client": CLIENT_CPU, "server": SERVER_CPU},
    }
    exit_code = 0
    try:
        import hammer
        result["hammer"] = {"file": hammer.__file__,
                            "version": getattr(hammer, "__version__", None)}
        # versions from the metadata: importing locust here would monkey-patch this
        # process with gevent, whose SIGCHLD handling reaps the clients before os.wait4
        if have_locust:
            result["locust"] = importlib.metadata.version("locust")
        if any(s.startswith("get") for s in scenarios):
            result["aiohttp"] = importlib.metadata.version("aiohttp")
            assert nginx_bin is not None
            bench.nginx = Nginx(nginx_bin, tmp / "nginx",
                                None if args.no_pin else SERVER_CPU)
            bench.nginx.start()
            log(f"nginx on {bench.nginx.base_url}, workers {bench.nginx.workers}")
        # page the tools in once, so the first run does not pay for a cold disk cache
        warm = [[sys.executable, "-c", "import hammer.runner, hammer._core, uvloop"]]
        if have_locust:
            warm.append([sys.executable, "-c", "import locust.main, locust.contrib.fasthttp"])
        for w in warm:
            run_pinned(w, bench.client_cpu, 60, tmp)
        floors: list[dict[str, float]] = []
        c_floors: list[dict[str, float]] = []
        c_floor_exe = compile_c(HERE / "wake_floor.c", tmp) if "noop" in scenarios else None
        for rnd in range(1, args.rounds + 1):
            if "noop" in scenarios:
                floors.append(wake_floor(bench, args.duration_s, tmp))
                log(f"round {rnd}/{args.rounds} wake floor: "
                    f"{floors[-1]['cpu_us_per_wake']:.1f} µs per wake, "
                    f"{floors[-1]['wakes_per_s']:,.0f}/s")
                if c_floor_exe:
                    c_floors.append(wake_floor(bench, args.duration_s, tmp, c_floor_exe))
                    log(f"round {rnd}/{args.rounds} wake floor in C: "
                        f"{c_floors[-1]['cpu_us_per_wake']:.1f} µs per wake, "
                        f"late p99 {c_floors[-1]['late_p99_us']:.0f} µs")
            for s in scenarios:
                for c in plan[s]:
                    log(f"round {rnd}/{args.rounds} {s}: {c.name} ...")
                    rec = bench.run(c, rnd)
                    runs.append(rec)
                    log("  " + (f"{_fmt(rec.rate_rps, ',.0f')}/s, {rec.calls} calls, "
                                f"CPU {_fmt(rec.cpu_us_per_call, '.2f')} µs/call "
                                f"(load phase {_fmt(rec.load_cpu_us_per_call, '.2f')}), "
                                f"send-lag p99 {_fmt(rec.send_lag_p99_ms, '.3f')} ms"
                                + (f", nginx - client {rec.server_minus_client}"
                                   if rec.server_minus_client is not None else "")
                                if rec.ok else f"FAILED: {rec.failure}"))
        out_lines = [f"pyhammers: {result['date']}, D={args.duration_s}s, "
                     f"{args.rounds} rounds, hammer {result['hammer']['file']}, "
                     f"locust {result.get('locust', '-')}, aiohttp {result.get('aiohttp', '-')}",
                     ""]
        result["summary"] = {}
        for s in scenarios:
            summaries = summarise(runs, plan[s])
            pairs = pairs_for(s, plan[s])
            result["summary"][s] = {
                "clients": summaries,
                "pairs": {f"{a} / {b}": {k: dict(zip(("per_round", "median"),
                                                      paired(runs, a, b, k), strict=True))
                                         for k in ("cpu_us_per_call", "load_cpu_us_per_call")}
                          for a, b in pairs}}
            out_lines += [*render(s, summaries, runs, pairs), ""]
        if "noop" in scenarios:
            goals = noop_goals(runs, args.rates, floors, args.pacing_variant, c_floors)
            result["noop_goals"] = goals
            result["wake_floor"] = floors
            result["wake_floor_c"] = c_floors
            out_lines += ["## noop goals", "", *goals, ""]
        print("\n".join(out_lines))
        if any(not r.ok for r in runs):
            exit_code = 1
    except KeyboardInterrupt:
        log("interrupted: stopping")
        exit_code = 130
    except RuntimeError as exc:
        log(f"error: {exc}")
        exit_code = 1
    finally:
        if bench.nginx is not None:
            result["nginx_error_log_tail"] = bench.nginx.error_log().strip().splitlines()[-5:]
            bench.nginx.stop()
        result["runs"] = [asdict(r) for r in runs]
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
            log(f"wrote {args.json}")
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp, ignore_errors=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
