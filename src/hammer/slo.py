"""SLO thresholds: `--slo 'p99<200ms' --slo 'error_rate<0.1%' --slo 'achieved_rate>=99%'`.

Each is checked against the finished report, shown as passed or failed in the text and
JSON reports, and a failed one gives the run its own exit code (4). A threshold on a
figure that does not exist is a usage error before anything is sent.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hammer import units
from hammer.errors import ConfigError

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt, ">": operator.gt}
_SLO = re.compile(r"^\s*([a-z][a-z0-9_.]*)\s*(<=|>=|==|<|>)\s*(\S+)\s*$")
_LATENCY_STATS = ("min", "mean", "p50", "p90", "p99", "p99.9", "max")
# figure -> kind of value: "ms" (a duration), "ratio" (a share, % allowed), "rps", "count"
FIGURES: dict[str, str] = {
    **{stat: "ms" for stat in _LATENCY_STATS},
    **{f"latency.{stat}": "ms" for stat in _LATENCY_STATS},
    **{f"uncorrected.{stat}": "ms" for stat in _LATENCY_STATS},
    **{f"send_lag.{stat}": "ms" for stat in _LATENCY_STATS},
    "error_rate": "ratio",          # (errors + HTTP errors) / scheduled
    "http_error_rate": "ratio",
    "unsent_rate": "ratio",
    "late_rate": "ratio",
    "achieved_rate": "ratio",       # sent / what the schedule asked (open loop)
    "throughput": "rps",            # completed / s
    "ok": "count",
    "errors": "count",
    "unsent": "count",
}


@dataclass(frozen=True)
class Slo:
    text: str            # as given
    figure: str
    op: str
    threshold: float     # ms, a ratio (0..1), req/s or a count

    def value_in(self, report: Mapping[str, Any]) -> float | None:
        return figure_value(report, self.figure)

    def check(self, report: Mapping[str, Any]) -> dict[str, Any]:
        value = self.value_in(report)
        passed = value is not None and _OPS[self.op](value, self.threshold)
        return {"slo": self.text, "figure": self.figure, "value": value,
                "threshold": self.threshold, "unit": FIGURES[self.figure], "passed": passed}


def parse_slo(text: str) -> Slo:
    m = _SLO.match(text)
    if m is None:
        raise ConfigError(f"invalid SLO {text!r} (e.g. 'p99<200ms', 'error_rate<0.1%', "
                          "'achieved_rate>=99%')")
    figure, op, raw = m.groups()
    kind = FIGURES.get(figure)
    if kind is None:
        known = ", ".join(k for k in FIGURES if "." not in k)
        raise ConfigError(f"SLO {text!r}: no figure {figure!r} in the report (known: {known}, "
                          "and latency., uncorrected., send_lag. with p50 ... max)")
    try:
        threshold = _threshold(kind, raw)
    except ValueError as exc:
        raise ConfigError(f"SLO {text!r}: {exc}") from None
    return Slo(text=text.strip(), figure=figure, op=op, threshold=threshold)


def _threshold(kind: str, raw: str) -> float:
    if kind == "ms":
        return units.parse_duration_ns(raw, allow_zero=True) / 1e6
    if kind == "ratio":
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
        if not 0 <= value <= 1:
            raise ValueError(f"{raw!r} is not a share (use 0.1% or 0.001)")
        return value
    if kind == "rps":
        return float(units.parse_rate(raw))
    return float(units.parse_count(raw, allow_zero=True))


def parse_slos(texts: Iterable[str] | str | None) -> tuple[Slo, ...]:
    if texts is None:
        return ()
    if isinstance(texts, str):
        texts = [texts]
    return tuple(parse_slo(t) for t in texts)


def figure_value(report: Mapping[str, Any], figure: str) -> float | None:
    """A figure of a report dict (the JSON contract); None when the run has none."""
    counts = report.get("counts") or {}
    scheduled = counts.get("scheduled") or 0
    if figure in _LATENCY_STATS:
        figure = f"latency.{figure}"
    if "." in figure:
        group, stat = figure.split(".", 1)
        key = {"latency": "latency_ms", "uncorrected": "latency_uncorrected_ms",
               "send_lag": "send_lag_ms"}[group]
        value = (report.get(key) or {}).get(stat)
        return float(value) if value is not None else None
    if figure in ("error_rate", "http_error_rate", "unsent_rate", "late_rate"):
        if not scheduled:
            return None
        n = {"error_rate": counts.get("error", 0) + counts.get("http_error", 0),
             "http_error_rate": counts.get("http_error", 0),
             "unsent_rate": counts.get("unsent", 0),
             "late_rate": counts.get("late", 0)}[figure]
        return n / scheduled
    if figure == "achieved_rate":
        rate = report.get("rate") or {}
        target, achieved = rate.get("target_rps"), rate.get("achieved_rps")
        return achieved / target if target and achieved is not None else None
    if figure == "throughput":
        value = report.get("throughput_rps")
        return float(value) if value is not None else None
    return float({"ok": counts.get("ok", 0), "errors": counts.get("error", 0),
                  "unsent": counts.get("unsent", 0)}[figure])
