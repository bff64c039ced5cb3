"""Real runs through the command line (`python -m hammer run ...` as a subprocess, since
the engine uses threads and signal handlers), checked against the JSON contract and
against the counts of the built-in target server (`target_server` fixture).

Every run is short (at most 1 s of load, or a small -n) and goes to 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hammer import exitcodes
from servers import LOCALHOST, free_port, hammer_command

TIMEOUT = 60
LATENCY_KEYS = {"min", "mean", "p50", "p90", "p99", "p99.9", "max"}
COUNT_KEYS = {"scheduled", "sent", "completed", "ok", "http_error", "error", "unsent", "late"}
TOP_KEYS = {
    "version", "target", "mode", "duration_s", "rate", "throughput_rps", "counts", "status",
    "errors", "latency_ms", "latency_uncorrected_ms", "send_lag_ms", "bytes", "connections",
    "threads",
}
TEXT_LABELS = (
    "requests", "scheduled", "sent", "completed", "late", "unsent",
    "outcome", "ok", "http errors", "errors",
    "rate", "target", "achieved", "throughput",
    "latency (ms)", "corrected", "uncorrected", "send lag",
    "min", "mean", "p50", "p90", "p99", "p99.9", "max",
    "status", "bytes",
)


def hammer(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        hammer_command(*args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=TIMEOUT, check=False, cwd=cwd,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """A completed run: exit 0, or 3 when the generator fell behind its schedule (on a
    virtual machine, a stolen CPU can push send-lag p99 past 1 ms at any rate); then the
    report must say so."""
    assert proc.returncode in (exitcodes.OK, exitcodes.SATURATED), (
        f"exit {proc.returncode}; stdout={proc.stdout!r} stderr={proc.stderr!r}"
    )
    if proc.returncode == exitcodes.SATURATED and "-q" not in proc.args:
        assert "generator saturated" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def check_contract(report: dict[str, Any]) -> None:
    """The keys DESIGN promises, with the types a consumer relies on."""
    assert set(report) >= TOP_KEYS, TOP_KEYS - set(report)
    assert isinstance(report["version"], int)
    assert isinstance(report["target"], str)
    assert report["mode"] in ("open", "closed")
    assert isinstance(report["duration_s"], float | int)
    assert {"target_rps", "achieved_rps"} <= set(report["rate"])
    assert isinstance(report["throughput_rps"], float | int)
    assert set(report["counts"]) >= COUNT_KEYS
    for key in COUNT_KEYS:
        value = report["counts"][key]
        assert isinstance(value, int) and value >= 0, (key, value)
    assert isinstance(report["status"], dict)
    assert isinstance(report["errors"], dict)
    for section in ("latency_ms", "latency_uncorrected_ms", "send_lag_ms"):
        assert set(report[section]) >= LATENCY_KEYS, (section, report[section])
    assert {"sent", "received"} <= set(report["bytes"])
    assert isinstance(report["connections"], int)
    assert isinstance(report["threads"], int)
    counts = report["counts"]
    assert counts["scheduled"] == (
        counts["ok"] + counts["http_error"] + counts["error"] + counts["unsent"]
    ), counts
    assert counts["completed"] == counts["ok"] + counts["http_error"], counts
    assert sum(report["status"].values()) == counts["completed"], report["status"]
    assert sum(report["errors"].values()) == counts["error"], report["errors"]


# --------------------------------------------------------------------------- open loop


def test_open_loop_writes_the_json_contract(target_server, tmp_path: Path) -> None:
    server = target_server()
    path = tmp_path / "report.json"
    proc = ok(hammer("run", server.url, "-r", "200", "-d", "1s", "--json", str(path), "-q"))
    assert proc.stdout == ""  # -q and the JSON went to a file
    assert proc.stderr == ""
    assert path.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name != "report.json"]  # no temp left
    report = json.loads(path.read_text())
    check_contract(report)
    assert report["target"] == server.url
    assert report["mode"] == "open"
    assert report["rate"]["target_rps"] == 200.0
    assert report["threads"] == 1
    counts = report["counts"]
    assert counts["scheduled"] == 200  # 200/s x 1 s, exactly
    assert counts["sent"] == counts["completed"] == counts["ok"] == 200, counts
    assert report["status"] == {"200": 200}
    assert report["errors"] == {}
    assert 0.9 <= report["duration_s"] <= 2.0
    stats = server.wait_stats(requests=counts["sent"])
    assert stats["requests"] == counts["sent"]
    assert stats["responses"] == {"200": 200}
    assert stats["bytes_received"] == report["bytes"]["sent"]


def test_json_to_stdout_and_text_to_stderr(target_server) -> None:
    server = target_server()
    proc = ok(hammer("run", server.url, "-r", "100", "-d", "200ms", "--json", "-"))
    report = json.loads(proc.stdout)  # stdout holds the JSON and nothing else
    check_contract(report)
    assert report["counts"]["scheduled"] == 20
    assert report["counts"]["ok"] == 20
    assert "hammer: open loop at 100.0/s" in proc.stderr
    assert "latency (ms)" in proc.stderr
    assert "{" not in proc.stderr
    assert server.wait_stats(requests=20)["requests"] == 20


# --------------------------------------------------------------------------- closed loop


def test_closed_loop_exact_requests_and_connections(target_server) -> None:
    server = target_server()
    proc = ok(hammer("run", server.url, "-c", "3", "-n", "50", "-q", "--json", "-"))
    report = json.loads(proc.stdout)
    check_contract(report)
    assert report["mode"] == "closed"
    assert report["connections"] == 3
    assert report["rate"]["target_rps"] is None
    counts = report["counts"]
    assert counts["scheduled"] == counts["sent"] == counts["ok"] == 50, counts
    stats = server.wait_stats(requests=50, connections_opened=3)
    assert stats["requests"] == 50
    assert stats["connections_opened"] == 3
    assert stats["bytes_received"] == report["bytes"]["sent"]


# --------------------------------------------------------------------------- text report


def test_text_report_has_the_key_labels(target_server) -> None:
    server = target_server()
    proc = ok(hammer("run", server.url, "-c", "2", "-n", "20"))
    assert proc.stderr == ""  # not a terminal: no progress line
    text = proc.stdout
    assert text.startswith("hammer: closed loop, 2 connections for ")
    assert f"against {server.url} (GET)" in text
    for label in TEXT_LABELS:
        assert label in text, f"{label!r} missing from:\n{text}"
    assert "scheduled 20" in text
    assert "ok 20" in text
    assert "200: 20" in text
    assert all(len(line) <= 100 for line in text.splitlines())
    assert server.wait_stats(requests=20)["requests"] == 20


def test_quiet_without_json_prints_nothing(target_server) -> None:
    server = target_server()
    proc = ok(hammer("run", server.url, "-c", "1", "-n", "5", "-q"))
    assert proc.stdout == ""
    assert proc.stderr == ""
    assert server.wait_stats(requests=5)["requests"] == 5


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("json_to_stdout", [False, True])
def test_secrets_never_shown(target_server, tmp_path: Path, json_to_stdout: bool) -> None:
    server = target_server()
    url = f"http://user:pw@{LOCALHOST}:{server.port}/"
    json_arg = "-" if json_to_stdout else str(tmp_path / "report.json")
    proc = ok(hammer(
        "run", url, "-c", "1", "-n", "5", "-H", "Authorization: Bearer secret123",
        "--json", json_arg,
    ))
    json_text = proc.stdout if json_to_stdout else (tmp_path / "report.json").read_text()
    outputs = {"stdout": proc.stdout, "stderr": proc.stderr, "json": json_text}
    basic = base64.b64encode(b"user:pw").decode()
    for where, text in outputs.items():
        for secret in ("secret123", "Bearer", "user:pw", "pw@", "user@", basic):
            assert secret not in text, f"{secret!r} shown in {where}:\n{text}"
    report = json.loads(json_text)
    assert report["target"] == f"http://{LOCALHOST}:{server.port}/"
    assert report["counts"]["ok"] == 5
    assert server.wait_stats(requests=5)["requests"] == 5


# --------------------------------------------------------------------------- body


def test_body_file_post_bytes_match_the_server(target_server, tmp_path: Path) -> None:
    server = target_server()
    body = tmp_path / "body.bin"
    body.write_bytes(bytes(range(256)) * 3 + b"z" * 232)
    assert body.stat().st_size == 1000
    proc = ok(hammer(
        "run", server.url, "-m", "POST", "--body-file", str(body), "-c", "2", "-n", "20",
        "-q", "--json", "-",
    ))
    report = json.loads(proc.stdout)
    check_contract(report)
    assert report["method"] == "POST"
    assert report["counts"]["ok"] == 20
    sent = report["bytes"]["sent"]
    assert sent > 20 * 1000
    assert sent % 20 == 0  # every request is the same bytes
    stats = server.wait_stats(requests=20, bytes_received=sent)
    assert stats["requests"] == 20
    assert stats["bytes_received"] == sent


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("args", "n"),
    [
        (["-r", "100", "-d", "200ms"], 20),
        (["-c", "2", "-n", "10"], 10),
    ],
    ids=["open", "closed"],
)
def test_connection_refused_is_counted_not_fatal(args: list[str], n: int) -> None:
    url = f"http://{LOCALHOST}:{free_port()}/"
    proc = ok(hammer("run", url, *args, "-q", "--json", "-"))
    report = json.loads(proc.stdout)
    check_contract(report)
    counts = report["counts"]
    assert counts["scheduled"] == n
    assert counts["error"] == counts["scheduled"], counts
    assert counts["ok"] == counts["completed"] == 0
    assert report["errors"] == {"connect_refused": n}
    assert report["status"] == {}


# --------------------------------------------------------------------------- demo


def test_demo_without_url(tmp_path: Path) -> None:
    proc = ok(hammer("run", "-d", "500ms", "-q", "--json", "-", cwd=tmp_path))
    report = json.loads(proc.stdout)
    check_contract(report)
    assert report["target"].startswith(f"http://{LOCALHOST}:")
    assert report["mode"] == "open"
    assert report["rate"]["target_rps"] == 1000.0
    counts = report["counts"]
    assert counts["ok"] == counts["scheduled"] == 500, counts  # 1000/s x 0.5 s
    assert report["target"] in proc.stderr  # the banner names the built-in target
    assert list(tmp_path.iterdir()) == []


def test_demo_with_connections_and_no_rate_is_a_closed_loop(tmp_path: Path) -> None:
    proc = ok(hammer("run", "-c", "4", "-d", "500ms", "-q", "--json", "-", cwd=tmp_path))
    report = json.loads(proc.stdout)
    check_contract(report)
    assert report["mode"] == "closed" and report["connections"] == 4
    assert report["counts"]["ok"] == report["counts"]["scheduled"] > 500
    assert "closed loop on 4 connections for 500ms" in proc.stderr


# --------------------------------------------------------------------------- help


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag: str) -> None:
    proc = ok(hammer(flag))
    assert proc.stderr == ""
    assert "Usage:" in proc.stdout
    assert "run" in proc.stdout
    assert "serve" in proc.stdout


@pytest.mark.parametrize("command", ["run", "serve"])
def test_command_help(command: str) -> None:
    proc = ok(hammer(command, "--help"))
    assert proc.stderr == ""
    assert "Usage:" in proc.stdout
    assert "--help" in proc.stdout


def test_version() -> None:
    proc = ok(hammer("--version"))
    assert proc.stderr == ""
    assert proc.stdout.startswith("hammer, version ")
    assert proc.stdout.strip().split()[-1][0].isdigit()
