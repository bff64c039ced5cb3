"""The report: what a run measured, built once from the engine's totals.

Metrics only accumulate (in the core's aggregator); this module turns totals into the
report contract of DESIGN.md section 4. Reporters only format.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

SEND_LAG_SATURATION_MS = 1.0
REPORT_VERSION = 1


@dataclass
class Totals:
    """What a load phase measured, independent of who measured it: the core's
    aggregator (counters and histograms, mergeable with Aggregator.add) and the
    producer's own counters. Reports are built from totals, never from a live engine."""

    aggregator: Any                  # hammer._core.Aggregator
    duration_s: float
    scheduled: int
    unsent: int
    bytes_sent: int = 0
    bytes_received: int = 0
    ring_full_waits: int = 0
    connection_times: dict[str, Any] = field(default_factory=dict)
    start_ns: int = 0                # CLOCK_MONOTONIC when second 0 began

    @classmethod
    def from_engine(cls, engine: Any, duration_s: float) -> Totals:
        """The totals of a finished engine whose rings were drained."""
        counters = engine.counters()
        return cls(aggregator=engine.aggregator, duration_s=duration_s,
                   scheduled=counters["scheduled"], unsent=counters["unsent"],
                   bytes_sent=counters["bytes_sent"], bytes_received=counters["bytes_received"],
                   ring_full_waits=counters["ring_full_waits"],
                   connection_times=engine.connection_times(), start_ns=engine.start_ns)


@dataclass
class Counts:
    scheduled: int = 0
    sent: int = 0
    completed: int = 0
    ok: int = 0
    http_error: int = 0
    error: int = 0
    unsent: int = 0
    late: int = 0

    def balanced(self) -> bool:
        """The accounting invariant: every scheduled request is in exactly one bucket."""
        return (self.scheduled == self.ok + self.http_error + self.error + self.unsent
                and self.completed == self.ok + self.http_error)


@dataclass
class Report:
    config: Any      # RunConfig, or a Python hammer's HammerConfig
    duration_s: float
    counts: Counts
    status: dict[str, int]
    errors: dict[str, int]
    latency_ms: dict[str, float | None]
    latency_uncorrected_ms: dict[str, float | None]
    send_lag_ms: dict[str, float | None]
    bytes_sent: int
    bytes_received: int
    ring_full_waits: int = 0
    targets: list[dict[str, Any]] = field(default_factory=list)
    time_series: list[dict[str, Any]] = field(default_factory=list)
    connection_times: dict[str, Any] = field(default_factory=dict)
    interrupted: str | None = None
    stopped: str | None = None          # why a hammer ended the run early (StopRun)
    error_samples: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    totals: Totals | None = field(default=None, repr=False)   # what it was built from
    kind_figures: dict[str, Any] = field(default_factory=dict)  # the kind's own measures,
                                                                # shown under "hammer"

    @property
    def achieved_rps(self) -> float:
        return self.counts.sent / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def throughput_rps(self) -> float:
        return self.counts.completed / self.duration_s if self.duration_s > 0 else 0.0

    def saturation(self) -> list[str]:
        """Reasons the generator could not keep its own schedule (empty: it kept up):
        requests never sent, a full result ring, or a send lag that is not occasional
        (p90 over 1 ms). An occasional late send (p99 only) is a note (lag_note)."""
        reasons = []
        lag_p90 = self.send_lag_ms.get("p90")
        lag_p99 = self.send_lag_ms.get("p99")
        if self.config.open_loop and lag_p90 is not None and lag_p90 > SEND_LAG_SATURATION_MS:
            reasons.append(f"send-lag p90 {lag_p90:.2f} ms (p99 {lag_p99:.2f} ms) above "
                           f"{SEND_LAG_SATURATION_MS:g} ms")
        if self.counts.unsent:
            unsent = self.counts.unsent
            reasons.append(f"{unsent:,} request{'s' if unsent != 1 else ''} never sent")
        if self.ring_full_waits:
            reasons.append(f"result ring full {self.ring_full_waits:,} times")
        return reasons

    def lag_note(self) -> str | None:
        """When a few sends were late but the generator kept up (p99 over 1 ms only)."""
        return lag_note(self.send_lag_ms) if self.config.open_loop else None

    def _tls_dict(self) -> dict[str, Any] | None:
        tls = self.config.tls
        if tls is None:
            return None
        times = self.connection_times
        return {
            "verified": not tls.insecure,
            "handshakes": times.get("tls_handshakes", 0),
            "resumed": times.get("tls_resumed", 0),
            "handshake_ms": times.get("tls_ms"),
        }

    def to_dict(self) -> dict[str, Any]:
        from hammer.scenario import redact

        data = self._to_dict()
        data["slo"] = [slo.check(data) for slo in getattr(self.config, "slos", ())]
        secrets = getattr(self.config, "secrets", ())
        return redact(data, secrets) if secrets else data

    def _to_dict(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "version": REPORT_VERSION,
            "target": cfg.label,
            "kind": cfg.kind,
            "mode": cfg.mode,
            "method": cfg.method,
            "duration_s": round(self.duration_s, 6),
            "connections": cfg.connections,
            "threads": cfg.threads,
            "timeout_s": cfg.timeout_ns / 1e9,
            "spin_ms": cfg.spin_ns / 1e6 if cfg.open_loop else None,
            "pacing": _pacing(cfg),
            "keepalive": cfg.keepalive,
            "max_requests_per_conn": cfg.max_requests_per_conn or None,
            "rate": {
                "target_rps": _target_rps(cfg),
                "achieved_rps": round(self.achieved_rps, 3),
                "profile": cfg.rate_profile.text if cfg.rate_profile is not None else None,
                "arrivals": cfg.arrivals if cfg.open_loop else None,
            },
            "throughput_rps": round(self.throughput_rps, 3),
            "counts": asdict(self.counts),
            "status": dict(self.status),
            "errors": dict(self.errors),
            "latency_ms": dict(self.latency_ms),
            "latency_uncorrected_ms": dict(self.latency_uncorrected_ms),
            "send_lag_ms": dict(self.send_lag_ms),
            "bytes": {"sent": self.bytes_sent, "received": self.bytes_received},
            "connect_ms": self.connection_times.get("connect_ms"),
            "tls": self._tls_dict(),
            "targets": [dict(t) for t in self.targets],
            "time_series": [dict(row) for row in self.time_series],
            "interrupted": self.interrupted,
            "stopped": self.stopped,
            "hammer": {**cfg.report_fields(), **self.kind_figures},
            "error_samples": [dict(e) for e in self.error_samples],
            "saturated": self.saturation(),
            "notes": list(self.notes),
            "shard": _shard(cfg),
            "start_epoch_s": self._start_epoch_s(),
            "histograms": self._histograms(),
        }

    def _start_epoch_s(self) -> float | None:
        """When second 0 of the load phase began, on the wall clock."""
        if self.totals is None or not self.totals.start_ns:
            return None
        return round(time.time() - (time.monotonic_ns() - self.totals.start_ns) / 1e9, 6)

    def _histograms(self) -> dict[str, Any] | None:
        if self.totals is None:
            return None
        from hammer.results import report_histograms

        return report_histograms(self.totals.aggregator, len(self.time_series),
                                 len(self.targets), self.totals.connection_times)


LAG_NOTE_START = "send-lag p99 "


def lag_note(send_lag_ms: Mapping[str, float | None]) -> str | None:
    """An open loop's note when a few sends were late but the generator kept up (send-lag
    p99 over 1 ms, p90 under it)."""
    lag_p90 = send_lag_ms.get("p90")
    lag_p99 = send_lag_ms.get("p99")
    if (lag_p99 is None or lag_p90 is None or lag_p99 <= SEND_LAG_SATURATION_MS
            or lag_p90 > SEND_LAG_SATURATION_MS):
        return None
    return (f"{LAG_NOTE_START}{lag_p99:.2f} ms while p90 is {lag_p90:.3f} ms: a few sends "
            "went out late, as when a sleeping thread is woken late (common on virtual "
            "machines); their latency counts from their intended time. --spin 1ms polls "
            "before each send instead, at the cost of a busy CPU")


def _shard(config: Any) -> dict[str, int] | None:
    plan = getattr(config, "plan", None)
    shard = plan.shard if plan is not None else None
    return {"k": shard[0], "n": shard[1]} if shard is not None else None


def _shard_count(config: Any) -> int:
    plan = getattr(config, "plan", None)
    return plan.shard_count if plan is not None else 1


def _target_rps(config: Any) -> float | None:
    """The rate this run was to send: the plan's, or a shard's part of it."""
    if config.rate_rps is None:
        return None
    return float(config.rate_rps) / _shard_count(config)


def _pacing(config: Any) -> dict[str, Any] | None:
    """How an open loop's slots were paced: exact, or a quantum (with its length)."""
    quantum_ns = getattr(config, "quantum_ns", None)
    if quantum_ns is None or not config.open_loop:
        return None
    return {"mode": "exact" if quantum_ns == 0 else "quantum",
            "quantum_us": quantum_ns / 1000 if quantum_ns else None}


def target_count(config: Any, t0_s: float, t1_s: float) -> float | None:
    """Requests the schedule wanted in [t0, t1) (None in closed loop); a shard's part."""
    whole = _whole_target_count(config, t0_s, t1_s)
    return whole / _shard_count(config) if whole is not None else None


def _whole_target_count(config: Any, t0_s: float, t1_s: float) -> float | None:
    plan = getattr(config, "plan", None)
    trace = getattr(plan, "trace_ns", None)
    if trace is not None:
        import bisect

        return float(bisect.bisect_left(trace, int(t1_s * 1e9))
                     - bisect.bisect_left(trace, int(t0_s * 1e9)))
    if config.rate_profile is not None:
        return (config.rate_profile.count_within(t1_s)
                - config.rate_profile.count_within(t0_s))
    if config.rate_rps is not None:
        return float(config.rate_rps) * (t1_s - t0_s)
    return None


def time_series(config: Any, rows: list[dict[str, Any]], duration_s: float,
                results_end_s: float = 0.0) -> list[dict[str, Any]]:
    """Per second of the load phase, then of the drain while responses still came in:
    target and achieved rate, throughput, errors and latency p50/p99. A shorter last
    second of the load phase is scaled to a rate: its sends by its own span, its
    completions by the span they cover, to the last result (results_end_s) if that came
    later. A drain second's rates are over the whole second; nothing is due in it."""
    out = []
    for i, row in enumerate(rows):
        span = min(1.0, duration_s - i) if duration_s > i else 1.0
        span = max(span, 1e-3)
        done_span = (max(min(1.0, max(duration_s, results_end_s) - i), span)
                     if duration_s > i else 1.0)
        wanted = target_count(config, i, i + span)
        if wanted is not None and i >= duration_s:
            wanted = 0.0
        out.append({
            "t_s": i,
            "target_rps": round(wanted / span, 3) if wanted is not None else None,
            "achieved_rps": round(row["sent"] / span, 3),
            "throughput_rps": round(row["completed"] / done_span, 3),
            "sent": row["sent"],
            "completed": row["completed"],
            "ok": row["ok"],
            "http_error": row["completed"] - row["ok"],   # responses not ok
            "errors": row["errors"],
            "p50_ms": row["p50_ms"],
            "p90_ms": row["p90_ms"],
            "p99_ms": row["p99_ms"],
            "max_ms": row["max_ms"],
        })
    return out


def _replay_notes(config: Any, report: Report) -> list[str]:
    """How the replay kept up with the original traffic: its speed, the worst second."""
    speed = float(config.replay.get("speed", 1.0))
    trace = config.plan.trace_ns
    planned_s = trace[-1] / 1e9 if trace else 0.0
    achieved = (speed * report.counts.sent / max(report.counts.scheduled, 1)
                * min(1.0, planned_s / report.duration_s if report.duration_s else 1.0))
    notes = [f"replay: achieved speed {achieved:.3g}x of the {speed:g}x asked "
             f"({report.counts.sent:,} of {report.counts.scheduled:,} requests sent)"]
    worst = max(report.time_series, default=None,
                key=lambda row: (row["target_rps"] or 0) - row["achieved_rps"])
    if worst is not None and (worst["target_rps"] or 0) - worst["achieved_rps"] >= 1:
        notes.append(f"replay: the largest shortfall was second {worst['t_s']}: "
                     f"{worst['achieved_rps']:,.0f} sent of the {worst['target_rps']:,.0f} "
                     "the original traffic had")
    return notes


def _target_labels(config: Any) -> Sequence[tuple[str, str]]:
    """(method, url) of each row the breakdown could have: a request each, or a group (a
    replay's path pattern) each."""
    labels: Sequence[tuple[str, str]] | None = getattr(config, "group_labels", None)
    if labels is None:
        labels = [(req.method, req.url) for req in config.requests_table]
    return labels


def _target_rows(labels: Sequence[tuple[str, str]],
                 breakdown: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-target rows with their names (the breakdown may stop short of labels)."""
    return [{"method": method, "url": url, **stats}
            for (method, url), stats in zip(labels, breakdown, strict=False)]


def _named_statuses(config: Any, status: dict[str, int]) -> dict[str, int]:
    """Status codes as the kind names them (MQTT: reason code 0 of a PUBACK is PUBACK)."""
    name = getattr(config, "status_name", None)
    if name is None:
        return status
    return {name(code): n for code, n in status.items()}


def build_report(config: Any, totals: Totals, interrupted: str | None = None) -> Report:
    """A Report from a run's config (RunConfig or a hammer's) and its totals."""
    agg = totals.aggregator
    duration_s = totals.duration_s
    labels = _target_labels(config)
    results_end_s = (agg.last_done_ns - agg.start_ns) / 1e9 if agg.seconds_used else 0.0
    counts = Counts(
        scheduled=totals.scheduled,
        sent=agg.sent,
        completed=agg.completed,
        ok=agg.ok,
        http_error=agg.http_error,
        error=agg.errors,
        unsent=totals.unsent,
        late=agg.late,
    )
    report = Report(
        config=config,
        duration_s=duration_s,
        counts=counts,
        status=_named_statuses(config, agg.status()),
        errors=agg.error_classes(),
        latency_ms=agg.latency.summary_ms(),
        latency_uncorrected_ms=agg.latency_uncorrected.summary_ms(),
        send_lag_ms=agg.send_lag.summary_ms(),
        bytes_sent=totals.bytes_sent,
        bytes_received=totals.bytes_received,
        ring_full_waits=totals.ring_full_waits,
        targets=_target_rows(labels, agg.target_breakdown()),
        time_series=time_series(config, agg.time_series(
            max(math.ceil(duration_s - 1e-3), agg.seconds_used)), duration_s, results_end_s),
        connection_times=totals.connection_times,
        interrupted=interrupted,
        totals=totals,
    )
    if counts.late:
        unit = config.concurrency_unit  # "connection", "in-flight slot"
        report.notes.append(
            f"{counts.late:,} of {counts.sent:,} requests sent waited for a free {unit} "
            f"(all {config.connections:,} were busy); their latency counts from when they "
            f"were due. More {unit}s (-c) would send them on time")
    if 0 < len(report.targets) < len(labels):
        report.notes.append(
            f"the per-target breakdown holds the first {len(report.targets):,} of "
            f"{len(labels):,} targets; the totals count every one")
    if getattr(config, "replay", None) is not None:
        report.notes.extend(_replay_notes(config, report))
    lag_note = report.lag_note()
    if lag_note is not None:
        report.notes.append(lag_note)
    if not counts.balanced():
        report.notes.append(
            f"accounting mismatch (a bug, please report it): scheduled {counts.scheduled} != "
            f"ok {counts.ok} + http_error {counts.http_error} + error {counts.error} "
            f"+ unsent {counts.unsent}")
    return report
