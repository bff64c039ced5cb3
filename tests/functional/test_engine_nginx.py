"""hammer against nginx: nginx's access log is the count hammer's report must match."""

from __future__ import annotations

from typing import Any

import hammer
from accounting import check_invariant


def test_open_loop_rate_times_duration(nginx: Any) -> None:
    server = nginx()
    # 64 connections: a host stall of tens of ms at the end still finds one free for
    # each slot that fell due in it (with a few, those slots are rightly unsent)
    report = hammer.run(server.url, rate=2000, duration="2s", connections=64)
    check_invariant(report)
    assert report.counts.scheduled == report.counts.sent == report.counts.ok == 4000
    assert server.requests_served(wait_for=4000) == 4000
    assert report.status == {"200": 4000}
    assert report.counts.unsent == 0


def test_closed_loop_connections_and_count(nginx: Any) -> None:
    server = nginx()
    report = hammer.run(server.url, connections=12, threads=2, duration="1s")
    check_invariant(report)
    assert report.counts.error == 0
    served = server.requests_served(wait_for=report.counts.completed)
    assert served == report.counts.sent == report.counts.completed > 1000
    assert server.connections_in_log() == 12
    assert server.connections_accepted() == 12


def test_64k_bodies_closed_loop(nginx: Any) -> None:
    server = nginx()
    report = hammer.run(server.url + "64k", connections=8, requests=500)
    check_invariant(report)
    assert report.counts.ok == 500
    assert server.requests_served(wait_for=500) == 500
    entries = server.access_log_entries()
    assert sum(e.bytes_sent for e in entries) == report.bytes_received
    assert sum(e.request_length for e in entries) == report.bytes_sent


def test_not_found_is_an_http_error(nginx: Any) -> None:
    server = nginx(extra_locations="location = /missing { return 404; }")
    report = hammer.run(server.url + "missing", rate=500, duration="400ms")
    check_invariant(report)
    assert report.status == {"404": 200}
    assert report.counts.http_error == 200
    assert server.requests_served(wait_for=200) == 200
