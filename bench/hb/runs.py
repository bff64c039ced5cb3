"""One run of a client against nginx, and what it records; the --help timing, hammer's
fixed per-run cost and the open-max calibration."""

from __future__ import annotations

import http.client
import json
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import spacing
from .build import HammerBuild
from .clients import HAMMER_START_NOFILE, HAMMERS, PARSERS, Client, Params, Parsed, Tools
from .nginx import Nginx
from .procs import HARD_TIMEOUT_EXTRA_S, cpu_stat, log, proc_cpu_s, run_pinned
from .scenarios import OPEN_MAX_FRACTION

HELP_SAMPLES = 5
CALIBRATION_MAX_S = 3


@dataclass
class RunRecord:
    scenario: str
    client: str
    round: int
    argv: list[str]
    ok: bool
    failure: str | None
    client_completed: int | None
    client_errors: int | None
    server_requests: int | None
    server_minus_client: int | None
    duration_s: float | None
    requests_per_s: float | None
    cpu_user_s: float
    cpu_sys_s: float
    cpu_us_per_request: float | None
    maxrss_kib: int                 # ru_maxrss from wait4 (inflated by the fork: see vm_hwm_kib)
    peak_rss_kib: int               # the client's own VmHWM (ru_maxrss if it could not be read)
    p50_ms: float | None
    p99_ms: float | None
    wall_s: float
    extra: dict[str, Any]
    machine: dict[str, Any]      # nginx CPU, and CPU time of others on the two cores
    spacing: dict[str, Any] | None = None   # --spacing: the capture's counts and figures

    @property
    def noise(self) -> float:
        """The largest share of a core that others used during the run, or that the
        hypervisor stole from it (a VM's steal time), on either core."""
        return max(self.machine.get(f"{core}_core_{what}_frac", 0.0)
                   for core in ("server", "client") for what in ("other", "steal"))


def do_run(nginx: Nginx, tools: Tools, scenario: str, client: Client, rnd: int,
           workdir: Path, client_cpu: int | None, capture: bool = False) -> RunRecord:
    """One run of client. capture: record when its requests reach nginx's port (tcpdump
    on lo, pinned to nginx's core) and analyse their spacing (hb.spacing)."""
    if not nginx.alive():
        log("  nginx is gone: restarting it")
        nginx.start()
    nginx.wait_idle()
    before = nginx.status()["requests"]
    calls0 = nginx.status_calls
    argv = tools.argv(client)
    nofile = HAMMER_START_NOFILE if client.tool in HAMMERS else None
    cap: spacing.Capture | None = None
    spaced: dict[str, Any] | None = None
    if capture:
        try:
            cap = spacing.start(nginx.port, workdir / "capture.pcap", nginx.pin_cpu)
        except (OSError, RuntimeError) as exc:
            log(f"  spacing: no capture: {exc}")
            spaced = {"error": str(exc)}
    client_done = time.monotonic()
    try:
        srv0 = sum(proc_cpu_s(pid) for pid in nginx.workers)
        cap0 = proc_cpu_s(cap.proc.pid) if cap else 0.0
        cpus0 = cpu_stat()
        res = run_pinned(argv, client_cpu, client.params.duration_s + HARD_TIMEOUT_EXTRA_S,
                         workdir, nofile_soft=nofile, env=tools.env(client))
        client_done = time.monotonic()
        cpus1 = cpu_stat()
        srv_cpu = sum(proc_cpu_s(pid) for pid in nginx.workers) - srv0
        cap_cpu = proc_cpu_s(cap.proc.pid) - cap0 if cap else 0.0
    finally:
        if cap is not None:
            spaced = spacing.measure(cap, client_done)
    # CPU time on the two cores that neither nginx nor the client accounts for: other
    # processes (noise), plus kernel work charged to no task (softirq, some loopback TCP)
    machine: dict[str, Any] = {"server_cpu_s": srv_cpu}
    if cap is not None:
        machine["capture_cpu_s"] = cap_cpu    # tcpdump, on the server's core: not noise
    for label, cpu, own in (("server", nginx.pin_cpu, srv_cpu + cap_cpu),
                            ("client", client_cpu, res.cpu_s)):
        if cpu is not None and cpu in cpus0 and cpu in cpus1:
            busy = cpus1[cpu][0] - cpus0[cpu][0]
            machine[f"{label}_core_busy_s"] = busy
            machine[f"{label}_core_other_frac"] = max(busy - own, 0.0) / res.wall_s
            steal = cpus1[cpu][1] - cpus0[cpu][1]
            machine[f"{label}_core_steal_s"] = steal
            machine[f"{label}_core_steal_frac"] = steal / res.wall_s
    server: int | None = None
    try:
        nginx.wait_idle()
        after = nginx.status()["requests"]
        server = after - before - (nginx.status_calls - calls0)
    except (OSError, http.client.HTTPException) as exc:
        log(f"  stub_status failed after the run: {exc}")
    failure = None
    parsed = Parsed()
    if res.timed_out:
        failure = f"hard timeout: killed after {res.wall_s:.1f}s"
    elif res.returncode != 0 and not (client.tool in HAMMERS and res.returncode == 3):
        # hammer's exit 3: the run completed, but the generator fell behind its schedule
        # (the report says why: send lag, unsent); a measurement, not a failure
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        how = (f"exit {res.returncode}" if res.returncode is not None
               else f"killed by {signal.Signals(res.signal or 9).name}")
        failure = f"{how}: {tail or '(no output)'}"
    try:
        parsed = PARSERS[client.tool](res.stdout, res.stderr)
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        failure = failure or f"could not parse the output: {exc}: " + " | ".join(
            (res.stderr or res.stdout).strip().splitlines()[-3:])
    completed = parsed.completed
    dur = parsed.duration_s or float(client.params.duration_s)
    cpu_us = res.cpu_s * 1e6 / completed if completed else None
    machine["server_busy_frac"] = srv_cpu / dur if dur else None
    machine["server_cpu_us_per_request"] = srv_cpu * 1e6 / server if server else None
    if spaced is not None and "captured" in spaced:
        # what the capture saw against what the client says it sent and nginx served
        sent = parsed.extra.get("sent", completed)
        seen = spaced.get("requests_captured")
        spaced["client_sent"] = sent
        spaced["capture_minus_client"] = seen - sent if seen is not None and sent else None
        spaced["capture_minus_server"] = (seen - server if seen is not None
                                          and server is not None else None)
    return RunRecord(
        scenario=scenario, client=client.name, round=rnd, argv=res.argv,
        ok=failure is None and bool(completed), failure=failure or (
            None if completed else "no request completed"),
        client_completed=completed, client_errors=parsed.errors, server_requests=server,
        server_minus_client=(server - completed
                             if server is not None and completed is not None else None),
        duration_s=parsed.duration_s,
        requests_per_s=completed / dur if completed and dur else None,
        cpu_user_s=res.user_s, cpu_sys_s=res.sys_s, cpu_us_per_request=cpu_us,
        maxrss_kib=res.maxrss_kib, peak_rss_kib=res.hwm_kib or res.maxrss_kib,
        p50_ms=parsed.p50_ms, p99_ms=parsed.p99_ms,
        wall_s=res.wall_s, extra=parsed.extra, machine=machine, spacing=spaced,
    )


def failed_run(scenario: str, client: Client, rnd: int, why: str) -> RunRecord:
    """A run that could not be carried out at all (nginx gone, cannot start the tool)."""
    return RunRecord(
        scenario=scenario, client=client.name, round=rnd, argv=[], ok=False, failure=why,
        client_completed=None, client_errors=None, server_requests=None,
        server_minus_client=None, duration_s=None, requests_per_s=None, cpu_user_s=0.0,
        cpu_sys_s=0.0, cpu_us_per_request=None, maxrss_kib=0, peak_rss_kib=0, p50_ms=None,
        p99_ms=None, wall_s=0.0, extra={}, machine={})


def help_timing(workdir: Path, cpu: int | None, build: HammerBuild) -> dict[str, Any]:
    """`python -m hammer --help`: wall time, median of HELP_SAMPLES."""
    walls, cpus, bare = [], [], []
    ok = True
    for _ in range(HELP_SAMPLES):
        res = run_pinned(build.command("--help"), cpu, 30, workdir, env=build.env())
        ok = ok and res.returncode == 0
        walls.append(res.wall_s)
        cpus.append(res.cpu_s)
        # the interpreter alone, with the same site-packages (.pth files run at start-up)
        bare.append(run_pinned([sys.executable, "-c", "pass"], cpu, 30, workdir).wall_s)
    return {"command": f"{sys.executable} -m hammer --help", "ok": ok,
            "wall_s_median": statistics.median(walls), "wall_s": walls,
            "cpu_s_median": statistics.median(cpus),
            "bare_python_wall_s_median": statistics.median(bare)}


def hammer_fixed_cost(url: str, workdir: Path, cpu: int | None,
                      build: HammerBuild) -> dict[str, Any]:
    """CPU of a 1-request hammer run (median of 3): interpreter start, imports, report.
    CPU-µs/request includes this per-run cost; it matters in short runs."""
    argv = build.command("run", url, "-n", "1", "-c", "1", "--json", "-", "-q")
    samples = [run_pinned(argv, cpu, 60, workdir, env=build.env()) for _ in range(3)]
    return {"ok": all(r.returncode == 0 for r in samples),
            "cpu_s": statistics.median(r.cpu_s for r in samples),
            "wall_s": statistics.median(r.wall_s for r in samples),
            "cpu_s_samples": [r.cpu_s for r in samples],
            "peak_rss_kib": max(r.hwm_kib or r.maxrss_kib for r in samples)}


def calibrate(nginx: Nginx, tools: Tools, conns: int, duration_s: int, workdir: Path,
              cpu: int | None) -> tuple[int | None, RunRecord]:
    d = max(1, min(duration_s, CALIBRATION_MAX_S))
    client = Client("hammer", "hammer", Params(nginx.base_url + "/", conns, 1, d))
    rec = do_run(nginx, tools, "open-max/calibration", client, 0, workdir, cpu)
    if not rec.ok or not rec.requests_per_s:
        return None, rec
    return int(rec.requests_per_s * OPEN_MAX_FRACTION), rec
