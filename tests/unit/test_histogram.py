"""Core histograms use HdrHistogram's layout: percentiles agree with the hdrh package."""

import random

import pytest
from hdrh.histogram import HdrHistogram

from hammer import _core

HIGHEST = _core.HIST_HIGHEST_NS
SIGFIGS = _core.HIST_SIGNIFICANT_FIGURES
PERCENTILES = [1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99]


def both(values: list[int]) -> tuple[_core.Histogram, HdrHistogram]:
    ours = _core.Histogram()
    ref = HdrHistogram(1, HIGHEST, SIGFIGS)
    for v in values:
        ours.record(v)
        ref.record_value(v)
    return ours, ref


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_match_hdrh(seed: int) -> None:
    rng = random.Random(seed)
    # latencies from 1 us to a few seconds, log-spread, as real runs give
    values = [int(10 ** rng.uniform(3, 9.7)) for _ in range(20_000)]
    ours, ref = both(values)
    assert ours.total_count == ref.get_total_count() == len(values)
    for p in PERCENTILES:
        # same bucket as hdrh; ours never reports above the exact maximum recorded
        expected = min(ref.get_value_at_percentile(p), max(values))
        assert ours.value_at_percentile(p) == expected, p


def test_bucket_counts_match_hdrh() -> None:
    rng = random.Random(42)
    values = [rng.randrange(1, 60 * 10**9) for _ in range(5_000)]
    ours, ref = both(values)
    buckets = ours.nonzero_counts()
    assert sum(count for _, count in buckets) == len(values)  # every value is in a bucket
    for lowest, count in buckets:
        assert ref.get_count_at_value(lowest) == count


def test_three_significant_digits_from_1us_to_1min() -> None:
    h = _core.Histogram()
    for v in (1_000, 1_234_567, 59_999_999_999):
        h = _core.Histogram()
        h.record(v)
        got = h.value_at_percentile(50)
        assert abs(got - v) <= v / 1000, (v, got)


def test_exact_min_max_mean_and_empty() -> None:
    h = _core.Histogram()
    assert h.summary_ms()["p50"] is None
    for v in (1_000_000, 2_000_000, 6_000_000):
        h.record(v)
    s = h.summary_ms()
    assert s["min"] == 1.0
    assert s["max"] == 6.0
    assert s["mean"] == 3.0
    assert h.value_at_percentile(100) == 6_000_000


def test_values_above_range_are_clamped_and_counted() -> None:
    h = _core.Histogram()
    h.record(HIGHEST * 2)
    assert h.clamped == 1
    assert h.max == HIGHEST
