"""When the generator is saturated (exit 3) and when a few late sends are only a note."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hammer.metrics import Counts, Report


def report(p90: float, p99: float, unsent: int = 0, open_loop: bool = True) -> Report:
    lag = {"min": 0.0, "mean": 0.1, "p50": 0.05, "p90": p90, "p99": p99, "p99.9": p99,
           "max": p99}
    return Report(config=SimpleNamespace(open_loop=open_loop), duration_s=1.0,
                  counts=Counts(scheduled=100, sent=100 - unsent, unsent=unsent),
                  status={}, errors={}, latency_ms=lag, latency_uncorrected_ms=lag,
                  send_lag_ms=lag, bytes_sent=0, bytes_received=0)


@pytest.mark.parametrize(("p90", "p99", "unsent", "saturated", "noted"), [
    (0.05, 0.3, 0, False, False),     # on time
    (0.05, 2.5, 0, False, True),      # a few late wakes: a note, not saturation
    (1.5, 4.0, 0, True, False),       # a tenth of the sends over 1 ms late: saturated
    (0.05, 0.3, 3, True, False),      # requests never sent
])
def test_saturation_and_lag_note(p90: float, p99: float, unsent: int, saturated: bool,
                                 noted: bool) -> None:
    r = report(p90, p99, unsent)
    assert bool(r.saturation()) is saturated
    assert (r.lag_note() is not None) is noted


def test_the_note_names_the_figures_and_the_remedy() -> None:
    note = report(0.05, 2.5).lag_note()
    assert note is not None
    assert note.startswith("send-lag p99 2.50 ms while p90 is 0.050 ms: a few sends")
    assert "--spin 1ms" in note
    assert report(0.05, 2.5, open_loop=False).lag_note() is None


def test_one_unsent_request_is_singular() -> None:
    from hammer.metrics import Counts, Report

    config = type("C", (), {"open_loop": True})()
    report = Report(config=config, duration_s=1.0,
                    counts=Counts(scheduled=2, sent=1, completed=1, ok=1, unsent=1),
                    status={}, errors={}, latency_ms={}, latency_uncorrected_ms={},
                    send_lag_ms={}, bytes_sent=0, bytes_received=0)
    assert report.saturation() == ["1 request never sent"]
