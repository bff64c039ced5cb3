"""`hammer limits URL --probe`: a bounded ramp of real load that stops at the first limit,
checked against the built-in server's own counts."""

from __future__ import annotations

import json
import resource
import subprocess
from typing import Any

from hammer import exitcodes
from servers import hammer_command

TIMEOUT = 120


def probe(*args: str, nofile_hard: int | None = None) -> subprocess.CompletedProcess[str]:
    def lower_limit() -> None:
        if nofile_hard is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile_hard, nofile_hard))

    return subprocess.run(hammer_command("limits", *args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False,
                          preexec_fn=lower_limit)


def steps_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_open_loop_ramp_stops_at_the_maximum_asked_with_exact_counts(target_server) -> None:
    server = target_server()
    # a host stall can make a step break on hammer's own send lag (rightly): run again
    for _attempt in range(3):
        server.reset()
        proc = probe(server.url, "--probe", "-r", "200", "--factor", "2", "--step", "500ms",
                     "--max", "800", "--json", "-")
        if proc.returncode == exitcodes.OK or "broke at" not in proc.stderr \
                or "hammer's own schedule" not in proc.stderr:
            break
    assert proc.returncode == exitcodes.OK, proc.stderr
    result = steps_of(proc)
    assert [s["asked"] for s in result["steps"]] == [200, 400, 800]
    assert [s["scheduled"] for s in result["steps"]] == [100, 200, 400]
    assert all(s["broke"] is None for s in result["steps"])
    assert result["knee"]["asked"] == 800
    assert result["ended"] == "reached the maximum asked (800.0/s) without a limit breaking"
    assert server.wait_stats(requests=700)["responses"] == {"200": 700}
    assert "knee: 800.0/s" in proc.stderr


def test_server_errors_break_the_first_step(target_server) -> None:
    server = target_server(status=503)
    proc = probe(server.url, "--probe", "-r", "100", "--step", "500ms", "--json", "-")
    assert proc.returncode == exitcodes.FAILED
    result = steps_of(proc)
    assert len(result["steps"]) == 1
    assert result["knee"] is None
    assert result["broke"] == "the server: 50 HTTP error statuses (503: 50)"
    assert result["fix"] == "the server refuses load past this point"


def test_closed_loop_ramp_stops_at_the_open_files_limit(target_server) -> None:
    # 20 ms a response: throughput doubles with the connections, so no plateau comes first
    server = target_server(delay="20ms")
    proc = probe(server.url, "--probe", "--closed", "--step", "500ms", "--json", "-",
                 nofile_hard=80)
    assert proc.returncode == exitcodes.OK, proc.stderr
    result = steps_of(proc)
    asked = [s["asked"] for s in result["steps"]]
    assert asked == [1, 2, 4, 8, 16, 32]
    assert result["knee"]["connections"] == 16
    assert result["broke"].startswith("the host: 32 connections need 96 open files")
    assert "raise it" in result["fix"]
    ran = sum(s["scheduled"] for s in result["steps"])
    assert server.wait_stats(requests=ran)["requests"] == ran


def test_probe_usage_errors() -> None:
    proc = probe("--probe")
    assert proc.returncode == exitcodes.USAGE
    assert proc.stderr.strip() == "hammer: error: --probe needs a URL"
    proc = probe("http://127.0.0.1:9/", "--probe", "--step", "soon")
    assert proc.returncode == exitcodes.USAGE
    assert proc.stderr.startswith("hammer: error: ")
