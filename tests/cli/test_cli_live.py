"""The live view: on a terminal (a real pty here) at most twice a second, off with -q,
without a terminal, or when an output goes to stdout; --live / --no-live force it."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from typing import Any

import pytest

from hammer import exitcodes
from hammer.live import LiveView

FRAME = b"\r\x1b[2K  ["      # the first line of each frame: the progress bar


def run_on_pty(*args: str) -> tuple[int, bytes, str]:
    """`hammer run ARGS` with stderr on a pty: (exit code, what the terminal got, stdout)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "hammer", "run", *args],
                            stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    terminal = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:       # EIO: the process closed its end
            break
        if not chunk:
            break
        terminal += chunk
    os.close(leader)
    stdout, _ = proc.communicate(timeout=60)
    return proc.returncode, terminal, stdout.decode()


def test_live_view_on_a_terminal(target_server: Any) -> None:
    server = target_server()
    code, terminal, stdout = run_on_pty(server.url, "-r", "400", "-d", "3s")
    # (3, saturated, is the verdict of a noisy host, not of the view)
    assert code in (exitcodes.OK, exitcodes.SATURATED), terminal.decode(errors="replace")
    frames = terminal.count(FRAME)
    assert 3 <= frames <= 2 * 3 + 1          # at most two a second
    text = terminal.decode()
    assert "rate  target 400.0/s  achieved 400.0/s" in text
    assert "last second: p50 " in text and "in flight " in text
    assert "3.0s of 3.0s, 0.0s left" in text or "2.5s of 3.0s" in text
    # erased at the end: the terminal ends with the clearing of the view's three lines
    assert terminal.endswith(b"\r\x1b[2K" + b"\x1b[1A\r\x1b[2K" * 2)
    assert "scheduled 1,200  sent 1,200" in stdout
    assert server.wait_stats(requests=1200)["responses"] == {"200": 1200}


@pytest.mark.parametrize("extra", [["-q"], ["--json", "-"], ["--no-live"]])
def test_live_view_off(target_server: Any, extra: list[str]) -> None:
    server = target_server()
    code, terminal, stdout = run_on_pty(server.url, "-r", "200", "-d", "1s", *extra)
    assert code in (exitcodes.OK, exitcodes.SATURATED)
    assert FRAME not in terminal
    if "--json" in extra:
        assert json.loads(stdout)["counts"]["ok"] == 200


def test_live_view_needs_a_terminal_unless_forced(target_server: Any) -> None:
    server = target_server()
    plain = subprocess.run([sys.executable, "-m", "hammer", "run", server.url, "-r", "200",
                            "-d", "1s"], capture_output=True, timeout=60)
    assert plain.returncode in (exitcodes.OK, exitcodes.SATURATED)
    assert FRAME not in plain.stderr
    forced = subprocess.run([sys.executable, "-m", "hammer", "run", server.url, "-r", "200",
                             "-d", "1s", "--live"], capture_output=True, timeout=60)
    assert forced.returncode in (exitcodes.OK, exitcodes.SATURATED)
    assert 1 <= forced.stderr.count(FRAME) <= 3


def test_live_view_of_a_request_budget() -> None:
    config = __import__("hammer").make_config("http://127.0.0.1:9/", requests=1000,
                                               connections=4)
    view = LiveView(config, sys.stderr)
    lines = view.lines({"elapsed_s": 1.2, "scheduled": 250, "sent": 250, "completed": 240,
                        "ok": 230, "http_error": 10, "errors": 0, "in_flight": 10,
                        "second": 0, "last_second": {"sent": 200, "p50_ms": 0.5,
                                                     "p99_ms": 2.25}})
    assert lines == [
        "  [########......................]  25%  1.2s, 250 of 1,000 requests",
        "  rate  target -  achieved 200.0/s   in flight 10   last second: p50 0.500 ms  "
        "p99 2.250 ms",
        "  ok 230  http errors 10  errors 0  of 250 scheduled",
    ]
