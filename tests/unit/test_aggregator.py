"""The aggregator's per-second series: seconds are made as they are reached, far past
the room reserved up front, and each holds exactly what completed within it."""

from __future__ import annotations

from hammer import _core

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
    assert all(row["completed"] == 0 for row in agg.time_series(3))


def test_a_send_counts_in_the_second_it_was_due_and_completions_where_they_end() -> None:
    agg = _core.Aggregator()
    agg.start_ns = START
    due = START + 3 * S - 1_000           # the last microsecond of second 2 (of 0..2)
    agg.record_one(due, due + 5_000, due + 2 * S)  # sent 4 us late, done in second 4
    agg.record_one(START + S, START + S, START + S + 10)
    series = agg.time_series(5)
    assert [row["sent"] for row in series] == [0, 1, 1, 0, 0]
    assert [row["completed"] for row in series] == [0, 1, 0, 0, 1]
