"""hammer.html.render_html: the self-contained HTML report, from report dicts (the JSON
contract), read back with the standard library's HTML parser."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from hammer.html import render_html, write_html_atomic
from htmlcharts import Chart, Page, parse_page

CHARTS = ("latency-over-time", "rate", "spectrum", "outcomes")


def _row(t: int, rate: float | None, p50: float | None, errors: int = 0) -> dict[str, Any]:
    sent = round(rate or 100)
    return {"t_s": t, "target_rps": rate, "achieved_rps": float(sent),
            "throughput_rps": float(sent - errors), "sent": sent, "completed": sent - errors,
            "ok": sent - errors, "errors": errors, "p50_ms": p50,
            "p90_ms": None if p50 is None else p50 * 2,
            "p99_ms": None if p50 is None else p50 * 5,
            "max_ms": None if p50 is None else p50 * 9}


def _latency(scale: float = 1.0) -> dict[str, float]:
    return {"min": 0.04 * scale, "mean": 0.34 * scale, "p50": 0.16 * scale,
            "p90": 0.66 * scale, "p99": 3.4 * scale, "p99.9": 4.8 * scale, "max": 5.7 * scale}


def make_report(seconds: int = 5, rate: float = 500.0) -> dict[str, Any]:
    """An open-loop report shaped as `hammer run --json` writes it (values from a run)."""
    scheduled = int(seconds * rate)
    return {
        "version": 1, "target": "http://127.0.0.1:36969/", "kind": "http", "mode": "open",
        "method": "GET", "duration_s": float(seconds), "connections": 64, "threads": 1,
        "timeout_s": 10.0, "spin_ms": 0.0, "pacing": {"mode": "quantum", "quantum_us": 100.0},
        "keepalive": True, "max_requests_per_conn": None,
        "rate": {"target_rps": rate, "achieved_rps": rate, "profile": None,
                 "arrivals": "uniform"},
        "throughput_rps": rate,
        "counts": {"scheduled": scheduled, "sent": scheduled, "completed": scheduled,
                   "ok": scheduled - 7, "http_error": 7, "error": 0, "unsent": 0, "late": 0},
        "status": {"200": scheduled - 7, "503": 7}, "errors": {},
        "latency_ms": _latency(1.0), "latency_uncorrected_ms": _latency(0.5),
        "send_lag_ms": _latency(0.2),
        "bytes": {"sent": 117000, "received": 120000},
        "connect_ms": {"min": 1.1, "mean": 1.1, "p50": 1.1, "p90": 1.1, "p99": 1.1,
                       "p99.9": 1.1, "max": 1.1},
        "tls": None, "targets": [],
        "time_series": [_row(t, rate, 0.15 + 0.01 * t) for t in range(seconds)],
        "interrupted": None, "stopped": None,
        "hammer": {"kind": "http", "ok_status": "2xx,3xx"},
        "error_samples": [], "saturated": [], "notes": [], "slo": [],
    }


def closed_loop(report: dict[str, Any]) -> dict[str, Any]:
    report["mode"] = "closed"
    report["spin_ms"] = report["pacing"] = None
    report["rate"] = {"target_rps": None, "achieved_rps": 62379.0, "profile": None,
                      "arrivals": None}
    for row in report["time_series"]:
        row["target_rps"] = None
    return report


def zero_completions(report: dict[str, Any]) -> dict[str, Any]:
    """A run against a closed port: every request a connect error, no latency at all."""
    scheduled = report["counts"]["scheduled"]
    report["counts"] = {"scheduled": scheduled, "sent": 0, "completed": 0, "ok": 0,
                        "http_error": 0, "error": scheduled, "unsent": 0, "late": 0}
    report["status"] = {}
    report["errors"] = {"connect_refused": scheduled}
    empty = dict.fromkeys(_latency(), None)
    for key in ("latency_ms", "latency_uncorrected_ms", "send_lag_ms", "connect_ms"):
        report[key] = dict(empty)
    report["rate"]["achieved_rps"] = report["throughput_rps"] = 0.0
    for row in report["time_series"]:
        row.update(achieved_rps=0.0, throughput_rps=0.0, sent=0, completed=0, ok=0,
                   errors=row["sent"], p50_ms=None, p90_ms=None, p99_ms=None, max_ms=None)
    return report


def encoded_histogram(values_ns: list[int]) -> str:
    histogram = HdrHistogram(1, 3_600_000_000_000, 3)
    for value in values_ns:
        histogram.record_value(value)
    encoded: bytes = histogram.encode()
    return encoded.decode()


def page_of(report: dict[str, Any]) -> tuple[str, Page]:
    text = render_html(report)
    return text, parse_page(text)


def hover_texts(chart: Chart, prefix: str) -> list[str]:
    return [t for t in chart.text if t.startswith(prefix)]


# --------------------------------------------------------------------------- charts


def test_every_chart_is_drawn_with_a_point_per_second() -> None:
    report = make_report(seconds=7)
    text, page = page_of(report)
    assert text.startswith("<!DOCTYPE html>")
    assert set(CHARTS) <= set(page.charts)
    latency = page.charts["latency-over-time"]
    for series in ("p50_ms", "p99_ms", "max_ms"):
        assert len(latency.series[series]) == 1            # one unbroken line
        assert latency.points(series) == 7 == latency.declared_points[series]
    rate = page.charts["rate"]
    assert {key: rate.points(key) for key in rate.series} == {
        "target_rps": 7, "achieved_rps": 7, "throughput_rps": 7}
    # x grows with time, and a higher latency is drawn higher (smaller y)
    (p50,) = latency.series["p50_ms"]
    assert [x for x, _ in p50] == sorted(x for x, _ in p50)
    assert p50[-1][1] < p50[0][1]
    outcomes = page.charts["outcomes"]
    assert [bar["fill"] for bar in outcomes.bars] and len(outcomes.bars) == 2  # 200 and 503
    assert "HTTP 503" in outcomes.text


def test_axes_have_tick_labels_units_and_a_legend() -> None:
    _, page = page_of(make_report())
    latency = page.charts["latency-over-time"]
    assert "latency (ms)" in latency.text
    assert "time since the start (s)" in latency.text
    assert {"p50", "p99", "max"} <= set(latency.text)
    assert "requests per second" in page.charts["rate"].text
    assert {"target", "achieved", "throughput"} <= set(page.charts["rate"].text)
    spectrum = page.charts["spectrum"]
    assert {"0%", "90%", "99%", "99.9%"} <= set(spectrum.text)
    assert {"corrected", "uncorrected", "send lag"} <= set(spectrum.text)


def test_a_second_without_latency_breaks_the_line() -> None:
    report = make_report(seconds=6)
    report["time_series"][2].update(p50_ms=None, p90_ms=None, p99_ms=None, max_ms=None,
                                    completed=0)
    _, page = page_of(report)
    latency = page.charts["latency-over-time"]
    assert latency.points("p50_ms") == 5
    assert [len(line) for line in latency.series["p50_ms"]] == [2, 3]


def test_spectrum_from_histograms_has_a_point_every_tenth_of_a_decade() -> None:
    report = make_report()
    values = [1_000_000 + 1000 * i for i in range(10_000)]   # 1 ms .. 11 ms, uniform
    report["histograms"] = {"latency": encoded_histogram(values),
                            "latency_uncorrected": encoded_histogram(values[:5000]),
                            "send_lag": encoded_histogram([5000] * 100)}
    text, page = page_of(report)
    spectrum = page.charts["spectrum"]
    # 10,000 values: 1/(1-p) reaches 10^4 at the last one, so 4 decades, 41 points
    assert spectrum.points("latency") == 41
    assert spectrum.points("latency_uncorrected") == 1 + math.ceil(10 * math.log10(5000))
    assert spectrum.points("send_lag") == 21
    corrected = hover_texts(spectrum, "corrected:")
    assert corrected[0].startswith("corrected: 1.000 ms at 0%")
    assert "at 90%" in corrected[10] and corrected[10].startswith("corrected: 10.0")
    highest = HdrHistogram.decode(report["histograms"]["latency"]).get_max_value()
    assert highest == pytest.approx(10_999_000, rel=1e-3)
    assert corrected[-1] == f"corrected: {highest / 1e6:.3f} ms at 99.99%"   # the maximum
    assert "99.99%" in spectrum.text                           # axis tick
    assert "full latency histograms" in text


def test_spectrum_falls_back_to_the_summary_percentiles() -> None:
    text, page = page_of(make_report())
    spectrum = page.charts["spectrum"]
    # min, p50, p90, p99, p99.9, max
    assert spectrum.points("latency") == 6
    assert spectrum.points("latency_uncorrected") == 6
    assert hover_texts(spectrum, "corrected:")[-1].startswith("corrected: 5.700 ms")
    assert "summary percentiles only" in text


def test_a_damaged_histogram_falls_back_to_the_summary() -> None:
    report = make_report()
    report["histograms"] = {"latency": "HISTFAAAnot-base64!", "send_lag": 12,
                            "latency_uncorrected": ""}
    _, page = page_of(report)
    assert page.charts["spectrum"].points("latency") == 6


# --------------------------------------------------------------------------- edge cases


def test_closed_loop_has_no_target_rate() -> None:
    text, page = page_of(closed_loop(make_report()))
    rate = page.charts["rate"]
    assert "target_rps" not in rate.series
    assert rate.points("achieved_rps") == 5
    assert "closed loop" in text
    assert re.search(r"<th>target rate</th><td>-</td>", text)


def test_zero_completions_draw_no_latency_but_the_errors() -> None:
    _, page = page_of(zero_completions(make_report()))
    assert page.charts["latency-over-time"].attrs["data-points"] == "0"
    assert "no data" in page.charts["latency-over-time"].text
    assert page.charts["spectrum"].attrs["data-points"] == "0"
    outcomes = page.charts["outcomes"]
    assert len(outcomes.bars) == 1 and "connect_refused" in outcomes.text
    assert "100%" in " ".join(outcomes.text)
    assert page.charts["rate"].points("target_rps") == 5


def test_no_time_series_and_an_empty_report_do_not_crash() -> None:
    report = make_report()
    report["time_series"] = []
    _, page = page_of(report)
    assert "no per-second data in this report" in page.charts["latency-over-time"].text
    _, empty = page_of({})
    assert set(CHARTS) <= set(empty.charts)
    assert all(chart.attrs["data-points"] == "0" for chart in empty.charts.values())


@pytest.mark.parametrize("key", list(make_report()))
@pytest.mark.parametrize("value", [None, "text", 3, [1, None], {"x": None}, float("nan")])
def test_any_field_of_any_type_renders(key: str, value: Any) -> None:
    report = make_report()
    report[key] = value
    assert "</html>" in render_html(report)


def test_nan_and_infinity_show_as_missing() -> None:
    report = make_report()
    report["latency_ms"]["p99"] = float("nan")
    report["time_series"][1]["p50_ms"] = float("inf")
    text, page = page_of(report)
    assert "nan" not in text.lower().replace("nanosecond", "")
    assert page.charts["latency-over-time"].points("p50_ms") == 4


# --------------------------------------------------------------------------- content


def test_strings_from_the_report_are_escaped() -> None:
    report = make_report()
    evil = "<script>alert(1)</script>"
    report["target"] = f"http://127.0.0.1:1/a?x={evil}"
    report["targets"] = [
        {"method": "GET", "url": f"http://127.0.0.1:1/a?x={evil}", "sent": 5, "ok": 5,
         "http_error": 0, "error": 0, "latency_ms": {"p50": 1.0, "p99": 2.0}},
        {"method": "POST\"><b>", "url": "http://127.0.0.1:1/b", "sent": 5, "ok": 5,
         "http_error": 0, "error": 0, "latency_ms": {}},
    ]
    report["errors"] = {"<img src=x onerror=alert(1)>": 3}
    report["status"]["<i>"] = 1
    report["notes"] = [evil]
    report["saturated"] = [evil]
    report["slo"] = [{"slo": f"p99<{evil}", "figure": "p99", "value": 1.0, "threshold": 2.0,
                      "unit": "ms", "passed": True}]
    report["hammer"] = {"kind": "python", "class": evil, "call": evil}
    report["error_samples"] = [{"slot": 1, "error": "E", "traceback": f"E: {evil}"}]
    text, page = page_of(report)
    assert "<script" not in text
    assert "<img" not in text and "<b>" not in text and "<i>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert page.tags.isdisjoint({"script", "img", "iframe", "object", "embed", "link"})


def test_nothing_is_loaded_from_anywhere() -> None:
    report = make_report()
    report["histograms"] = {"latency": encoded_histogram([1_000_000] * 10)}
    text, page = page_of(report)
    linking = [(tag, name, value) for tag, name, value in page.attributes
               if name in {"src", "href", "xlink:href", "srcset", "action", "data", "poster"}
               or value.lstrip().lower().startswith(("http:", "https:", "//"))]
    assert linking == []
    assert "url(" not in text and "@import" not in text
    # and the browser is told to load nothing
    policies = [value for tag, name, value in page.attributes
                if tag == "meta" and name == "content" and "default-src" in value]
    assert policies and policies[0].startswith("default-src 'none';")
    assert "xmlns" not in text


def test_summary_tables_show_counts_rates_latency_and_slos() -> None:
    report = make_report()
    report["counts"]["late"] = 12
    report["saturated"] = ["send lag p99 14.2 ms over 10 ms"]
    report["notes"] = ["a note"]
    report["slo"] = [
        {"slo": "p99<200ms", "figure": "p99", "value": 3.4, "threshold": 200.0, "unit": "ms",
         "passed": True},
        {"slo": "error_rate<0.1%", "figure": "error_rate", "value": 0.0028,
         "threshold": 0.001, "unit": "ratio", "passed": False},
    ]
    text, _ = page_of(report)
    for expected in ("2,500", "2,493", "500.0/s", "114.3 KiB", "117.2 KiB", "quantum 100us",
                     "<td class=num>3.400</td>", "<td class=num>5.700</td>",
                     "<td class=num>12</td>", "Generator saturated", "send lag p99 14.2 ms",
                     "a note", "1 of 2 SLOs FAILED", "0.28%", "0.1%", "200.000 ms",
                     ">passed<", ">FAILED<", "uncorrected", "send lag", "connect"):
        assert expected in text, expected


def test_multiple_targets_get_a_table() -> None:
    report = make_report()
    assert ">Targets<" not in render_html(report)
    report["targets"] = [
        {"method": "GET", "url": f"http://127.0.0.1:1/{name}", "sent": 10, "ok": 9,
         "http_error": 1, "error": 0, "latency_ms": {"p50": 1.5, "p99": 9.25}}
        for name in ("a", "b")]
    text = render_html(report)
    assert ">Targets<" in text and "GET http://127.0.0.1:1/b" in text and "9.250" in text


def test_input_is_not_modified() -> None:
    report = make_report()
    report["histograms"] = {"latency": encoded_histogram([1000, 2000])}
    before = copy.deepcopy(report)
    render_html(report)
    assert report == before


def test_written_atomically(tmp_path: Any) -> None:
    path = tmp_path / "report.html"
    write_html_atomic(make_report(), str(path))
    assert path.read_text(encoding="utf-8") == render_html(make_report())
    with pytest.raises(OSError, match="cannot write HTML report to"):
        write_html_atomic(make_report(), str(tmp_path / "missing" / "report.html"))
