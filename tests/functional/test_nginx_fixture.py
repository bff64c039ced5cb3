"""The nginx fixture counts exactly what it was sent (it is a reference for other tests)."""

from __future__ import annotations

import http.client

from servers import LOCALHOST, SIZE_64K


def test_nginx_counts_exactly_n_requests(nginx):
    server = nginx()
    n = 25
    conn = http.client.HTTPConnection(LOCALHOST, server.port, timeout=5)
    try:
        for _ in range(n):
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.read() == b"hello\n"
    finally:
        conn.close()
    # Three more requests, one connection each.
    for path in ("/", "/64k", "/"):
        conn = http.client.HTTPConnection(LOCALHOST, server.port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200
            if path == "/64k":
                assert len(body) == SIZE_64K
        finally:
            conn.close()
    total = n + 3
    assert server.requests_served(wait_for=total) == total
    assert server.connections_accepted() == 4
    assert server.connections_accepted() == 4  # status queries are not counted
    assert server.stub_status()["requests"] == total
    assert server.connections_in_log() == 4
    entries = server.access_log_entries()
    assert [e.connection_requests for e in entries[:n]] == list(range(1, n + 1))
    assert {e.status for e in entries} == {200}
    assert len(server.access_log_lines()) == total


def test_nginx_fresh_instance_counts_zero(nginx):
    server = nginx()
    assert server.requests_served() == 0
    assert server.connections_accepted() == 0
    assert server.url == f"http://127.0.0.1:{server.port}/"
