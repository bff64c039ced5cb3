"""Saved reports: histograms in the JSON, shards of one plan (--shard K/N), and merging
their reports exactly (hammer.results), against the built-in server's own counts."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

import hammer
from accounting import check_invariant
from hammer.errors import ConfigError
from hammer.hammers import Hammer
from hammer.reporters import render_csv, render_json
from hammer.results import ReportError, load_report, merge_reports


def _buckets(saved: dict[str, Any]) -> Counter[int]:
    h = HdrHistogram.decode(saved["hdr"])
    return Counter({item.value_iterated_to: item.count_at_value_iterated_to
                    for item in h.get_recorded_iterator()})


def _saved(report: Any) -> dict[str, Any]:
    """A report as `--json` writes it and `hammer report` reads it back."""
    data: dict[str, Any] = json.loads(render_json(report.to_dict()))
    return data


def test_report_histograms_hold_every_result(target_server: Any) -> None:
    server = target_server()
    report = hammer.run(server.url, rate=400, duration="1s")
    data = _saved(report)
    hists = data["histograms"]
    agg = report.totals.aggregator
    for name in ("latency", "latency_uncorrected", "send_lag"):
        buckets = _buckets(hists[name])
        assert sum(buckets.values()) == report.counts.completed == 400
        assert hists[name]["max_ns"] == getattr(agg, name).max
        assert hists[name]["min_ns"] == getattr(agg, name).min
    # second 0, and second 1 if a host stall pushed a response past the load phase
    assert len(hists["seconds"]) == len(data["time_series"]) in (1, 2)
    assert sum(sum(_buckets(second).values()) for second in hists["seconds"] if second) == 400
    assert data["time_series"][0]["sent"] == 400
    assert data["shard"] is None
    assert data["start_epoch_s"] > 1.7e9


def test_responses_after_the_load_phase_have_their_seconds(target_server: Any) -> None:
    """The time series goes on through the drain: a response that came after the last
    second of the load phase is counted in the second it came, where nothing was due."""
    server = target_server(delay="450ms")
    report = hammer.run(server.url, rate=10, duration="1s", connections=8)
    check_invariant(report)
    assert server.wait_stats(requests=10)["responses"] == {"200": 10}
    data = _saved(report)
    rows, seconds = data["time_series"], data["histograms"]["seconds"]
    assert len(rows) == len(seconds) == 2
    assert [row["sent"] for row in rows] == [10, 0]
    assert sum(row["completed"] for row in rows) == report.counts.ok == 10
    assert rows[1]["completed"] >= 4          # due at 0.6 s and after: back after 1.05 s
    assert rows[1]["target_rps"] == rows[1]["achieved_rps"] == 0
    assert rows[1]["p50_ms"] >= 450
    assert [sum(_buckets(s).values()) for s in seconds] == [r["completed"] for r in rows]
    assert render_csv(data).count("\n") == 3  # the header and both seconds


def test_a_short_last_second_rates_the_completions_it_holds_over_their_time(
        target_server: Any) -> None:
    """-d 1.5s with 300 ms responses: second 1's sends are over its 0.5 s, and its
    completions (those due from 0.7 s, the last back at 1.75 s) over 0.75 s."""
    server = target_server(delay="300ms")
    report = hammer.run(server.url, rate=20, duration="1.5s", connections=16)
    check_invariant(report)
    assert server.wait_stats(requests=30)["responses"] == {"200": 30}
    rows = report.to_dict()["time_series"]
    assert len(rows) == 2 or rows[2]["sent"] == 0      # 3: a stall put a response past 2 s
    assert [row["sent"] for row in rows[:2]] == [20, 10]
    assert rows[1]["achieved_rps"] == 20.0
    assert sum(row["completed"] for row in rows) == report.counts.ok == 30
    if len(rows) == 2:
        covered_s = rows[1]["completed"] / rows[1]["throughput_rps"]
        assert 0.74 < covered_s < 1.0, covered_s      # not 0.5, nor the whole second


def test_merging_one_report_reproduces_its_figures_exactly(target_server: Any) -> None:
    """Percentiles of a merge come from the added histograms by the core's own
    algorithm: merging a report with nothing else gives back its every figure."""
    server = target_server(delay="1ms")
    data = _saved(hammer.run(server.url, rate="ramp:200->600@2s", duration="2s"))
    merged = merge_reports([data])
    for key in ("latency_ms", "latency_uncorrected_ms", "send_lag_ms", "counts", "status",
                "errors", "bytes", "time_series", "connect_ms"):
        assert merged[key] == data[key], key
    assert merged["connect_ms"]["p50"] is not None
    for name in ("latency", "connect"):
        assert merged["histograms"][name] == data["histograms"][name], name


@pytest.mark.parametrize("rate", [1000, 1001])
def test_shards_of_a_plan_send_it_whole_and_merge_exactly(target_server: Any,
                                                         rate: int) -> None:
    from hammer import _core

    server = target_server()
    parts = []
    sockets_before, _ = _core.socket_counts()
    for k in (1, 2):
        # a request budget: in a host stall, due slots wait and go out late instead of
        # being still due (unsent) when a duration ends
        report = hammer.run(server.url, rate=rate, requests=rate, shard=f"{k}/2",
                            connections=8)
        check_invariant(report)
        assert report.config.connections == 4        # -c 8 split in two
        parts.append(_saved(report))
    assert [p["counts"]["scheduled"] for p in parts] == [(rate + 1) // 2, rate // 2]
    assert [p["shard"] for p in parts] == [{"k": 1, "n": 2}, {"k": 2, "n": 2}]
    assert [p["rate"]["target_rps"] for p in parts] == [rate / 2, rate / 2]
    merged = merge_reports(parts, ["a.json", "b.json"])
    stats = server.wait_stats(requests=rate)
    assert merged["counts"]["scheduled"] == merged["counts"]["ok"] == rate
    assert stats["responses"] == {"200": rate}
    assert merged["rate"]["target_rps"] == rate
    for name in ("latency", "latency_uncorrected", "send_lag"):
        assert _buckets(merged["histograms"][name]) == (
            _buckets(parts[0]["histograms"][name]) + _buckets(parts[1]["histograms"][name]))
    assert merged["latency_ms"]["max"] == max(p["latency_ms"]["max"] for p in parts)
    assert merged["latency_ms"]["min"] == min(p["latency_ms"]["min"] for p in parts)
    # connection set-up merges the same way: one connect time per socket the core opened
    # (the server counts only connections that carried a request)
    connects = _buckets(merged["histograms"]["connect"])
    assert connects == (_buckets(parts[0]["histograms"]["connect"])
                        + _buckets(parts[1]["histograms"]["connect"]))
    assert sum(connects.values()) == _core.socket_counts()[0] - sockets_before == 8
    assert merged["connect_ms"]["max"] == max(p["connect_ms"]["max"] for p in parts)
    assert [p["part"] for p in merged["parts"]] == ["shard 1/2", "shard 2/2"]
    assert merged["time_series"][0]["sent"] == rate
    assert merged["notes"][0] == "merged from 2 reports: shards 1, 2 of 2"


class SlotsHammer(Hammer):
    """Records the slot number of every hit."""

    def __init__(self) -> None:
        self.slots: list[int] = []

    async def hit(self, slot: int) -> None:
        self.slots.append(slot)


@pytest.mark.parametrize("rate", [None, 300])
def test_shards_take_every_nth_slot(rate: int | None) -> None:
    """Shard k of N takes slots k-1, k-1+N, ...: together exactly the whole plan."""
    hammers = [SlotsHammer() for _ in range(3)]
    options: dict[str, Any] = ({"rate": rate, "duration": "1s"} if rate
                               else {"requests": 100, "connections": 3})
    for k, h in enumerate(hammers, start=1):
        report = hammer.run(hammer=h, shard=f"{k}/3", **options)
        check_invariant(report)
    total = 300 if rate else 100
    for k, h in enumerate(hammers):
        assert sorted(h.slots) == list(range(k, total, 3))


def test_whole_plan_and_its_merged_shards_schedule_the_same(target_server: Any) -> None:
    server = target_server()
    whole = hammer.run(server.url, rate=500, duration="1s")
    shards = [_saved(hammer.run(server.url, rate=500, duration="1s", shard=f"{k}/3"))
              for k in (1, 2, 3)]
    merged = merge_reports(shards)
    assert merged["counts"]["scheduled"] == whole.counts.scheduled == 500
    assert merged["counts"]["ok"] == whole.counts.ok == 500
    assert server.wait_stats(requests=1000)["responses"] == {"200": 1000}


@pytest.mark.parametrize(("shard", "message"), [
    ("3/2", "invalid shard 3/2: K must be 1..N"),
    ("0/2", "invalid shard 0/2: K must be 1..N"),
    ("1", "invalid shard '1' (use K/N, e.g. 1/3)"),
    ("a/b", "invalid shard 'a/b' (use K/N, e.g. 1/3)"),
])
def test_invalid_shards(shard: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        hammer.make_config("http://127.0.0.1:9/", shard=shard)


def test_a_shard_of_too_few_connections_is_refused() -> None:
    with pytest.raises(ConfigError, match="connections 1 cannot be split into 2 shards"):
        hammer.make_config("http://127.0.0.1:9/", connections=1, shard="2/2")


def test_merge_refuses_reports_of_different_plans(target_server: Any) -> None:
    server = target_server()
    a = _saved(hammer.run(server.url, rate=100, duration="0.2s", shard="1/2"))
    b = _saved(hammer.run(server.url, rate=100, duration="0.2s", shard="1/2"))
    c = _saved(hammer.run(server.url, rate=100, duration="0.2s", method="HEAD"))
    with pytest.raises(ReportError, match=re.escape("b.json and a.json are both shard 1/2")):
        merge_reports([a, b], ["a.json", "b.json"])
    with pytest.raises(ReportError, match=re.escape(
            "c.json is not of the same plan as a.json: method 'HEAD' != 'GET'")):
        merge_reports([a, c], ["a.json", "c.json"])
    old = {k: v for k, v in a.items() if k != "histograms"}
    with pytest.raises(ReportError, match=re.escape("old.json has no histograms")):
        merge_reports([old, a], ["old.json", "a.json"])


def test_load_report_errors(tmp_path: Any) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json\n")
    with pytest.raises(ReportError, match=r"bad.json is not a hammer JSON report \(line 1"):
        load_report(str(bad))
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    with pytest.raises(ReportError, match="no version and counts"):
        load_report(str(other))
    with pytest.raises(ReportError, match=r"cannot read .*missing\.json: No such file"):
        load_report(str(tmp_path / "missing.json"))


def test_a_closed_loop_starts_at_its_start_and_its_seconds_hold_every_send(
        target_server: Any) -> None:
    """Closed-loop workers wait for second 0 (a sharded run's agreed instant), so the
    per-second rows add up to the run's sends."""
    import time

    server = target_server()
    start_at = time.time() + 0.5
    report = hammer.run(server.url, connections=4, duration="1s", start_at=start_at)
    check_invariant(report)
    data = _saved(report)
    assert sum(row["sent"] for row in data["time_series"]) == report.counts.sent
    assert abs(data["start_epoch_s"] - start_at) < 0.02
    first = min(server.arrivals())
    assert first >= report.totals.start_ns
