"""The schedule in pure Python: the twin of the core's pacer and the test oracle for it.

Constant rate R (req/s, an exact fraction): slot i is due at start + floor(i * 1e9 / R) ns.
Profiles (steps, ramps, a sine): slot i is due when the integral of the rate reaches i.
Poisson arrivals: exponential gaps from the same seeded generator as the core.

Rate syntax (the --rate option):
    1000, 2k, 500/s, 30/m, 0.5            a constant rate
    1000@30s,2000@30s                     steps: 1000/s for 30 s, then 2000/s for 30 s
    ramp:0->5000@60s                      a linear ramp (the `ramp:` prefix is optional)
    0->1000@10s,1000@50s                  ramp up, then hold
    sine:mean=2000,amp=1000,period=30s    a sine around the mean (duration from -d)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from hammer import units

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


@dataclass(frozen=True)
class Segment:
    kind: str           # "constant", "ramp" or "sine"
    duration_s: float
    r0: float           # constant: the rate; ramp: the rate at the start; sine: the mean
    r1: float = 0.0     # ramp: the rate at the end; sine: the amplitude
    period_s: float = 0.0

    def as_tuple(self) -> tuple[str, float, float, float, float]:
        return (self.kind, self.duration_s, self.r0, self.r1, self.period_s)


@dataclass(frozen=True)
class RateProfile:
    segments: tuple[Segment, ...]
    text: str

    @property
    def duration_s(self) -> float:
        return sum(g.duration_s for g in self.segments)

    def fitted(self, duration_s: float) -> RateProfile:
        """Cut to duration_s, or hold the final rate until then (a sine given no
        duration of its own runs for all of it)."""
        if len(self.segments) == 1 and self.segments[0].kind == "sine" \
                and self.segments[0].duration_s == 0:
            g = self.segments[0]
            return RateProfile((Segment("sine", duration_s, g.r0, g.r1, g.period_s),),
                               self.text)
        out: list[Segment] = []
        left = duration_s
        for g in self.segments:
            if left <= 0:
                break
            out.append(Segment(g.kind, min(g.duration_s, left), g.r0, g.r1, g.period_s)
                       if g.kind != "ramp" or g.duration_s <= left else
                       Segment("ramp", left, g.r0, g.r0 + (g.r1 - g.r0) * left / g.duration_s))
            left -= g.duration_s
        if left > 1e-12:
            out.append(Segment("constant", left, self.rate_at(self.duration_s)))
        return RateProfile(tuple(out), self.text)

    def rate_at(self, t: float) -> float:
        start = 0.0
        for g in self.segments:
            if t < start + g.duration_s or g is self.segments[-1]:
                tau = min(t - start, g.duration_s)
                if g.kind == "constant":
                    return g.r0
                if g.kind == "ramp":
                    return g.r0 + (g.r1 - g.r0) * tau / g.duration_s
                return g.r0 + g.r1 * math.sin(2 * math.pi * t / g.period_s)
            start += g.duration_s
        return 0.0

    def count_within(self, t: float) -> float:
        """The integral of the rate over [0, t]: slots due before t (not rounded)."""
        total, start = 0.0, 0.0
        for g in self.segments:
            tau = min(max(t - start, 0.0), g.duration_s)
            if g.kind == "constant":
                total += g.r0 * tau
            elif g.kind == "ramp":
                total += g.r0 * tau + (g.r1 - g.r0) * tau * tau / (2 * g.duration_s)
            else:
                w = 2 * math.pi / g.period_s
                total += g.r0 * tau - g.r1 / w * (math.cos(w * (start + tau))
                                                  - math.cos(w * start))
            start += g.duration_s
        return total

    def slots(self) -> int:
        """Slots due within the profile: the i >= 0 with count(t_i) = i, t_i < duration."""
        return math.ceil(self.count_within(self.duration_s) - 1e-9)

    def slot_time_s(self, slot: int) -> float:
        """When slot `slot` is due (seconds): bisection on the monotone integral."""
        lo, hi = 0.0, self.duration_s
        while self.count_within(hi) < slot:
            hi *= 2
        for _ in range(100):
            mid = (lo + hi) / 2
            if self.count_within(mid) < slot:
                lo = mid
            else:
                hi = mid
        return hi

    def as_core(self) -> list[tuple[str, float, float, float, float]]:
        return [g.as_tuple() for g in self.segments]


_STEP = re.compile(r"^(?P<r0>[^@>-]+?)(?:\s*->\s*(?P<r1>[^@]+?))?\s*@\s*(?P<d>.+)$")


def _rate(text: str) -> float:
    rate = units.parse_rate(text) if text.strip() not in ("0", "0.0") else Fraction(0)
    return float(rate)


def parse_profile(text: str) -> RateProfile:
    """A rate profile (see the module docstring). Raises ValueError, one line."""
    spec = text.strip()
    try:
        if spec.startswith("sine:"):
            fields = dict(part.split("=", 1) for part in spec[5:].split(",") if part)
            unknown = set(fields) - {"mean", "amp", "period", "duration"}
            if unknown or not {"mean", "amp", "period"} <= set(fields):
                raise ValueError
            mean, amp = _rate(fields["mean"]), float(fields["amp"])
            period_s = units.parse_duration_ns(fields["period"]) / NS_PER_S
            duration_s = (units.parse_duration_ns(fields["duration"]) / NS_PER_S
                          if "duration" in fields else 0.0)
            if not 0 <= amp < mean:
                raise ValueError(f"invalid rate profile {text!r}: need 0 <= amp < mean")
            return RateProfile((Segment("sine", duration_s, mean, amp, period_s),), text)
        if spec.startswith("ramp:"):
            spec = spec[5:]
        segments = []
        for part in spec.split(","):
            match = _STEP.match(part.strip())
            if match is None:
                raise ValueError
            r0 = _rate(match["r0"])
            duration_s = units.parse_duration_ns(match["d"]) / NS_PER_S
            if match["r1"] is not None:
                segments.append(Segment("ramp", duration_s, r0, _rate(match["r1"])))
            else:
                if r0 <= 0:
                    raise ValueError(f"invalid rate profile {text!r}: a step needs a rate > 0")
                segments.append(Segment("constant", duration_s, r0))
    except ValueError as exc:
        if str(exc).startswith("invalid rate profile"):
            raise
        raise ValueError(
            f"invalid rate profile {text!r} (use e.g. 1000@30s,2000@30s, ramp:0->5000@60s "
            f"or sine:mean=2000,amp=1000,period=30s)") from None
    if any(g.kind == "ramp" and g.r0 <= 0 and g.r1 <= 0 for g in segments):
        raise ValueError(f"invalid rate profile {text!r}: a ramp cannot stay at 0")
    return RateProfile(tuple(segments), text)


def is_profile(text: str) -> bool:
    return "@" in text or text.strip().startswith(("sine:", "ramp:"))


class PoissonArrivals:
    """The core's Poisson sequence: xorshift64* uniforms, gaps -ln(u) / rate."""

    def __init__(self, rate_rps: float, seed: int) -> None:
        self.rate = rate_rps
        self.state = (seed * 0x9E3779B97F4A7C15 | 1) & 0xFFFFFFFFFFFFFFFF
        self.t = 0.0

    def _unit(self) -> float:
        x = self.state
        x ^= x >> 12
        x ^= (x << 25) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 27
        self.state = x
        return (((x * 2685821657736338717) & 0xFFFFFFFFFFFFFFFF) >> 11) + 1

    def times_ns(self, n: int) -> list[int]:
        """Offsets of slots 0..n-1 (slot 0 at 0)."""
        out = [0]
        t = 0.0
        for _ in range(n - 1):
            t += -math.log(self._unit() * (1.0 / 9007199254740992.0)) / self.rate
            out.append(int(t * 1e9))
        return out
