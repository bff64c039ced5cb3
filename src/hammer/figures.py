"""How a report's figures are shown, by every renderer alike (text, HTML): ``-`` for a
figure that is missing, None, NaN or not a number; the latency table's rows and columns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hammer.units import format_count, format_duration_ns, format_rate

# Latency statistics, in report order, and the report's groups of them with their names.
LATENCY_KEYS: tuple[str, ...] = ("min", "mean", "p50", "p90", "p99", "p99.9", "max")
LATENCY_ROWS: tuple[tuple[str, str], ...] = (
    ("corrected", "latency_ms"),
    ("uncorrected", "latency_uncorrected_ms"),
    ("send lag", "send_lag_ms"),
)


def num(value: Any) -> float | None:
    """``value`` as a finite float, or None (missing, None, NaN, infinite, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def count(value: Any) -> str:
    """A count with thousands separators."""
    number = num(value)
    if number is None:
        return "-"
    return format_count(int(value) if isinstance(value, int) else round(number))


def seconds(value: Any) -> str:
    number = num(value)
    return "-" if number is None else format_duration_ns(number * 1e9)


def rate(value: Any) -> str:
    number = num(value)
    return "-" if number is None else format_rate(number)


def ms(value: Any) -> str:
    """A latency in milliseconds: at most 9 characters."""
    number = num(value)
    if number is None:
        return "-"
    if abs(number) < 10_000:
        return f"{number:.3f}"
    if abs(number) < 10_000_000:
        return f"{number:.1f}"
    return f"{number:.3g}"


def status_sort_key(code: str) -> tuple[int, str]:
    """Numeric statuses in order, then named ones (MQTT's, a hammer's `none`)."""
    return (int(code), code) if code.isdigit() else (10**9, code)


__all__ = ["LATENCY_KEYS", "LATENCY_ROWS", "count", "mapping", "ms", "num", "rate",
           "seconds", "status_sort_key"]
