"""Rate profiles and Poisson arrivals: the pacer stays a pure function, core == twin."""

from __future__ import annotations

import itertools
import math

import pytest

from hammer import _core, pacer
from hammer.config import ConfigError, make_config

PROFILES = [
    "1000@2s,2000@1s,500@1s",
    "ramp:0->5000@3s",
    "5000->100@2s",
    "0->1000@1s,1000@1s,1000->0@1s",
    "sine:mean=2000,amp=1000,period=2s,duration=4s",
    "7@1s,0.5@4s",
]


def core_times(profile: pacer.RateProfile, slots: list[int]) -> list[int]:
    return _core.schedule_ns(slots, rate_num=1, profile=profile.as_core())


@pytest.mark.parametrize("spec", PROFILES)
def test_slots_per_window_match_the_integral(spec: str) -> None:
    profile = pacer.parse_profile(spec)
    n = profile.slots()
    times = core_times(profile, list(range(n)))
    assert times == sorted(times)
    assert times[-1] < profile.duration_s * 1e9
    window_s = 0.1
    for w in range(math.ceil(profile.duration_s / window_s)):
        lo, hi = w * window_s, (w + 1) * window_s
        got = sum(lo * 1e9 <= t < hi * 1e9 for t in times)
        wanted = profile.count_within(hi) - profile.count_within(lo)
        assert abs(got - wanted) <= 1, (spec, w, got, wanted)


@pytest.mark.parametrize("spec", PROFILES)
def test_core_matches_twin(spec: str) -> None:
    profile = pacer.parse_profile(spec)
    slots = list(range(0, profile.slots(), max(1, profile.slots() // 500)))
    twin = [int(profile.slot_time_s(s) * 1e9) for s in slots]
    assert all(abs(a - b) <= 2 for a, b in zip(core_times(profile, slots), twin, strict=True))


@pytest.mark.parametrize(("spec", "slots"), [
    ("1000@2s,2000@1s,500@1s", 4500),
    ("ramp:0->5000@3s", 7500),
    ("0->1000@1s,1000@1s,1000->0@1s", 2000),
    ("sine:mean=2000,amp=1000,period=2s,duration=4s", 8000),
])
def test_total_slots(spec: str, slots: int) -> None:
    assert pacer.parse_profile(spec).slots() == slots


def test_ramp_closed_form_table() -> None:
    # 0 -> 1000/s over 1 s: slot k is due when 500 t^2 = k, at sqrt(k / 500) s
    profile = pacer.parse_profile("0->1000@1s")
    for k in (1, 2, 50, 125, 499):
        assert core_times(profile, [k])[0] == pytest.approx(math.sqrt(k / 500) * 1e9, abs=2)


def test_fitted_to_a_longer_duration_holds_the_last_rate() -> None:
    profile = pacer.parse_profile("0->100@1s").fitted(3.0)
    assert profile.slots() == 50 + 200


def test_sine_takes_the_run_duration() -> None:
    profile = pacer.parse_profile("sine:mean=100,amp=50,period=1s").fitted(2.0)
    assert profile.slots() == 200


@pytest.mark.parametrize("spec", ["1000@", "@10s", "abc@1s", "sine:mean=10,amp=20,period=1s",
                                  "sine:mean=10", "0@1s", "0->0@1s", "ramp:5000", "1000@-1s"])
def test_bad_profiles_are_usage_errors(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"rate profile|invalid"):
        make_config("http://127.0.0.1:9/", rate=spec)


def test_profile_config_duration_and_mean_rate() -> None:
    config = make_config("http://127.0.0.1:9/", rate="1000@1s,3000@1s")
    assert config.duration_ns == 2_000_000_000
    assert config.n_slots() == 4000
    assert float(config.rate_rps or 0) == 2000.0
    cut = make_config("http://127.0.0.1:9/", rate="1000@1s,3000@1s", duration="1500ms")
    assert cut.n_slots() == 2500


def test_poisson_core_matches_twin_and_mean() -> None:
    n = 20_000
    core = _core.schedule_ns(list(range(n)), rate_num=1000, rate_den=1, poisson_seed=42)
    twin = pacer.PoissonArrivals(1000.0, 42).times_ns(n)
    assert core == twin
    gaps = [b - a for a, b in itertools.pairwise(core)]
    mean_gap_ms = sum(gaps) / len(gaps) / 1e6
    assert mean_gap_ms == pytest.approx(1.0, rel=0.03)
    # exponential: the share of gaps above the mean is e^-1
    assert sum(g > 1e6 for g in gaps) / len(gaps) == pytest.approx(math.exp(-1), abs=0.02)
    assert core != _core.schedule_ns(list(range(n)), rate_num=1000, rate_den=1,
                                     poisson_seed=43)


def test_poisson_needs_a_constant_rate() -> None:
    with pytest.raises(ConfigError, match="poisson"):
        make_config("http://127.0.0.1:9/", rate="100@1s", arrivals="poisson")
