"""The schedule in pure Python: the twin of the core's pacer and the test oracle for it.

Slot i of a rate R (req/s, an exact fraction) is due at start + floor(i * 1e9 / R) ns.
"""

from __future__ import annotations

import math
from fractions import Fraction

NS_PER_S = 1_000_000_000


def period_ns(rate_rps: Fraction) -> tuple[int, int]:
    """The period as an exact fraction (numerator, denominator) of nanoseconds."""
    return rate_rps.denominator * NS_PER_S, rate_rps.numerator


def intended_ns(start_ns: int, rate_rps: Fraction, slot: int) -> int:
    num, den = period_ns(rate_rps)
    return start_ns + slot * num // den


def slots_within(duration_ns: int, rate_rps: Fraction) -> int:
    """How many slots fall in [0, duration): the i with floor(i * 1e9 / R) < duration."""
    return math.ceil(Fraction(duration_ns) * rate_rps / NS_PER_S)
