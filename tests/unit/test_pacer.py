"""The schedule: slot times from the pure twin and the core agree, exactly, with no drift."""

from fractions import Fraction

import pytest

from hammer import _core, pacer


def core_intended(start_ns: int, rate: Fraction, slot: int) -> int:
    num, den = pacer.period_ns(rate)
    return _core.intended_ns(start_ns, num, den, slot)


@pytest.mark.parametrize(
    ("rate", "slot", "expected_offset_ns"),
    [
        (Fraction(1000), 0, 0),
        (Fraction(1000), 1, 1_000_000),
        (Fraction(1000), 999, 999_000_000),
        (Fraction(3), 1, 333_333_333),       # floor, never rounded up
        (Fraction(3), 2, 666_666_666),
        (Fraction(3), 3, 1_000_000_000),     # whole seconds land exactly
        (Fraction(1, 2), 1, 2_000_000_000),  # 0.5/s: one every 2 s
        (Fraction(1, 2), 7, 14_000_000_000),
        (Fraction(30, 60), 1, 2_000_000_000),  # 30/m
        (Fraction(2, 3600), 1, 1_800_000_000_000),  # 2/h
        (Fraction(7, 1000), 3, 428_571_428_571),
        (Fraction(20000), 20000, 1_000_000_000),
    ],
)
@pytest.mark.parametrize("impl", ["twin", "core"])
def test_slot_times(impl: str, rate: Fraction, slot: int, expected_offset_ns: int) -> None:
    start = 123_456_789
    fn = pacer.intended_ns if impl == "twin" else core_intended
    assert fn(start, rate, slot) == start + expected_offset_ns


@pytest.mark.parametrize("rate", [Fraction(1), Fraction(3), Fraction(7, 3), Fraction(999_999),
                                  Fraction(12345, 7), Fraction(1, 3600)])
def test_no_drift_over_a_million_slots(rate: Fraction) -> None:
    # slot 10^6 sits exactly at 10^6 / rate seconds (floored to the ns): no accumulated error
    n = 1_000_000
    exact = Fraction(n) / rate * 10**9
    for impl in (pacer.intended_ns, core_intended):
        assert impl(0, rate, n) == int(exact)  # floor of the exact value
    # and the period between any two neighbouring slots is floor or ceil of the exact period
    period = Fraction(10**9) / rate
    for slot in (0, 1, 17, 499_999, 999_998):
        gap = core_intended(0, rate, slot + 1) - core_intended(0, rate, slot)
        assert gap in (int(period), -(-period.numerator // period.denominator))


def test_core_matches_twin_on_many_slots() -> None:
    rate = Fraction(12_347, 3)
    for slot in range(0, 2_000_000, 9_973):
        assert core_intended(5, rate, slot) == pacer.intended_ns(5, rate, slot)


@pytest.mark.parametrize(
    ("duration_ns", "rate", "expected"),
    [
        (1_000_000_000, Fraction(1000), 1000),
        (5_000_000_000, Fraction(1000), 5000),
        (1_000_000_000, Fraction(3), 3),
        (1_000_000_001, Fraction(3), 4),       # slot 3 at exactly 1 s is inside
        (1_500_000_000, Fraction(1, 2), 1),    # one every 2 s: only slot 0
        (2_000_000_001, Fraction(1, 2), 2),
        (1, Fraction(1000), 1),                # slot 0 is always due at the start
        (10_000_000_000, Fraction(20000), 200_000),
    ],
)
def test_slots_within(duration_ns: int, rate: Fraction, expected: int) -> None:
    n = pacer.slots_within(duration_ns, rate)
    assert n == expected
    # the definition: slot n-1 is inside the duration and slot n is not
    assert pacer.intended_ns(0, rate, n - 1) < duration_ns <= pacer.intended_ns(0, rate, n)


def test_evenly_spread_within_a_second() -> None:
    # 1000/s: every 10 ms window holds exactly 10 slots, never a burst at the second's start
    times = [pacer.intended_ns(0, Fraction(1000), i) for i in range(1000)]
    for window in range(100):
        lo, hi = window * 10_000_000, (window + 1) * 10_000_000
        assert sum(lo <= t < hi for t in times) == 10
