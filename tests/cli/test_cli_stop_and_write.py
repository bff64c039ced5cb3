"""Stopping (real signals on real runs), writing results, and the saturation exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hammer import exitcodes

GRACE_S = 1.0  # runner.STOP_GRACE_S


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "hammer", "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def balanced(report: dict[str, Any]) -> bool:
    c = report["counts"]
    return (c["scheduled"] == c["ok"] + c["http_error"] + c["error"] + c["unsent"]
            and c["completed"] == c["ok"] + c["http_error"])


@pytest.mark.parametrize(("signum", "name", "code"), [
    (signal.SIGINT, "SIGINT", exitcodes.INTERRUPTED),
    (signal.SIGTERM, "SIGTERM", exitcodes.TERMINATED),
])
def test_signal_writes_the_partial_report(target_server: Any, tmp_path: Path, signum: int,
                                          name: str, code: int) -> None:
    server = target_server()
    out = tmp_path / "r.json"
    proc = start(server.url, "-r", "200", "-d", "20s", "--json", str(out))
    time.sleep(1.5)
    sent_at = time.monotonic()
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=10)
    stopped_in = time.monotonic() - sent_at
    assert proc.returncode == code, stderr
    assert stopped_in < 1.0 + GRACE_S
    report = json.loads(out.read_text())
    assert report["interrupted"] == name
    assert balanced(report)
    assert 150 <= report["counts"]["scheduled"] <= 400  # ~1.5 s of a 20 s run at 200/s
    assert server.wait_stats(requests=report["counts"]["sent"])["requests"] == \
        report["counts"]["sent"]
    assert "scheduled" in stdout  # the text report too
    assert "Traceback" not in stderr


def test_second_signal_cancels_in_flight_at_once(target_server: Any, tmp_path: Path) -> None:
    server = target_server(delay="5s")  # nothing in flight finishes within the grace
    out = tmp_path / "r.json"
    proc = start(server.url, "-r", "50", "-d", "20s", "--json", str(out), "-q")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    second_at = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert time.monotonic() - second_at < 0.5
    assert proc.returncode == exitcodes.INTERRUPTED
    report = json.loads(out.read_text())
    assert balanced(report)
    assert report["errors"].get("cancelled", 0) > 0
    assert report["counts"]["ok"] == 0


def test_grace_then_cancel(target_server: Any, tmp_path: Path) -> None:
    server = target_server(delay="3s")
    out = tmp_path / "r.json"
    proc = start(server.url, "-r", "20", "-d", "20s", "--json", str(out), "-q")
    time.sleep(1.0)
    sent_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    elapsed = time.monotonic() - sent_at
    assert GRACE_S - 0.1 < elapsed < GRACE_S + 1.0
    report = json.loads(out.read_text())
    assert balanced(report)
    assert report["errors"].get("cancelled", 0) == report["counts"]["sent"]


def test_unwritable_json_path_keeps_the_text_report(target_server: Any,
                                                     tmp_path: Path) -> None:
    server = target_server()
    target = tmp_path / "missing-dir" / "r.json"
    proc = subprocess.run([sys.executable, "-m", "hammer", "run", server.url, "-n", "20",
                           "-c", "2", "--json", str(target)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == exitcodes.FAILED
    assert "scheduled 20" in proc.stdout  # the measured run is not lost
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hammer: error: cannot write JSON")
    assert not target.parent.exists()


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Any:
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs",
                             str(mount_point)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_full_disk_leaves_no_truncated_file(target_server: Any, tiny_tmpfs: Path) -> None:
    server = target_server()
    # fill the filesystem: no room is left for the report
    fd = os.open(tiny_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"x" * 512) == 512:
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    target = tiny_tmpfs / "r.json"
    proc = subprocess.run([sys.executable, "-m", "hammer", "run", server.url, "-n", "20",
                           "-c", "2", "--json", str(target)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == exitcodes.FAILED, proc.stderr
    assert "scheduled 20" in proc.stdout
    assert "No space left" in proc.stderr
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler"]


def test_saturated_generator_says_so_and_exits_3(target_server: Any, tmp_path: Path) -> None:
    server = target_server()
    out = tmp_path / "r.json"
    # far beyond what 4 connections to a Python server can carry on this machine
    proc = subprocess.run([sys.executable, "-m", "hammer", "run", server.url, "-r", "1M",
                           "-d", "1s", "-c", "4", "--timeout", "500ms", "--json", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == exitcodes.SATURATED, proc.stderr
    assert "WARNING: generator saturated" in proc.stdout
    report = json.loads(out.read_text())
    assert report["saturated"]
    assert report["counts"]["unsent"] > 0
    assert balanced(report)
    assert server.wait_stats(requests=report["counts"]["sent"])["requests"] == \
        report["counts"]["sent"]
