"""Tests for hammer.reporters: text and JSON rendering, atomic JSON writing."""

from __future__ import annotations

import copy
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hammer.reporters import MAX_WIDTH, render_json, render_text, write_json_atomic

LATENCY_KEYS = ("min", "mean", "p50", "p90", "p99", "p99.9", "max")


def _latency(values: tuple[float | None, ...]) -> dict[str, float | None]:
    return dict(zip(LATENCY_KEYS, values, strict=True))


def open_report() -> dict[str, Any]:
    return {
        "version": 1,
        "target": "http://127.0.0.1:8080/",
        "mode": "open",
        "method": "GET",
        "duration_s": 5.0012,
        "connections": 64,
        "threads": 1,
        "timeout_s": 10.0,
        "rate": {"target_rps": 1000.0, "achieved_rps": 999.8},
        "throughput_rps": 999.1,
        "counts": {
            "scheduled": 5000,
            "sent": 5000,
            "completed": 4990,
            "ok": 4980,
            "http_error": 10,
            "error": 10,
            "unsent": 0,
            "late": 3,
        },
        "status": {"503": 10, "200": 4980},
        "errors": {"connect_refused": 3, "timeout": 7},
        "latency_ms": _latency((0.081, 0.21, 0.19, 0.3, 0.61, 1.9, 2.3)),
        "latency_uncorrected_ms": _latency((0.07, 0.2, 0.18, 0.29, 0.6, 1.8, 2.2)),
        "send_lag_ms": _latency((0.001, 0.01, 0.005, 0.02, 0.05, 0.4, 0.5)),
        "bytes": {"sent": 524_288, "received": 1_258_291},
        "saturated": [],
        "notes": [],
    }


def closed_report() -> dict[str, Any]:
    report = open_report()
    report.update(
        mode="closed",
        connections=10,
        threads=2,
        rate={"target_rps": None, "achieved_rps": 12_345.6},
        throughput_rps=12_340.0,
        status={"200": 61_700},
        errors={},
        latency_ms=_latency((None,) * 7),
        latency_uncorrected_ms=_latency((0.5, 0.8, 0.7, 1.0, 2.0, 3.0, 4.0)),
        send_lag_ms=_latency((None,) * 7),
    )
    return report


def _line(text: str, prefix: str) -> str:
    matches = [line for line in text.splitlines() if line.lstrip().startswith(prefix)]
    assert len(matches) == 1, (prefix, text)
    return matches[0]


def _assert_width(text: str) -> None:
    assert text.endswith("\n")
    for line in text.splitlines():
        assert len(line) <= MAX_WIDTH, line


# --------------------------------------------------------------------------- text


def test_render_text_open() -> None:
    text = render_text(open_report())
    _assert_width(text)
    lines = text.splitlines()
    assert lines[0] == (
        "hammer: open loop at 1,000.0/s for 5.00s against http://127.0.0.1:8080/ (GET)"
    )
    assert lines[1] == "  64 connections, 1 thread, timeout 10.0s"
    assert "WARNING" not in text
    assert "note:" not in text

    requests = _line(text, "requests")
    for figure in ("scheduled 5,000", "sent 5,000", "completed 4,990", "late 3", "unsent 0"):
        assert figure in requests
    outcome = _line(text, "outcome")
    for figure in ("ok 4,980", "http errors 10", "errors 10"):
        assert figure in outcome
    rate = _line(text, "rate")
    for figure in ("target 1,000.0/s", "achieved 999.8/s", "throughput 999.1/s"):
        assert figure in rate

    header = _line(text, "latency (ms)")
    assert header.split()[2:] == list(LATENCY_KEYS)
    assert _line(text, "corrected").split()[1:] == [
        "0.081", "0.210", "0.190", "0.300", "0.610", "1.900", "2.300",
    ]
    assert _line(text, "uncorrected").split()[1:] == [
        "0.070", "0.200", "0.180", "0.290", "0.600", "1.800", "2.200",
    ]
    assert _line(text, "send lag").split()[2:] == [
        "0.001", "0.010", "0.005", "0.020", "0.050", "0.400", "0.500",
    ]
    # Columns are right-aligned: every row ends at the same width.
    table = [header, _line(text, "corrected"), _line(text, "uncorrected")]
    assert len({len(row) for row in table}) == 1

    # Status codes in numeric order, errors by descending count.
    assert _line(text, "status").split(None, 1)[1] == "200: 4,980   503: 10"
    assert _line(text, "errors").split(None, 1)[1] == "timeout: 7   connect_refused: 3"
    assert _line(text, "bytes").split(None, 1)[1] == "sent 512.0 KiB   received 1.2 MiB"


def test_render_text_closed() -> None:
    text = render_text(closed_report())
    _assert_width(text)
    lines = text.splitlines()
    assert lines[0].startswith("hammer: closed loop, 10 connections for 5.00s against ")
    assert "1,000.0/s" not in lines[0]
    assert lines[1] == "  10 connections, 2 threads, timeout 10.0s"
    rate = _line(text, "rate")
    assert "target -" in rate
    assert "achieved 12,345.6/s" in rate
    assert "throughput 12,340.0/s" in rate
    assert _line(text, "corrected").split()[1:] == ["-"] * 7
    assert _line(text, "send lag").split()[2:] == ["-"] * 7
    assert _line(text, "uncorrected").split()[1] == "0.500"
    assert _line(text, "errors").split() == ["errors", "-"]
    assert _line(text, "status").split(None, 1)[1] == "200: 61,700"


def test_render_text_closed_ignores_a_stray_target_rate() -> None:
    report = closed_report()
    report["rate"] = {"target_rps": 500.0, "achieved_rps": 1.0}
    text = render_text(report)
    assert "target -" in _line(text, "rate")
    assert "500.0/s" not in text


def test_render_text_open_without_target_rate() -> None:
    report = open_report()
    report["rate"] = {"target_rps": None, "achieved_rps": 10.0}
    text = render_text(report)
    assert text.splitlines()[0].startswith("hammer: open loop for 5.00s against ")
    assert "target -" in _line(text, "rate")


def test_render_text_saturated_warning_near_top() -> None:
    report = open_report()
    report["saturated"] = ["send-lag p99 2.1 ms above 1 ms", "event loop busy 97%"]
    text = render_text(report)
    _assert_width(text)
    lines = text.splitlines()
    warning = [i for i, line in enumerate(lines) if line.startswith("WARNING:")]
    assert warning == [2]
    assert lines[2] == (
        "WARNING: generator saturated: send-lag p99 2.1 ms above 1 ms; event loop busy 97%"
    )


def test_render_text_notes() -> None:
    report = open_report()
    report["notes"] = ["first note", "second note"]
    lines = render_text(report).splitlines()
    assert "note: first note" in lines
    assert "note: second note" in lines


def _row(t_s: int, target: float, sent: int, completed: int) -> dict[str, Any]:
    return {"t_s": t_s, "target_rps": target, "achieved_rps": float(sent),
            "throughput_rps": float(completed), "sent": sent, "completed": completed,
            "ok": completed, "http_error": 0, "errors": 0, "p50_ms": 0.2, "p90_ms": 0.3,
            "p99_ms": 0.5, "max_ms": 0.9}


@pytest.mark.parametrize("drain", [False, True])
def test_render_text_time_series_marks_the_drain(drain: bool) -> None:
    report = open_report()
    report["duration_s"] = 2.0
    report["rate"]["profile"] = "ramp:0->2000@2s"
    report["time_series"] = [_row(0, 500.0, 500, 500), _row(1, 1500.0, 1500, 1497)]
    if drain:
        report["time_series"].append(_row(2, 0.0, 0, 3))
    lines = render_text(report).splitlines()
    table = [line.split() for line in lines if line[:8].strip().isdigit()]
    assert [row[:4] for row in table] == [["0", "500.0/s", "500.0/s", "500.0/s"],
                                          ["1", "1,500.0/s", "1,500.0/s", "1,497.0/s"]] + (
        [["2", "0.0/s", "0.0/s", "3.0/s"]] if drain else [])
    marked = [line for line in lines if "the drain" in line]
    assert marked == (["  second 2 on: the drain (responses that came after the load "
                       "phase)"] if drain else [])


def test_render_text_long_values_stay_within_width() -> None:
    report = open_report()
    report["target"] = "http://example.com/" + "a" * 300 + "?q=1"
    report["saturated"] = ["reason " * 40, "another reason"]
    report["notes"] = ["word " * 60, "x" * 250]
    report["status"] = {str(code): 1_000_000 + code for code in range(200, 240)}
    report["errors"] = {f"error_kind_{i}_" + "z" * 120: i for i in range(10)}
    text = render_text(report)
    _assert_width(text)
    lines = text.splitlines()
    assert lines[0] == "hammer: open loop at 1,000.0/s for 5.00s (GET)"
    assert lines[1].startswith("  target http://example.com/aaa")
    assert lines[1].endswith("a?q=1")
    assert "..." in lines[1]
    assert sum(line.startswith("WARNING: generator saturated:") for line in lines) == 1
    assert "another reason" in text
    for code in range(200, 240):
        assert f"{code}: {1_000_000 + code:,}" in text


def test_render_text_tolerates_odd_numbers() -> None:
    report = open_report()
    report["latency_ms"] = _latency((float("nan"), float("inf"), 123_456.7, 12_345_678.9,
                                     1e12, 0, -1.5))
    report["duration_s"] = 125.0
    report["connections"] = 1
    report["threads"] = 1
    report["rate"] = {"target_rps": 0.5, "achieved_rps": float("nan")}
    text = render_text(report)
    _assert_width(text)
    assert text.splitlines()[0].startswith("hammer: open loop at 0.5/s for 2m05s against ")
    assert text.splitlines()[1].startswith("  1 connection, 1 thread,")
    assert _line(text, "corrected").split()[1:] == [
        "-", "-", "123456.7", "1.23e+07", "1e+12", "0.000", "-1.500",
    ]
    assert "achieved -" in _line(text, "rate")


# --------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("make", [open_report, closed_report])
def test_render_json_round_trip(make: Any) -> None:
    report = make()
    text = render_json(report)
    assert text.endswith("}\n")
    assert json.loads(text) == report
    # Producer's key order is kept (no sorting).
    assert list(json.loads(text)) == list(report)
    assert text.startswith('{\n  "version": 1,\n  "target": ')


def test_render_json_maps_non_finite_to_null() -> None:
    report = open_report()
    original = copy.deepcopy(report)
    report["latency_ms"]["max"] = float("nan")
    report["rate"]["achieved_rps"] = float("inf")
    report["throughput_rps"] = float("-inf")
    report["saturated"] = ("a", float("nan"))
    text = render_json(report)
    assert "NaN" not in text
    assert "Infinity" not in text
    loaded = json.loads(text)
    assert loaded["latency_ms"]["max"] is None
    assert loaded["rate"]["achieved_rps"] is None
    assert loaded["throughput_rps"] is None
    assert loaded["saturated"] == ["a", None]
    # The caller's dict is not modified.
    assert math.isnan(report["latency_ms"]["max"])
    assert loaded["latency_ms"]["min"] == original["latency_ms"]["min"]


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=20,
    )
)
def test_render_json_always_valid_json(value: Any) -> None:
    text = render_json({"value": value})
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-finite {name}"))


# --------------------------------------------------------------------------- atomic write


def test_write_json_atomic_success(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    report = open_report()
    write_json_atomic(report, str(path))
    assert path.read_text(encoding="utf-8") == render_json(report)
    assert json.loads(path.read_text(encoding="utf-8")) == report
    assert os.listdir(tmp_path) == ["report.json"]  # no temp file left behind
    # Not the 0600 of a temporary file: the usual umask-based permissions.
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_write_json_atomic_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old contents that are longer than the new report " * 100)
    report = closed_report()
    write_json_atomic(report, str(path))
    assert json.loads(path.read_text(encoding="utf-8")) == report
    assert os.listdir(tmp_path) == ["report.json"]


def test_write_json_atomic_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_json_atomic(open_report(), "out.json")
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8")) == open_report()
    assert os.listdir(tmp_path) == ["out.json"]


def test_write_json_atomic_stdout(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    report = open_report()
    write_json_atomic(report, "-")
    assert capsys.readouterr().out == render_json(report)
    assert os.listdir(tmp_path) == []  # no file named "-"


def test_write_json_atomic_inside_a_regular_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    path = afile / "x.json"
    with pytest.raises(OSError) as info:
        write_json_atomic(open_report(), str(path))
    assert str(info.value) == f"cannot write JSON report to {path}: Not a directory"
    assert "\n" not in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["afile"]
    assert afile.read_text() == "not a directory"


def test_write_json_atomic_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "x.json"
    with pytest.raises(OSError, match=r"^cannot write JSON report to .*x\.json: ") as info:
        write_json_atomic(open_report(), str(path))
    assert str(info.value).endswith(": No such file or directory")
    assert info.value.errno is not None
    assert os.listdir(tmp_path) == []


def test_write_json_atomic_onto_a_directory(tmp_path: Path) -> None:
    target = tmp_path / "adir"
    target.mkdir()
    with pytest.raises(OSError, match=r"^cannot write JSON report to .*adir: ") as info:
        write_json_atomic(open_report(), str(target))
    assert "\n" not in str(info.value)
    # The temp file created next to it was removed; the directory is untouched.
    assert os.listdir(tmp_path) == ["adir"]
    assert os.listdir(target) == []


def test_write_json_atomic_failure_during_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "report.json"
    path.write_text("previous")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError) as info:
        write_json_atomic(open_report(), str(path))
    assert str(info.value) == f"cannot write JSON report to {path}: No space left on device"
    assert info.value.errno == 28
    assert os.listdir(tmp_path) == ["report.json"]
    assert path.read_text() == "previous"  # the old report is intact


def test_write_json_atomic_unserialisable_report_touches_nothing(tmp_path: Path) -> None:
    report = open_report()
    report["notes"] = [object()]
    with pytest.raises(TypeError):
        write_json_atomic(report, str(tmp_path / "r.json"))
    assert os.listdir(tmp_path) == []


def test_tls_line_when_https() -> None:
    report = open_report()
    report["tls"] = {"verified": False, "handshakes": 12, "resumed": 9,
                     "handshake_ms": {"p50": 0.5, "p99": 2.0}}
    report["connect_ms"] = {"p50": 0.05}
    text = render_text(report)
    assert "12 handshakes (9 resumed)" in text
    assert "NOT verified" in text
    assert "handshakes" not in render_text(open_report())
