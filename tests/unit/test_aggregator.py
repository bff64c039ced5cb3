"""The aggregator's per-second series: seconds are made as they are reached, far past
the room reserved up front, and each holds exactly what completed within it."""

from __future__ import annotations

from types import SimpleNamespace

from hammer import _core
from hammer.metrics import time_series

S = 1_000_000_000
START = 5 * S


def test_time_series_holds_each_second_beyond_the_reserve() -> None:
    agg = _core.Aggregator()
    agg.start_ns = START
    # second -> latencies (ns) of the requests completing in it; 70 and 200 lie beyond
    # the 64 seconds reserved at first, 200 beyond the first doubling too
    plan = {0: [1_000_000, 3_000_000], 70: [2_000_000], 200: [4_000_000] * 3}
    for second, latencies in plan.items():
        for lat in latencies:
            done = START + second * S + 500_000_000
            agg.record_one(done - lat, done - lat, done)
    agg.record_one(START + 3 * S, START + 3 * S, START + 3 * S + 1000, status=0, error=1)
    series = agg.time_series(201)
    assert len(series) == 201
    for second, row in enumerate(series):
        latencies = plan.get(second, [])
        assert row["completed"] == len(latencies)
        assert row["errors"] == (1 if second == 3 else 0)
        if latencies:
            assert abs(row["p99_ms"] - max(latencies) / 1e6) <= max(latencies) / 1e6 * 0.01
        else:
            assert row["p50_ms"] is None
    assert (agg.completed, agg.errors, agg.sent) == (6, 1, 7)


def test_results_before_the_start_are_counted_but_not_in_a_second() -> None:
    agg = _core.Aggregator()
    agg.start_ns = START
    agg.record_one(START - S, START - S, START - S + 10)
    assert agg.completed == 1
    assert agg.seconds_used == 0
    assert all(row["completed"] == 0 for row in agg.time_series(3))


def test_a_send_counts_in_the_second_it_was_due_and_completions_where_they_end() -> None:
    agg = _core.Aggregator()
    agg.start_ns = START
    due = START + 3 * S - 1_000           # the last microsecond of second 2 (of 0..2)
    agg.record_one(due, due + 5_000, due + 2 * S)  # sent 4 us late, done in second 4
    agg.record_one(START + S, START + S, START + S + 10)
    assert agg.seconds_used == 5          # the report's series runs to the last completion
    assert agg.last_done_ns == due + 2 * S
    series = agg.time_series(5)
    assert [row["sent"] for row in series] == [0, 1, 1, 0, 0]
    assert [row["completed"] for row in series] == [0, 1, 0, 0, 1]


def test_a_send_written_after_the_load_phase_counts_in_its_last_second() -> None:
    """A closed-loop request started just before the end is measured from its write; a
    write past the end (a reconnect, a preemption) still counts in the last second, so
    the rows add up to the run's sends (CI once saw 63,832 of 63,833)."""
    agg = _core.Aggregator()
    agg.start_ns = START
    agg.end_ns = START + 2 * S
    agg.record_one(START + 2 * S + 40_000, START + 2 * S + 40_000, START + 2 * S + 90_000)
    agg.record_one(START + S, START + S, START + S + 10)
    series = agg.time_series(2)
    assert [row["sent"] for row in series] == [0, 2]
    assert sum(row["sent"] for row in series) == agg.sent


def test_ok_table_and_flags() -> None:
    agg = _core.Aggregator(ok_statuses=[200, 404])
    agg.record_one(START, START, START + 10, status=200)
    agg.record_one(START, START, START + 10, status=404)
    agg.record_one(START, START, START + 10, status=302)       # not in the table
    agg.record_one(START, START, START + 10, status=5000)      # outside the table
    agg.record_one(START, START, START + 10, status=500, ok=True)
    agg.record_one(START, START, START + 10, status=200, ok=False)
    assert (agg.ok, agg.http_error, agg.completed) == (3, 3, 6)
    default = _core.Aggregator()
    for status in (199, 200, 399, 400):
        default.record_one(START, START, START + 10, status=status)
    assert (default.ok, default.http_error) == (2, 2)


def test_register_error_codes() -> None:
    agg = _core.Aggregator()
    count = _core.ErrorClass.ERR_COUNT.value
    assert agg.register_error("timeout") == _core.ERROR_NAMES.index("timeout")
    first = agg.register_error("mqtt_refused")
    assert first == count
    assert agg.register_error("mqtt_refused") == first
    codes = [agg.register_error(f"e{i}") for i in range(300)]
    assert codes[: 254 - count] == list(range(count + 1, 255))
    assert set(codes[254 - count:]) == {255}
    agg.record_one(START, START, START + 10, status=0, error=first)
    agg.record_one(START, START, START + 10, status=0, error=codes[-1])
    agg.record_one(START, START, START + 10, status=0, error=codes[-2])
    assert agg.error_classes() == {"mqtt_refused": 1, "other": 2}
    assert agg.errors == 3


def test_add_merges_everything() -> None:
    a = _core.Aggregator(n_targets=2)
    b = _core.Aggregator(n_targets=2)
    a.start_ns = b.start_ns = START
    a.record_one(START, START + 5, START + 100, status=200, target=0)
    b.record_one(START + S, START + S, START + S + 300, status=503, target=1, late=True)
    b.record_one(START + 2 * S, START + 2 * S, START + 2 * S + 1, status=0,
                 error=b.register_error("custom"))
    b.record_one(START, START, START + 1, status=0, error=_core.ERROR_NAMES.index("reset"))
    a.register_error("other_custom")  # a's next free code differs from b's "custom"
    a.add(b)
    assert (a.results, a.sent, a.completed, a.ok, a.http_error, a.errors, a.late) == (
        4, 4, 2, 1, 1, 2, 1)
    assert a.status() == {"200": 1, "503": 1}
    assert a.error_classes() == {"custom": 1, "reset": 1}
    assert a.latency.total_count == 2 and a.latency.max >= 300
    assert a.seconds_used == 3
    assert a.last_done_ns == START + 2 * S + 1
    assert [row["sent"] for row in a.time_series(3)] == [2, 1, 1]
    assert [row["completed"] for row in a.time_series(3)] == [1, 1, 0]
    assert [t["sent"] for t in a.target_breakdown()] == [3, 1]
    assert a.target_breakdown()[1]["status"] == {"503": 1}


def _row(sent: int, completed: int) -> dict[str, object]:
    return {"sent": sent, "completed": completed, "ok": completed, "errors": 0,
            "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}


def test_a_short_last_second_rates_its_completions_over_the_time_they_cover() -> None:
    """-d 2.5s: the last second's sends are over its 0.5 s; its completions over the
    time to the last result (0.75 s here), or the whole second when the drain goes on."""
    closed = SimpleNamespace(plan=None, rate_profile=None, rate_rps=None)
    rows = [_row(10, 10), _row(10, 10), _row(5, 6)]
    series = time_series(closed, rows, 2.5, results_end_s=2.75)
    assert [r["achieved_rps"] for r in series] == [10.0, 10.0, 10.0]
    assert [r["throughput_rps"] for r in series] == [10.0, 10.0, 8.0]
    # no result after the load phase: the same span for both
    assert time_series(closed, rows, 2.5, results_end_s=2.4)[2]["throughput_rps"] == 12.0
    # a drain second follows: the last load second's completions cover all of it
    series = time_series(closed, [*rows, _row(0, 2)], 2.5, results_end_s=3.2)
    assert [r["throughput_rps"] for r in series] == [10.0, 10.0, 6.0, 2.0]
