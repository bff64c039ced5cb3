"""SLO thresholds: parsing, the figures they read, and what they decide."""

from __future__ import annotations

import pytest

from hammer.errors import ConfigError
from hammer.slo import parse_slo

REPORT = {
    "counts": {"scheduled": 1000, "ok": 990, "http_error": 4, "error": 1, "unsent": 5,
               "late": 20},
    "rate": {"target_rps": 100.0, "achieved_rps": 99.5},
    "throughput_rps": 99.4,
    "latency_ms": {"p50": 1.5, "p99": 180.0, "p99.9": 250.0, "max": 300.0},
    "latency_uncorrected_ms": {"p99": 12.0},
    "send_lag_ms": {"p99": 0.2},
}


@pytest.mark.parametrize(("text", "value", "passed"), [
    ("p99<200ms", 180.0, True),
    ("p99 < 150ms", 180.0, False),
    ("p99.9<=250ms", 250.0, True),
    ("latency.max<1s", 300.0, True),
    ("uncorrected.p99<10ms", 12.0, False),
    ("send_lag.p99<1ms", 0.2, True),
    ("error_rate<1%", 0.005, True),
    ("error_rate<0.1%", 0.005, False),
    ("http_error_rate<=0.004", 0.004, True),
    ("unsent_rate==0", 0.005, False),
    ("late_rate<5%", 0.02, True),
    ("achieved_rate>=99%", 0.995, True),
    ("achieved_rate>=99.9%", 0.995, False),
    ("throughput>99/s", 99.4, True),
    ("ok>=990", 990.0, True),
    ("errors==0", 1.0, False),
])
def test_thresholds_against_a_report(text: str, value: float, passed: bool) -> None:
    result = parse_slo(text).check(REPORT)
    assert result["value"] == pytest.approx(value)
    assert result["passed"] is passed


def test_a_figure_the_run_lacks_fails() -> None:
    closed = {**REPORT, "rate": {"target_rps": None, "achieved_rps": 500.0}}
    result = parse_slo("achieved_rate>=99%").check(closed)
    assert result["value"] is None and result["passed"] is False


@pytest.mark.parametrize(("text", "message"), [
    ("p98<1s", "no figure 'p98' in the report"),
    ("p99 200ms", "invalid SLO 'p99 200ms'"),
    ("p99<soon", "SLO 'p99<soon': "),
    ("error_rate<150%", "is not a share"),
])
def test_bad_thresholds_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_slo(text)
