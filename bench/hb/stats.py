"""Per-client summaries over rounds: medians, ranges, paired ratios."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .clients import Client
from .runs import RunRecord

NOISE_FRAC = 0.10               # a run where others took > 10 % of either core is flagged


def median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def pct(v: float | None) -> float | None:
    return v * 100 if v is not None else None


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


@dataclass
class ClientSummary:
    client: str
    runs: int
    ok_runs: int
    rps_median: float | None
    cpu_us_median: float | None
    cpu_us_min: float | None
    cpu_us_max: float | None
    cpu_us_net_median: float | None  # hammer: minus its fixed per-run cost (start-up, report)
    rss_mb_peak: float | None
    p50_ms_median: float | None
    p99_ms_median: float | None
    server_minus_client: list[int | None]
    server_busy_median: float | None    # nginx worker CPU ÷ load-phase duration
    noisy_runs: int                     # runs where others took > NOISE_FRAC of a core
    failures: list[str]
    extra: dict[str, Any]
    cpu_us_by_round: dict[int, float] = field(default_factory=dict)


def summarise(runs: list[RunRecord], clients: list[Client],
              fixed_cpu_s: dict[str, float | None]) -> list[ClientSummary]:
    """Per client, in the order given. fixed_cpu_s: each hammer build's fixed per-run CPU
    (by tool; None when it could not be measured), subtracted for the net* column."""
    out = []
    for client in clients:
        name = client.name
        mine = [r for r in runs if r.client == name]
        good = [r for r in mine if r.ok]
        cpu = [r.cpu_us_per_request for r in good if r.cpu_us_per_request is not None]
        net = None
        fixed = fixed_cpu_s.get(client.tool)
        if fixed is not None:
            net = median([max(r.cpu_user_s + r.cpu_sys_s - fixed, 0.0) * 1e6
                        / r.client_completed for r in good if r.client_completed])
        extra: dict[str, Any] = {}
        if good and "late" in good[0].extra and good[0].extra.get("target_rps"):
            extra = {
                "achieved_rps_median": median([r.extra["achieved_rps"] for r in good]),
                "late_max": max(r.extra["late"] for r in good),
                "unsent_max": max(r.extra["unsent"] for r in good),
                "send_lag_p99_ms_median": median([r.extra["send_lag_p99_ms"] for r in good]),
                "server_vs_sent": [(r.server_requests - r.extra["sent"])
                                   if r.server_requests is not None else None for r in good],
            }
        out.append(ClientSummary(
            client=name, runs=len(mine), ok_runs=len(good),
            rps_median=median([r.requests_per_s for r in good]),
            cpu_us_median=median(cpu), cpu_us_min=min(cpu) if cpu else None,
            cpu_us_max=max(cpu) if cpu else None, cpu_us_net_median=net,
            rss_mb_peak=max(r.peak_rss_kib for r in good) / 1024 if good else None,
            p50_ms_median=median([r.p50_ms for r in good]),
            p99_ms_median=median([r.p99_ms for r in good]),
            server_minus_client=[r.server_minus_client for r in good],
            server_busy_median=median([r.machine.get("server_busy_frac") for r in good]),
            noisy_runs=sum(1 for r in good if r.noise > NOISE_FRAC),
            failures=[f"round {r.round}: {r.failure}" for r in mine if not r.ok],
            extra=extra,
            cpu_us_by_round={r.round: r.cpu_us_per_request for r in good
                             if r.cpu_us_per_request is not None},
        ))
    return out


def agreement(diffs: list[int | None]) -> str:
    if not diffs:
        return "-"
    if all(d == 0 for d in diffs):
        return "exact"
    return "/".join("?" if d is None else f"{d:+,}" for d in diffs)


def paired(a: ClientSummary, b: ClientSummary) -> str:
    """a's CPU-µs/req over b's, round by round: the two ran back to back, so the
    machine's drift between rounds (steal, frequency) cancels out of each ratio."""
    ratios = sorted(a.cpu_us_by_round[r] / b.cpu_us_by_round[r]
                    for r in a.cpu_us_by_round if r in b.cpu_us_by_round)
    if len(ratios) < 2:
        return ""
    return (f"; paired by round x{statistics.median(ratios):.2f} "
            f"({ratios[0]:.2f}-{ratios[-1]:.2f}, {len(ratios)} rounds)")
