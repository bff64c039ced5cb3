"""Parsing and formatting of human-friendly units (durations, rates, counts, sizes).

Every parser raises :class:`ValueError` with a short, one-line message that names the
offending value and shows a valid example, so the CLI can print it verbatim.

Parsing is exact: numbers are read as :class:`decimal.Decimal` and combined as
:class:`fractions.Fraction`, so ``"0.1s"`` is exactly ``100_000_000`` nanoseconds.

Whitespace rules (deliberate, tested):

* leading and trailing whitespace is always ignored;
* whitespace between a number and its unit is allowed (``"10 s"``, ``"64 KiB"``,
  ``"1m 30s"``), but never inside a number (``"1 000"`` is rejected);
* a rate may have whitespace around its ``/`` (``"500 / s"``).

Units are case-insensitive except where that would be ambiguous: in a rate's
multiplier ``M`` means million, and a lowercase ``m`` there is rejected (``/m`` means
per minute).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

__all__ = [
    "NS_PER_S",
    "format_bytes",
    "format_count",
    "format_duration_ns",
    "format_rate",
    "parse_count",
    "parse_duration_ns",
    "parse_rate",
    "parse_size",
]

NS_PER_S = 1_000_000_000

#: Largest value any parser returns: the int64 maximum (for durations ~292 years).
MAX_INT64 = 2**63 - 1

# Inputs longer than this are rejected before any regex or arithmetic runs.
_MAX_TEXT = 100

# An unsigned decimal number without exponent: "10", "1.5", "1.", ".5".
_NUM = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"

_DURATION_UNITS_NS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # MICRO SIGN
    "μs": 1_000,  # GREEK SMALL LETTER MU
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
# Longest alternatives first so "ms" is not read as "m" followed by "s".
_DURATION_UNIT_RE = r"(?:ns|us|µs|μs|ms|s|m|h)"
_DURATION_PART = re.compile(rf"({_NUM})\s*({_DURATION_UNIT_RE})")
_DURATION_COMPOUND = re.compile(rf"(?:{_NUM}\s*{_DURATION_UNIT_RE}\s*)+")
_BARE_NUMBER = re.compile(_NUM)
_DURATION_HINT = "use e.g. 500ms, 10s, 2m, 1h"

# Bare units allowed after "/" in a rate ("30/m"), in nanoseconds.
_RATE_PERIODS_NS: dict[str, int] = {
    **_DURATION_UNITS_NS,
    "sec": _DURATION_UNITS_NS["s"],
    "second": _DURATION_UNITS_NS["s"],
    "min": _DURATION_UNITS_NS["m"],
    "minute": _DURATION_UNITS_NS["m"],
    "hr": _DURATION_UNITS_NS["h"],
    "hour": _DURATION_UNITS_NS["h"],
}
_RATE_NUMERATOR = re.compile(rf"([+-]?)({_NUM})\s*([kKM]?)")
_RATE_MULTIPLIERS: dict[str, int] = {"": 1, "k": 1_000, "K": 1_000, "M": 1_000_000}
_RATE_HINT = "use e.g. 1000, 500/s, 30/m, 0.5"

_COUNT_RE = re.compile(rf"([+-]?)({_NUM})(?:[eE]([+-]?[0-9]{{1,3}}))?\s*([kmgKMG]?)")
_COUNT_MULTIPLIERS: dict[str, int] = {
    "": 1,
    "k": 1_000,
    "m": 1_000_000,
    "g": 1_000_000_000,
}
_COUNT_HINT = "use e.g. 100, 10k, 1e6"

_SIZE_RE = re.compile(rf"([+-]?)({_NUM})\s*([a-z]*)")
_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    **{p + suffix: 1000**i for i, p in enumerate("kmgt", start=1) for suffix in ("", "b")},
    **{p + suffix: 1024**i for i, p in enumerate("kmgt", start=1) for suffix in ("i", "ib")},
}
_SIZE_HINT = "use e.g. 0, 512, 64KiB, 1MiB"


def _show(text: str) -> str:
    """Quote ``text`` for an error message: one line, bounded length."""
    if len(text) > 40:
        text = text[:37] + "..."
    return repr(text)


def _to_fraction(number: str) -> Fraction:
    """Exact value of a regex-validated unsigned decimal literal (exponent allowed)."""
    try:
        return Fraction(Decimal(number))
    except (InvalidOperation, ValueError) as exc:  # pragma: no cover - regex-validated
        raise ValueError(f"invalid number {_show(number)}") from exc


# --------------------------------------------------------------------------- durations


def parse_duration_ns(text: str, *, allow_zero: bool = False) -> int:
    """Parse a duration such as ``"500ms"``, ``"1.5s"`` or ``"1m30s"`` into nanoseconds.

    Units: ``ns``, ``us`` (or ``µs``), ``ms``, ``s``, ``m``, ``h``; a bare number means
    seconds. Compound durations must list units from largest to smallest, each once.
    The result must be a whole number of nanoseconds, positive (or zero when
    ``allow_zero``) and at most ``2**63 - 1``.
    """
    bad = f"invalid duration {_show(text)}"
    hint = f"({_DURATION_HINT})"
    stripped = text.strip()
    if not stripped or len(stripped) > _MAX_TEXT:
        raise ValueError(f"{bad} {hint}")
    lowered = stripped.lower()
    if lowered.startswith("-"):
        raise ValueError(f"{bad}: must not be negative {hint}")

    if _BARE_NUMBER.fullmatch(lowered):
        total = _to_fraction(lowered) * _DURATION_UNITS_NS["s"]
    elif _DURATION_COMPOUND.fullmatch(lowered):
        total = Fraction(0)
        last_scale: int | None = None
        for match in _DURATION_PART.finditer(lowered):
            scale = _DURATION_UNITS_NS[match.group(2)]
            if last_scale is not None and scale >= last_scale:
                raise ValueError(
                    f"{bad}: units must go from largest to smallest, each once "
                    f"(use e.g. 1m30s)"
                )
            last_scale = scale
            total += _to_fraction(match.group(1)) * scale
    else:
        raise ValueError(f"{bad} {hint}")

    if total.denominator != 1:
        raise ValueError(f"{bad}: finer than the 1ns resolution {hint}")
    if total > MAX_INT64:
        raise ValueError(f"{bad}: too large {hint}")
    if total == 0 and not allow_zero:
        raise ValueError(f"{bad}: must be greater than zero {hint}")
    return int(total)


# --------------------------------------------------------------------------- rates


def parse_rate(text: str) -> Fraction:
    """Parse a request rate into exact requests per second.

    Forms: ``"1000"`` (per second), ``"0.5"``, ``"2k"``/``"1.5M"`` (thousand/million),
    ``"500/s"``, ``"30/m"``, ``"2/h"``, and N per duration: ``"10/1s"``, ``"1/500ms"``.
    The rate must be positive.
    """
    bad = f"invalid rate {_show(text)}"
    hint = f"({_RATE_HINT})"
    stripped = text.strip()
    if not stripped or len(stripped) > _MAX_TEXT:
        raise ValueError(f"{bad} {hint}")

    numerator_text, slash, period_text = stripped.partition("/")
    match = _RATE_NUMERATOR.fullmatch(numerator_text.strip())
    if match is None:
        raise ValueError(f"{bad} {hint}")
    sign, number, multiplier = match.groups()
    count = _to_fraction(number) * _RATE_MULTIPLIERS[multiplier]

    period_ns = _DURATION_UNITS_NS["s"]
    if slash:
        period_text = period_text.strip()
        if not period_text:
            raise ValueError(f"{bad} {hint}")
        if period_text.lower() in _RATE_PERIODS_NS:
            period_ns = _RATE_PERIODS_NS[period_text.lower()]
        else:
            try:
                period_ns = parse_duration_ns(period_text, allow_zero=True)
            except ValueError:
                raise ValueError(f"{bad} {hint}") from None
            if period_ns == 0:
                raise ValueError(f"{bad}: the period must be longer than zero {hint}")

    if sign == "-" or count == 0:
        raise ValueError(f"rate must be positive: {_show(text)}")
    return count * _DURATION_UNITS_NS["s"] / period_ns


# --------------------------------------------------------------------------- counts


def parse_count(text: str, *, name: str = "count", allow_zero: bool = False) -> int:
    """Parse a whole count such as ``"100"``, ``"10k"``, ``"2M"`` or ``"1e6"``.

    Suffixes ``k``/``M``/``G`` (case-insensitive) multiply by 10**3/10**6/10**9; the
    result must be a whole number, positive (or zero when ``allow_zero``), and at most
    ``2**63 - 1``. ``name`` is used in the error message.
    """
    kind = "non-negative" if allow_zero else "positive"
    bad = f"invalid {name} {_show(text)}: must be a {kind} whole number ({_COUNT_HINT})"
    stripped = text.strip()
    if not stripped or len(stripped) > _MAX_TEXT:
        raise ValueError(bad)
    match = _COUNT_RE.fullmatch(stripped)
    if match is None:
        raise ValueError(bad)
    sign, number, exponent, multiplier = match.groups()
    literal = number if exponent is None else f"{number}e{exponent}"
    value = _to_fraction(literal) * _COUNT_MULTIPLIERS[multiplier.lower()]
    if sign == "-" and value != 0:
        raise ValueError(bad)
    if value.denominator != 1 or (value == 0 and not allow_zero):
        raise ValueError(bad)
    if value > MAX_INT64:
        raise ValueError(f"invalid {name} {_show(text)}: too large (at most {MAX_INT64:,})")
    return int(value)


# --------------------------------------------------------------------------- sizes


def parse_size(text: str) -> int:
    """Parse a byte size such as ``"128"``, ``"1k"``, ``"64KiB"`` or ``"1.5MiB"``.

    Units are case-insensitive: ``b`` = 1; ``k``/``kb`` = 1000 and ``ki``/``kib`` = 1024,
    likewise ``m``, ``g``, ``t``. The result must be a whole, non-negative number of
    bytes, at most ``2**63 - 1``.
    """
    bad = f"invalid size {_show(text)}"
    hint = f"({_SIZE_HINT})"
    stripped = text.strip()
    if not stripped or len(stripped) > _MAX_TEXT:
        raise ValueError(f"{bad} {hint}")
    match = _SIZE_RE.fullmatch(stripped.lower())
    if match is None or match.group(3) not in _SIZE_UNITS:
        raise ValueError(f"{bad} {hint}")
    sign, number, unit = match.groups()
    value = _to_fraction(number) * _SIZE_UNITS[unit]
    if sign == "-" and value != 0:
        raise ValueError(f"{bad}: must not be negative {hint}")
    if value.denominator != 1:
        raise ValueError(f"{bad}: must be a whole number of bytes {hint}")
    if value > MAX_INT64:
        raise ValueError(f"{bad}: too large {hint}")
    return int(value)


# --------------------------------------------------------------------------- formatting


def _three_digits(value: float) -> str | None:
    """Format ``0 <= value < 1000`` with about three significant digits.

    Returns None when the value rounds to 1000 or more (caller moves up a unit).
    """
    for decimals, limit in ((2, 10.0), (1, 100.0), (0, 1000.0)):
        text = f"{value:.{decimals}f}"
        if float(text) < limit:
            return text
    return None


def format_duration_ns(ns: int | float) -> str:
    """Format nanoseconds readably: ``850ns``, ``12.3us``, ``1.24ms``, ``3.50s``, ``2m05s``.

    From 1 h: ``1h02m05s``; from 100 h, hours with 3 significant digits (``123h``).
    Non-finite input gives ``"-"``; negative input is prefixed with ``-``.
    """
    try:
        ns = float(ns)
    except OverflowError:  # an int beyond the float range
        return "-"
    if not math.isfinite(ns):
        return "-"
    if ns < 0:
        return "-" + format_duration_ns(-ns)
    if round(ns) < 1000:
        return f"{round(ns)}ns"
    for unit, scale in (("us", 1e3), ("ms", 1e6), ("s", 1e9)):
        text = _three_digits(ns / scale)
        if text is not None and (unit != "s" or float(text) < 60.0):
            return text + unit
    total_s = round(ns / 1e9)
    hours, rest = divmod(total_s, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours >= 100:
        return f"{ns / 3.6e12:.3g}h"
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s"


def format_count(n: int) -> str:
    """Format a count with thousands separators: ``1,234,567``."""
    return f"{n:,}"


def format_rate(rps: float) -> str:
    """Format requests per second: ``1,000.0/s``; rates below 1/s keep 3 significant digits.

    Non-finite input gives ``"-"``.
    """
    if not math.isfinite(rps):
        return "-"
    if rps == 0 or abs(rps) >= 1:
        return f"{rps:,.1f}/s"
    return f"{rps:.3g}/s"


def format_bytes(n: int) -> str:
    """Format a byte count with binary units: ``512 B``, ``512.0 KiB``, ``1.2 MiB``."""
    if n < 0:
        return "-" + format_bytes(-n)
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if round(value, 1) < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover
