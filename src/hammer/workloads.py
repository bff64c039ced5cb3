"""Several workloads of one scenario file, run concurrently on one event loop.

Each workload (the core's HTTP kind or a Python hammer) starts at its own offset and is
reported apart; the total adds their totals exactly (counters and histograms, as
HdrHistogram's hdr_add does), never averages of percentiles.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from hammer.metrics import Report, Totals, build_report
from hammer.plan import NotHttp
from hammer.results import sum_connection_times
from hammer.runner import Interrupt, ProgressFn, _install_signals, run_async

SETUP_LEAD_S = 0.5     # a workload with an agreed start is set up this long before it


@dataclass(frozen=True)
class Workload:
    """One workload ready to run: its name, start offset and config."""

    name: str
    start_ns: int
    config: Any                    # RunConfig or HammerConfig


@dataclass(frozen=True)
class TotalConfig(NotHttp):
    """What the total of several workloads reports about itself."""

    label: str
    workloads: tuple[Workload, ...]
    kind = "scenario"
    rate_profile = None
    arrivals = None
    spin_ns = 0
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def configs(self) -> list[Any]:
        return [w.config for w in self.workloads]

    @property
    def open_loop(self) -> bool:
        return all(c.open_loop for c in self.configs)

    @property
    def mode(self) -> str:
        modes = {c.mode for c in self.configs}
        return modes.pop() if len(modes) == 1 else "mixed"

    @property
    def rate_rps(self) -> Fraction | None:
        rates = [c.rate_rps for c in self.configs]
        return sum(rates, Fraction(0)) if all(r is not None for r in rates) else None

    @property
    def connections(self) -> int:
        return sum(int(c.connections) for c in self.configs)

    @property
    def threads(self) -> int:
        return sum(int(c.threads) for c in self.configs)

    @property
    def timeout_ns(self) -> int:
        return max(int(c.timeout_ns) for c in self.configs)

    def report_fields(self) -> dict[str, object]:
        return {"kind": "scenario",
                "workloads": {w.name: {"start_s": w.start_ns / 1e9, "kind": w.config.kind}
                              for w in self.workloads}}


@dataclass
class ScenarioReport:
    """Each workload's report, and their total."""

    reports: dict[str, Report]
    total: Report
    interrupted: str | None = None

    def to_dict(self) -> dict[str, Any]:
        total = self.total.to_dict()
        return {**total, "workloads": {name: r.to_dict() for name, r in self.reports.items()}}

    def saturation(self) -> list[str]:
        return [f"{name}: {reason}" for name, r in self.reports.items()
                for reason in r.saturation()]


def total_of(reports: dict[str, Report], workloads: list[Workload], label: str,
             interrupted: str | None) -> Report:
    """One report that adds every workload's totals."""
    from hammer import _core

    aggregator = _core.Aggregator(1)
    scheduled = unsent = bytes_sent = bytes_received = ring_full = 0
    end_s = 0.0
    starts = {w.name: w.start_ns / 1e9 for w in workloads}
    for name, report in reports.items():
        totals = report.totals
        assert totals is not None
        aggregator.add(totals.aggregator)
        scheduled += totals.scheduled
        unsent += totals.unsent
        bytes_sent += totals.bytes_sent
        bytes_received += totals.bytes_received
        ring_full += totals.ring_full_waits
        end_s = max(end_s, starts[name] + totals.duration_s)
    secrets = tuple(s for w in workloads for s in getattr(w.config, "secrets", ()))
    config = TotalConfig(label=label, workloads=tuple(workloads), secrets=secrets)
    totals = Totals(aggregator=aggregator, duration_s=end_s, scheduled=scheduled,
                    unsent=unsent, bytes_sent=bytes_sent, bytes_received=bytes_received,
                    ring_full_waits=ring_full,
                    connection_times=sum_connection_times(
                        [r.totals.connection_times for r in reports.values() if r.totals]))
    total = build_report(config, totals, interrupted=interrupted)
    # the workloads' seconds do not line up when they start at different offsets
    total.time_series = []
    total.notes = [f"{name}: {note}" for name, r in reports.items() for note in r.notes]
    total.error_samples = [dict(s, workload=name) for name, r in reports.items()
                           for s in r.error_samples]
    stopped = [f"{name}: {r.stopped}" for name, r in reports.items() if r.stopped]
    total.stopped = "; ".join(stopped) or None
    return total


async def run_workloads_async(workloads: list[Workload], label: str, *,
                              interrupt: Interrupt | None = None,
                              start_at: float | None = None) -> ScenarioReport:
    """Every workload concurrently, each from its offset after now, or after the
    wall-clock instant `start_at` (a sharded run's)."""
    from hammer.hammers.python import HammerConfig, run_python_hammer

    interrupt = interrupt or Interrupt()
    loop = asyncio.get_running_loop()
    installed = _install_signals(loop, interrupt)

    async def one(workload: Workload) -> Report:
        at = None
        if start_at is not None:
            at = start_at + workload.start_ns / 1e9
            # set up shortly before its instant, then start on it exactly
            await asyncio.sleep(max(at - time.time() - SETUP_LEAD_S, 0.0))
        elif workload.start_ns:
            await asyncio.sleep(workload.start_ns / 1e9)
        config = workload.config
        if isinstance(config, HammerConfig):
            report: Report = await run_python_hammer(config, interrupt=interrupt,
                                                     start_at=at)
            return report
        return await run_async(config, interrupt=interrupt, start_at=at)

    try:
        results = await asyncio.gather(*(one(w) for w in workloads))
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    reports = {w.name: r for w, r in zip(workloads, results, strict=True)}
    total = total_of(reports, workloads, label, interrupt.reason)
    return ScenarioReport(reports=reports, total=total, interrupted=interrupt.reason)


def run_workloads(workloads: list[Workload], label: str,
                  progress: ProgressFn | None = None,
                  start_at: float | None = None) -> ScenarioReport:
    """Run every workload concurrently; SIGINT/SIGTERM stop them all gracefully."""
    import uvloop

    del progress  # one progress line per workload would interleave; the reports say it
    return uvloop.run(run_workloads_async(workloads, label, start_at=start_at))
