"""`hammer limits URL --probe`: how far this host goes against a target.

Open loop ramps the rate, closed loop the connections, geometrically, in short steps
of real load (the same run() as `hammer run`), until the first limit breaks: the host's
open files or local ports, the generator's own schedule (send lag, unsent, its CPU), the
server's errors, or its latency. The report gives every step, the knee (the last step
that held) and what broke, with the fix. Bounded: it stops by itself after --max-time.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hammer.limits import check_plan, read_host_limits
from hammer.units import format_count, format_rate

ERROR_SHARE = 0.001          # errors above 0.1 % of the scheduled requests break a step
HTTP_ERROR_SHARE = 0.01      # HTTP error statuses above 1 %
LATENCY_GROWTH = 10.0        # p99 over 10x the first step's (and over 1 ms) is a knee
LATENCY_FLOOR_MS = 1.0
PLATEAU_GAIN = 1.05          # closed loop: less than 5 % more throughput is a plateau
CPU_BOUND = 0.9              # the generator used 90 % of its threads' cores


@dataclass
class Step:
    """One step of the ramp: what was asked and what happened."""

    asked: float                 # open loop: req/s; closed loop: connections
    connections: int
    duration_s: float
    scheduled: int
    achieved_rps: float
    throughput_rps: float
    errors: dict[str, int]
    http_errors: int
    unsent: int
    late: int
    send_lag_p99_ms: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    cpu_share: float             # the generator's CPU time / wall time (1.0 = one core)
    broke: str | None = None     # what broke at this step (None: it held)
    fix: str | None = None

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ProbeResult:
    mode: str                     # "open" (rate) or "closed" (connections)
    steps: list[Step] = field(default_factory=list)
    ended: str = ""               # why the ramp ended

    @property
    def knee(self) -> Step | None:
        held = [s for s in self.steps if s.broke is None]
        return held[-1] if held else None

    @property
    def broken(self) -> Step | None:
        return next((s for s in self.steps if s.broke is not None), None)

    def to_dict(self) -> dict[str, Any]:
        knee, broken = self.knee, self.broken
        return {"mode": self.mode, "steps": [s.row() for s in self.steps],
                "knee": knee.row() if knee else None,
                "broke": broken.broke if broken else None,
                "fix": broken.fix if broken else None, "ended": self.ended}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def judge(report: Any, first: Step | None, threads: int) -> tuple[str | None, str | None]:
    """What broke in a step's report, and the fix (None, None: it held)."""
    counts = report.counts
    scheduled = max(counts.scheduled, 1)
    if counts.error > ERROR_SHARE * scheduled:
        classes = ", ".join(f"{k} {v:,}" for k, v in sorted(report.errors.items(),
                                                             key=lambda kv: -kv[1]))
        return (f"the server: {counts.error:,} of {counts.scheduled:,} requests failed "
                f"({classes})",
                "this is the server's (or its host's) limit: connection errors mean a full "
                "accept backlog (somaxconn) or open files on its side")
    if counts.http_error > HTTP_ERROR_SHARE * scheduled:
        statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(report.status.items())
                             if not k.startswith(("2", "3")))
        return (f"the server: {counts.http_error:,} HTTP error statuses ({statuses})",
                "the server refuses load past this point")
    saturation = report.saturation()
    if saturation:
        return (f"hammer's own schedule: {'; '.join(saturation)}",
                "give hammer more CPU: more threads (-t) on more cores, or more hosts")
    if counts.late > ERROR_SHARE * scheduled:
        return (f"hammer's connections: {counts.late:,} requests waited for a free one",
                "more connections (-c)")
    p99 = report.latency_ms.get("p99")
    if (first is not None and first.latency_p99_ms is not None and p99 is not None
            and p99 > max(LATENCY_GROWTH * first.latency_p99_ms, LATENCY_FLOOR_MS)):
        return (f"the server's latency: p99 {p99:.3f} ms, {p99 / first.latency_p99_ms:.0f}x "
                f"the first step's {first.latency_p99_ms:.3f} ms",
                "the server is past its knee: queues grow faster than it answers")
    return None, None


def probe(url: str, *, mode: str, start: float, factor: float, step_s: float,
          max_time_s: float, max_value: float, connections: int | None, threads: int,
          timeout: str = "2s", run: Callable[..., Any] | None = None,
          on_step: Callable[[Step], None] | None = None) -> ProbeResult:
    """Ramp until something breaks, --max-time passes or max_value is reached."""
    import hammer

    run = run or hammer.run
    host = read_host_limits()
    result = ProbeResult(mode=mode)
    deadline = time.monotonic() + max_time_s
    value = start
    first: Step | None = None
    while True:
        if value > max_value:
            result.ended = (f"reached the maximum asked ({_show(mode, max_value)}) "
                            "without a limit breaking")
            break
        if time.monotonic() + step_s > deadline:
            result.ended = f"--max-time {max_time_s:g}s reached"
            break
        conns = int(value) if mode == "closed" else (connections or 64)
        verdict = check_plan(host, conns)
        if not verdict.fits:
            step = Step(asked=value, connections=conns, duration_s=0.0, scheduled=0,
                        achieved_rps=0.0, throughput_rps=0.0, errors={}, http_errors=0,
                        unsent=0, late=0, send_lag_p99_ms=None, latency_p50_ms=None,
                        latency_p99_ms=None, cpu_share=0.0,
                        broke=f"the host: {verdict.problems[0].split(':')[0]}",
                        fix=verdict.problems[0])
            result.steps.append(step)
            result.ended = "a host limit"
            break
        options: dict[str, Any] = {"duration": step_s, "threads": threads,
                                   "connections": conns, "timeout": timeout}
        if mode == "open":
            options["rate"] = value
        cpu0, wall0 = _cpu_s(), time.monotonic()
        report = run(url, **options)
        cpu_share = (_cpu_s() - cpu0) / max(time.monotonic() - wall0, 1e-9)
        step = Step(asked=value, connections=conns, duration_s=report.duration_s,
                    scheduled=report.counts.scheduled, achieved_rps=report.achieved_rps,
                    throughput_rps=report.throughput_rps, errors=dict(report.errors),
                    http_errors=report.counts.http_error, unsent=report.counts.unsent,
                    late=report.counts.late,
                    send_lag_p99_ms=report.send_lag_ms.get("p99") if mode == "open" else None,
                    latency_p50_ms=report.latency_ms.get("p50"),
                    latency_p99_ms=report.latency_ms.get("p99"), cpu_share=cpu_share)
        step.broke, step.fix = judge(report, first, threads)
        if step.broke is None and cpu_share > CPU_BOUND * threads:
            step.broke = (f"hammer's CPU: {cpu_share:.0%} of {threads} core"
                          f"{'s' if threads > 1 else ''}")
            step.fix = "more threads (-t) on more cores, or more hosts"
        if step.broke is None and mode == "closed" and result.knee is not None \
                and step.throughput_rps < PLATEAU_GAIN * result.knee.throughput_rps:
            step.broke = (f"throughput stopped growing ({format_rate(step.throughput_rps)} "
                          f"with {conns:,} connections, "
                          f"{format_rate(result.knee.throughput_rps)} with "
                          f"{result.knee.connections:,})")
            step.fix = ("more connections only queue: this is the capacity of the server, "
                        "or of the generator if its CPU is near a core per thread")
        result.steps.append(step)
        if on_step is not None:
            on_step(step)
        if first is None:
            first = step
        if step.broke is not None:
            result.ended = "a limit broke"
            break
        value *= factor
    return result


def _show(mode: str, value: float) -> str:
    return format_rate(value) if mode == "open" else f"{format_count(int(value))} connections"


def render_probe(result: ProbeResult, url: str) -> str:
    what = "rate" if result.mode == "open" else "connections"
    lines = [f"hammer limits --probe: {url}, ramping the {what}", "",
             f"  {'asked':>14} {'achieved/s':>11} {'thrpt/s':>10} {'errors':>7} "
             f"{'late':>6} {'lag p99':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU':>5}  verdict"]
    for s in result.steps:
        lag = f"{s.send_lag_p99_ms:.3f}" if s.send_lag_p99_ms is not None else "-"
        p50 = f"{s.latency_p50_ms:.3f}" if s.latency_p50_ms is not None else "-"
        p99 = f"{s.latency_p99_ms:.3f}" if s.latency_p99_ms is not None else "-"
        errors = sum(s.errors.values()) + s.http_errors
        lines.append(f"  {_show(result.mode, s.asked):>14} {format_rate(s.achieved_rps):>11} "
                     f"{format_rate(s.throughput_rps):>10} {format_count(errors):>7} "
                     f"{format_count(s.late):>6} {lag:>8} {p50:>8} {p99:>8} "
                     f"{s.cpu_share:>5.0%}  {'held' if s.broke is None else 'BROKE'}")
    lines.append("")
    knee = result.knee
    if knee is not None:
        lines.append(f"knee: {_show(result.mode, knee.asked)}: "
                     f"{format_rate(knee.throughput_rps)} completed, p99 "
                     + (f"{knee.latency_p99_ms:.3f} ms" if knee.latency_p99_ms is not None
                        else "-"))
    else:
        lines.append("knee: none (the first step already broke)")
    broken = result.broken
    if broken is not None:
        lines.append(f"broke at {_show(result.mode, broken.asked)}: {broken.broke}")
        lines.append(f"fix: {broken.fix}")
    else:
        lines.append(f"ended: {result.ended}")
    return "\n".join(lines) + "\n"
