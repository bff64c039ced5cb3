"""Many targets, connection control and Unix sockets, counted by nginx's access log."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import pytest

import hammer
from accounting import check_invariant


def write_targets(path: Path, url: str, paths: list[str]) -> str:
    path.write_text("".join(f"GET {url.rstrip('/')}{p}\nX-Path: {p}\n\n" for p in paths))
    return str(path)


def test_targets_round_robin_with_breakdown(nginx: Any, tmp_path: Path) -> None:
    server = nginx(extra_locations="location = /missing { return 404; }")
    targets = write_targets(tmp_path / "t", server.url, ["/a", "/b", "/missing"])
    report = hammer.run(None, targets=targets, rate=300, duration="1s", connections=8)
    check_invariant(report)
    assert report.counts.scheduled == 300
    server.requests_served(wait_for=300)
    served = collections.Counter(e.path for e in server.access_log_entries())
    assert served == {"/a": 100, "/b": 100, "/missing": 100}
    assert [(t["url"].rsplit("/", 1)[1], t["sent"], t["ok"], t["http_error"])
            for t in report.targets] == [("a", 100, 100, 0), ("b", 100, 100, 0),
                                         ("missing", 100, 0, 100)]
    assert report.targets[2]["status"] == {"404": 100}
    assert report.targets[0]["latency_ms"]["p50"] is not None
    assert report.to_dict()["targets"] == report.targets
    assert report.to_dict()["target"] == f"http://127.0.0.1:{server.port} (3 targets)"


def test_a_breakdown_past_its_cap_says_so_and_the_text_shows_the_most_sent(
        nginx: Any, tmp_path: Path) -> None:
    from hammer import _core
    from hammer.reporters import TEXT_TARGET_ROWS, render_text

    server = nginx(extra_locations="location /p { return 204; }")
    n = _core.TARGET_BREAKDOWN_ROWS + 76
    targets = write_targets(tmp_path / "t", server.url, [f"/p{i}" for i in range(n)])
    report = hammer.run(None, targets=targets, rate=4000, requests=n + 100, connections=32)
    check_invariant(report)
    assert report.counts.ok == n + 100                    # round-robin: p0..p99 twice
    assert server.requests_served(wait_for=n + 100) == n + 100
    assert len(report.targets) == _core.TARGET_BREAKDOWN_ROWS
    assert [t["sent"] for t in report.targets[98:102]] == [2, 2, 1, 1]
    assert (f"the per-target breakdown holds the first {_core.TARGET_BREAKDOWN_ROWS:,} of "
            f"{n:,} targets; the totals count every one") in report.notes
    text = render_text(report.to_dict())
    assert f"the {TEXT_TARGET_ROWS} most sent of {_core.TARGET_BREAKDOWN_ROWS:,} targets" in text
    rows = [line.split() for line in text.splitlines() if line.startswith("  GET http")]
    assert len(rows) == TEXT_TARGET_ROWS
    assert all(row[2] == "2" for row in rows)           # the sent column: p0..p19


def test_random_order_is_seeded(nginx: Any, tmp_path: Path) -> None:
    server = nginx()
    targets = write_targets(tmp_path / "t", server.url, ["/a", "/b", "/c", "/d"])
    counts = []
    for seed in (7, 7):
        report = hammer.run(None, targets=targets, random_order=True, seed=seed,
                            connections=1, requests=400)
        check_invariant(report)
        counts.append([t["sent"] for t in report.targets])
    assert counts[0] == counts[1]          # the same seed, the same choices
    assert sum(counts[0]) == 400
    assert all(40 < n < 160 for n in counts[0])  # random, not round-robin nor one target
    assert counts[0] != [100, 100, 100, 100]


def time_wait_sockets(port: int) -> tuple[int, int]:
    """(client side, server side) sockets in TIME_WAIT for connections to/from port."""
    out = subprocess.run(["ss", "-Htan", "state", "time-wait"], capture_output=True,
                         text=True, check=True).stdout
    client = server = 0
    for line in out.splitlines():
        fields = line.split()
        local, peer = fields[-2], fields[-1]
        if peer.endswith(f":{port}"):
            client += 1
        elif local.endswith(f":{port}"):
            server += 1
    return client, server


def test_disable_keepalive_new_connection_per_request_server_closes_first(nginx: Any
                                                                          ) -> None:
    server = nginx()
    # a port can be reused from an earlier test whose sockets linger in TIME_WAIT
    client_tw_before, _ = time_wait_sockets(server.port)
    report = hammer.run(server.url, rate=400, duration="500ms", connections=16,
                        disable_keepalive=True)
    check_invariant(report)
    assert report.counts.ok == 200
    assert report.errors == {}
    server.requests_served(wait_for=200)
    entries = server.access_log_entries()
    assert len({e.connection for e in entries}) == 200  # one connection per request
    assert all(e.connection_requests == 1 for e in entries)
    client_tw, server_tw = time_wait_sockets(server.port)
    assert client_tw - client_tw_before <= 0  # the server closed first, every time
    assert server_tw >= 200


def test_max_requests_per_connection(nginx: Any) -> None:
    server = nginx()
    client_tw_before, _ = time_wait_sockets(server.port)
    report = hammer.run(server.url, connections=4, requests=1000, max_requests_per_conn=10)
    check_invariant(report)
    assert report.counts.ok == 1000
    server.requests_served(wait_for=1000)
    per_conn = collections.Counter(e.connection for e in server.access_log_entries())
    # every connection carries 10, but the last few, cut short when the run ends
    assert max(per_conn.values()) == 10
    assert sum(1 for n in per_conn.values() if n < 10) <= 4
    assert len(per_conn) <= 100 + 4
    # only the connections still open when the run ended were closed by hammer
    assert time_wait_sockets(server.port)[0] - client_tw_before <= 8  # of 100 connections


def test_unix_socket_target(nginx: Any) -> None:
    server = nginx()
    report = hammer.run("http://localhost/via-unix", unix_socket=server.unix_socket,
                        connections=2, requests=50)
    check_invariant(report)
    assert report.counts.ok == 50
    server.requests_served(wait_for=50)
    assert {e.path for e in server.access_log_entries()} == {"/via-unix"}


def test_connect_timeout_is_its_own_class() -> None:
    # a listener whose accept queue is full: further SYNs are dropped, connects hang
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            fillers.append(s)
        report = hammer.run(f"http://127.0.0.1:{port}/", connections=2, requests=2,
                            connect_timeout="300ms", timeout="5s")
    finally:
        for s in fillers:
            s.close()
        listener.close()
    check_invariant(report)
    assert report.errors == {"connect_timeout": 2}


def test_ramp_profile_counts_and_time_series(nginx: Any) -> None:
    server = nginx()
    report = hammer.run(server.url, rate="ramp:0->2000@2s,2000@1s", connections=32)
    check_invariant(report)
    assert report.counts.scheduled == report.counts.ok == 2000 + 2000
    assert server.requests_served(wait_for=4000) == 4000
    assert report.duration_s == 3.0  # not longer when the last wake-up came late
    series = report.to_dict()["time_series"]
    # a response later than the load phase (a host stall) is counted in a drain second
    series, drain = series[:3], series[3:]
    assert [row["t_s"] for row in series] == [0, 1, 2]
    assert [row["target_rps"] for row in series] == [500.0, 1500.0, 2000.0]
    assert all(row["sent"] == row["target_rps"] == 0 for row in drain)
    assert sum(row["completed"] for row in series + drain) == 4000
    for row in series:
        assert abs(row["achieved_rps"] - row["target_rps"]) <= 0.05 * row["target_rps"] + 5
        assert row["errors"] == 0
        assert row["p50_ms"] is not None
    assert sum(round(row["achieved_rps"]) for row in series) == 4000


def test_poisson_arrivals_are_counted_exactly(nginx: Any) -> None:
    server = nginx()
    report = hammer.run(server.url, rate=500, arrivals="poisson", seed=5, duration="2s",
                        connections=32)
    check_invariant(report)
    n = report.counts.scheduled
    assert 850 < n < 1150  # about 1,000 arrivals in 2 s at 500/s
    assert report.counts.ok == n
    assert server.requests_served(wait_for=n) == n
    again = hammer.run(server.url, rate=500, arrivals="poisson", seed=5, duration="2s",
                       connections=32)
    assert again.counts.scheduled == n  # the same seed, the same schedule


def test_churn_past_the_port_budget_is_warned(nginx: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from hammer import limits

    real = limits.read_host_limits()
    tiny = dataclasses.replace(real, port_low=60000, port_high=60599, tcp_tw_reuse="0")
    monkeypatch.setattr(limits, "read_host_limits", lambda: tiny)
    server = nginx()
    report = hammer.run(server.url, rate=200, duration="500ms", disable_keepalive=True)
    check_invariant(report)
    assert report.counts.ok == 100
    assert any("exceeds the 10 new connections/s" in note for note in report.notes)
