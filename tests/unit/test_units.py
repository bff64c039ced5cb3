"""Tests for hammer.units: exact parsing of human units and report formatting.

Documented decisions exercised here:

* whitespace around a value is ignored, and whitespace between a number and its unit
  is accepted (``"10 s"`` == 10 s, ``"1m 30s"`` == 90 s, ``"64 KiB"``), but never inside
  a number (``"1 000"`` is rejected);
* compound durations go from the largest unit to the smallest, each unit once;
* durations have 1 ns resolution: ``"1.5ns"`` is rejected rather than rounded;
* durations take no exponent (``"1e400"`` is garbage); counts do (``"1e6"``);
* in a rate, ``M`` is million and a lowercase ``m`` multiplier is rejected (``/m`` is
  per minute); ``"1/0s"`` is rejected.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hammer.units import (
    MAX_INT64,
    format_bytes,
    format_count,
    format_duration_ns,
    format_rate,
    parse_count,
    parse_duration_ns,
    parse_rate,
    parse_size,
)

MS = 1_000_000
S = 1_000_000_000

# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", 500 * MS),
        ("10s", 10 * S),
        ("2m", 120 * S),
        ("1h", 3600 * S),
        ("1.5s", 1_500 * MS),
        ("250us", 250_000),
        ("250µs", 250_000),  # MICRO SIGN
        ("250μs", 250_000),  # GREEK SMALL LETTER MU
        ("100ns", 100),
        ("1ns", 1),
        ("1m30s", 90 * S),
        ("1h30m", 5400 * S),
        ("1h2m3s4ms5us6ns", 3723 * S + 4 * MS + 5_000 + 6),
        ("1m 30s", 90 * S),
        ("10", 10 * S),
        ("0.5", 500 * MS),
        ("0.1s", 100_000_000),  # exact, no float rounding
        ("0.3s", 300_000_000),
        ("0.000000001s", 1),
        ("1.", S),
        (".5s", 500 * MS),
        ("1.5m", 90 * S),
        ("0.1ms", 100_000),
        ("10 s", 10 * S),  # decision: space between number and unit is accepted
        ("  10s  ", 10 * S),
        ("\t2m\n", 120 * S),
        ("10S", 10 * S),  # units are case-insensitive
        ("500MS", 500 * MS),
        ("1H", 3600 * S),
        ("9223372036854775807ns", MAX_INT64),
    ],
)
def test_parse_duration_ns_accepts(text: str, expected: int) -> None:
    result = parse_duration_ns(text)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\t\n",
        "-1s",
        "-0.5",
        "+1s",
        "1e400",
        "1e3ms",
        "nan",
        "inf",
        "-inf",
        "infinity",
        "NaN",
        "10x",
        "abc",
        "s",
        "ms",
        "1.2.3s",
        "1 000s",  # no space inside a number
        "1m30",  # in a compound every part needs a unit
        "30s1m",  # largest unit first
        "1s1s",  # each unit once
        "1ms1s",
        "1.5ns",  # below the 1 ns resolution
        "0.0000000001s",
        "10sec",
        "1d",
        "1_000ms",
        "0x10s",
        "１０s",  # fullwidth digits
        "9223372036854775808ns",  # int64 overflow
        "300y",
        "1" * 101,  # absurdly long
    ],
)
def test_parse_duration_ns_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid duration '") as info:
        parse_duration_ns(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["0", "0s", "0ms", "0.0", "0m0s"])
def test_parse_duration_ns_zero(text: str) -> None:
    with pytest.raises(ValueError, match="must be greater than zero"):
        parse_duration_ns(text)
    assert parse_duration_ns(text, allow_zero=True) == 0


def test_parse_duration_ns_messages() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration_ns("10x")
    assert str(info.value) == "invalid duration '10x' (use e.g. 500ms, 10s, 2m, 1h)"
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration_ns("-1s")
    with pytest.raises(ValueError, match=r"largest to smallest.*1m30s"):
        parse_duration_ns("30s1m")
    with pytest.raises(ValueError, match="1ns resolution"):
        parse_duration_ns("1.5ns")
    with pytest.raises(ValueError, match="too large"):
        parse_duration_ns("999999999h")


def test_parse_duration_ns_long_value_is_shortened_in_message() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration_ns("x" * 500)
    assert len(str(info.value)) < 120
    assert "..." in str(info.value)


@given(st.text())
def test_parse_duration_ns_only_raises_value_error(text: str) -> None:
    try:
        result = parse_duration_ns(text, allow_zero=True)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(result, int)
        assert 0 <= result <= MAX_INT64


@given(st.text(alphabet="0123456789.smhnuµ -+e ", max_size=20))
def test_parse_duration_ns_only_raises_value_error_near_misses(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_duration_ns(text)


@pytest.mark.parametrize(
    ("suffix", "scale"),
    [("ns", 1), ("us", 1_000), ("ms", MS), ("s", S), ("m", 60 * S), ("h", 3600 * S), ("", S)],
)
@given(n=st.integers(min_value=1, max_value=10**6))
def test_parse_duration_ns_integer_round_trip(suffix: str, scale: int, n: int) -> None:
    assert parse_duration_ns(f"{n}{suffix}") == n * scale


@given(
    minutes=st.integers(min_value=0, max_value=10_000),
    seconds=st.integers(min_value=0, max_value=59),
    millis=st.integers(min_value=0, max_value=999),
)
def test_parse_duration_ns_compound_round_trip(minutes: int, seconds: int, millis: int) -> None:
    text = f"{minutes}m{seconds}s{millis}ms"
    expected = minutes * 60 * S + seconds * S + millis * MS
    assert parse_duration_ns(text, allow_zero=True) == expected


@given(st.decimals(min_value=0, max_value=10**6, places=9, allow_nan=False))
def test_parse_duration_ns_decimal_seconds_exact(value: Decimal) -> None:
    text = f"{value:f}s"
    assert parse_duration_ns(text, allow_zero=True) == int(Fraction(text[:-1]) * S)


# --------------------------------------------------------------------------- rates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000", Fraction(1000)),
        ("1000/s", Fraction(1000)),
        ("30/m", Fraction(1, 2)),
        ("2/h", Fraction(1, 1800)),
        ("0.5", Fraction(1, 2)),
        ("2k", Fraction(2000)),
        ("2K", Fraction(2000)),
        ("1.5k/s", Fraction(1500)),
        ("1M", Fraction(1_000_000)),
        ("10/1s", Fraction(10)),
        ("1/500ms", Fraction(2)),
        ("3/2s", Fraction(3, 2)),
        ("90/1m30s", Fraction(1)),
        ("1/100us", Fraction(10_000)),
        ("5/2", Fraction(5, 2)),  # bare period number is seconds
        ("1/ns", Fraction(10**9)),
        ("60/min", Fraction(1)),
        ("3600/hour", Fraction(1)),
        ("10/sec", Fraction(10)),
        ("0.1", Fraction(1, 10)),  # exact
        ("+5", Fraction(5)),
        (" 500 / s ", Fraction(500)),  # optional whitespace
        ("500/ s", Fraction(500)),
        ("500 /s", Fraction(500)),
        ("1.5 k", Fraction(1500)),
        ("100/S", Fraction(100)),
    ],
)
def test_parse_rate_accepts(text: str, expected: Fraction) -> None:
    result = parse_rate(text)
    assert result == expected
    assert isinstance(result, Fraction)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "abc",
        "nan",
        "inf",
        "1e400",
        "1e3",
        "1/0s",
        "1/0",
        "1/",
        "/s",
        "1//s",
        "1/s/s",
        "1/-1s",
        "1/x",
        "2m",  # lowercase m multiplier is ambiguous with per-minute
        "1 000",
        "10/1.5ns",
        "k",
        "1kk",
        "1" * 101,
    ],
)
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid rate '"):
        parse_rate(text)


@pytest.mark.parametrize("text", ["0", "0/s", "0.0", "-5", "-1/s", "0k", "-0"])
def test_parse_rate_must_be_positive(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_rate(text)
    assert str(info.value) == f"rate must be positive: '{text}'"


def test_parse_rate_messages() -> None:
    with pytest.raises(ValueError) as info:
        parse_rate("abc")
    assert str(info.value) == "invalid rate 'abc' (use e.g. 1000, 500/s, 30/m, 0.5)"
    with pytest.raises(ValueError, match="period must be longer than zero"):
        parse_rate("1/0s")


@given(st.text())
def test_parse_rate_only_raises_value_error(text: str) -> None:
    try:
        result = parse_rate(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert result > 0


@given(n=st.integers(min_value=1, max_value=10**9))
def test_parse_rate_integer_round_trip(n: int) -> None:
    assert parse_rate(str(n)) == n
    assert parse_rate(f"{n}/s") == n
    assert parse_rate(f"{n}/m") == Fraction(n, 60)
    assert parse_rate(f"{n}/1ms") == n * 1000


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("100", 100),
        ("10k", 10_000),
        ("10K", 10_000),
        ("2M", 2_000_000),
        ("2m", 2_000_000),
        ("1g", 1_000_000_000),
        ("1e6", 1_000_000),
        ("1E6", 1_000_000),
        ("1e+3", 1_000),
        ("2.5e3", 2_500),
        ("1.5k", 1_500),
        ("100.0", 100),
        ("  64 ", 64),
        ("10 k", 10_000),
        ("+7", 7),
        ("9223372036854775807", MAX_INT64),
    ],
)
def test_parse_count_accepts(text: str, expected: int) -> None:
    result = parse_count(text)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "0",
        "0k",
        "-1",
        "2.5",
        "1e-3",
        "1.0001k",
        "abc",
        "nan",
        "inf",
        "1x",
        "1 000",
        "1,000",
        "0x10",
        "1e",
        "k",
        "1e1000",  # exponent has at most 3 digits
    ],
)
def test_parse_count_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid connections '.*must be a positive whole"):
        parse_count(text, name="connections")


@pytest.mark.parametrize("text", ["1e400", "9223372036854775808", "10000000000G"])
def test_parse_count_too_large(text: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid count '.*': too large"):
        parse_count(text)


def test_parse_count_message_and_zero() -> None:
    with pytest.raises(ValueError) as info:
        parse_count("0", name="connections")
    assert str(info.value).startswith(
        "invalid connections '0': must be a positive whole number"
    )
    assert parse_count("0", allow_zero=True) == 0
    assert parse_count("-0", allow_zero=True) == 0
    with pytest.raises(ValueError, match="non-negative whole number"):
        parse_count("-1", name="requests", allow_zero=True)


@given(st.text())
def test_parse_count_only_raises_value_error(text: str) -> None:
    try:
        result = parse_count(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert 1 <= result <= MAX_INT64


@given(n=st.integers(min_value=1, max_value=MAX_INT64))
def test_parse_count_integer_round_trip(n: int) -> None:
    assert parse_count(str(n)) == n


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("128", 128),
        ("128b", 128),
        ("128B", 128),
        ("64KiB", 65_536),
        ("64kib", 65_536),
        ("64Ki", 65_536),
        ("1k", 1_000),
        ("1K", 1_000),
        ("1KB", 1_000),
        ("1kb", 1_000),
        ("1MiB", 1_048_576),
        ("2m", 2_000_000),
        ("2M", 2_000_000),
        ("2MB", 2_000_000),
        ("1g", 10**9),
        ("1GB", 10**9),
        ("1GiB", 2**30),
        ("1TiB", 2**40),
        ("1.5KiB", 1_536),
        ("0.5k", 500),
        ("64 KiB", 65_536),
        (" 1MiB ", 1_048_576),
        ("-0", 0),
    ],
)
def test_parse_size_accepts(text: str, expected: int) -> None:
    result = parse_size(text)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "text",
    ["", " ", "-1", "-1KiB", "1.5", "1x", "KiB", "1KiBB", "1 000", "nan", "inf", "1e3", "1kbit"],
)
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid size '.*64KiB"):
        parse_size(text)


@given(st.text())
def test_parse_size_only_raises_value_error(text: str) -> None:
    try:
        result = parse_size(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert 0 <= result <= MAX_INT64


@pytest.mark.parametrize(("suffix", "scale"), [("", 1), ("k", 1000), ("KiB", 1024), ("MiB", 2**20)])
@given(n=st.integers(min_value=0, max_value=10**6))
def test_parse_size_integer_round_trip(suffix: str, scale: int, n: int) -> None:
    assert parse_size(f"{n}{suffix}") == n * scale


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("ns", "expected"),
    [
        (0, "0ns"),
        (850, "850ns"),
        (999, "999ns"),
        (999.6, "1.00us"),
        (1_000, "1.00us"),
        (12_345, "12.3us"),
        (123_456, "123us"),
        (999_700, "1.00ms"),
        (1_240_000, "1.24ms"),
        (3_500_000_000, "3.50s"),
        (10 * S, "10.0s"),
        (59_960_000_000, "1m00s"),
        (125 * S, "2m05s"),
        (3725 * S, "1h02m05s"),
        (99 * 3600 * S, "99h00m00s"),
        (123 * 3600 * S, "123h"),
        (1e45, "2.78e+32h"),
        (-1_240_000, "-1.24ms"),
        (float("nan"), "-"),
        (float("inf"), "-"),
        (10**400, "-"),
    ],
)
def test_format_duration_ns(ns: float, expected: str) -> None:
    assert format_duration_ns(ns) == expected


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**20), 10**20))
def test_format_duration_ns_never_fails(ns: float) -> None:
    text = format_duration_ns(ns)
    assert text
    assert text.isascii()
    assert len(text) <= 12


@given(st.floats(min_value=0, max_value=59e9))
def test_format_duration_ns_is_short_below_a_minute(ns: float) -> None:
    assert len(format_duration_ns(ns)) <= 6


@pytest.mark.parametrize(
    ("n", "expected"), [(0, "0"), (999, "999"), (1_000, "1,000"), (1_234_567, "1,234,567")]
)
def test_format_count(n: int, expected: str) -> None:
    assert format_count(n) == expected


@pytest.mark.parametrize(
    ("rps", "expected"),
    [
        (1000, "1,000.0/s"),
        (999.8, "999.8/s"),
        (0, "0.0/s"),
        (1, "1.0/s"),
        (0.5, "0.5/s"),
        (1 / 30, "0.0333/s"),
        (float("nan"), "-"),
    ],
)
def test_format_rate(rps: float, expected: str) -> None:
    assert format_rate(rps) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (524_288, "512.0 KiB"),
        (1_258_291, "1.2 MiB"),
        (2**20 - 1, "1.0 MiB"),
        (3 * 2**30, "3.0 GiB"),
        (5 * 2**50, "5.0 PiB"),
        (2**70, "1048576.0 PiB"),
    ],
)
def test_format_bytes(n: int, expected: str) -> None:
    assert format_bytes(n) == expected
