"""The built-in target server (`hammer serve`): its counts are the truth other tests use."""

from __future__ import annotations

import http.client
import re
import signal
import socket
import subprocess
import time

import h11
import pytest

from servers import LOCALHOST, hammer_command

REQ = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def connect(port: int) -> socket.socket:
    sock = socket.create_connection((LOCALHOST, port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _h11_send_done(conn: h11.Connection) -> None:
    # We write raw bytes ourselves; tell h11 the client side finished each request.
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())


def read_responses(sock: socket.socket, count: int) -> list[tuple[h11.Response, bytes]]:
    """Read `count` responses to requests already written on sock."""
    conn = h11.Connection(h11.CLIENT)
    out: list[tuple[h11.Response, bytes]] = []
    while len(out) < count:
        _h11_send_done(conn)
        response: h11.Response | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = sock.recv(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError(f"closed after {len(out)} responses")
        assert response is not None
        out.append((response, body))
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            break
        conn.start_next_cycle()
    return out


def header(response: h11.Response, name: bytes) -> bytes | None:
    for key, value in response.headers:
        if key == name.lower():
            return bytes(value)
    return None


EMPTY_STATS = {
    "connections_opened": 0,
    "connections_open": 0,
    "requests": 0,
    "bytes_received": 0,
    "responses": {},
    "logins": 0,
    "unauthorized": 0,
    "stalled": False,
}


def test_login_issues_tokens_that_open_auth_paths(target_server):
    import json as json_
    import urllib.error
    import urllib.request

    server = target_server(status=204)

    def call(path, method="GET", token=None):
        req = urllib.request.Request(server.url + path.lstrip("/"), method=method)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    status, body = call("/login", "POST")
    assert status == 200
    token = json_.loads(body)["token"]
    assert call("/auth/items", token=token)[0] == 204
    assert call("/auth/items", token="forged")[0] == 401
    assert call("/auth/items")[0] == 401
    assert call("/other", token="forged")[0] == 204   # only /auth/ checks tokens
    stats = server.wait_stats(requests=5)
    assert stats["logins"] == 1
    assert stats["unauthorized"] == 2
    assert stats["responses"] == {"200": 1, "204": 2, "401": 2}


def test_url_line_and_port_zero(target_server):
    server = target_server()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", server.url)
    assert server.port > 0
    assert server.stats() == EMPTY_STATS


def test_counts_exact_on_one_keepalive_connection(target_server):
    server = target_server()
    n = 50
    with connect(server.port) as sock:
        for _ in range(n):
            sock.sendall(REQ)
            [(resp, body)] = read_responses(sock, 1)
            assert resp.status_code == 200
            assert body == b""
        stats = server.stats()
        assert stats["connections_opened"] == 1
        assert stats["connections_open"] == 1
        assert stats["requests"] == n
        assert stats["bytes_received"] == n * len(REQ)
        assert stats["responses"] == {"200": n}
    stats = server.wait_stats(connections_open=0)
    assert stats["connections_open"] == 0
    assert stats["connections_opened"] == 1
    assert len(server.arrivals()) == n


def test_counts_exact_on_k_connections(target_server):
    server = target_server()
    k, m = 6, 7
    socks = [connect(server.port) for _ in range(k)]
    try:
        for _ in range(m):  # interleave the connections
            for sock in socks:
                sock.sendall(REQ)
            for sock in socks:
                [(resp, _)] = read_responses(sock, 1)
                assert resp.status_code == 200
        stats = server.stats()
        assert stats["connections_opened"] == k
        assert stats["connections_open"] == k
        assert stats["requests"] == k * m
        assert stats["bytes_received"] == k * m * len(REQ)
        assert stats["responses"] == {"200": k * m}
    finally:
        for sock in socks:
            sock.close()
    assert server.wait_stats(connections_open=0)["connections_open"] == 0


def test_http_client_keepalive(target_server):
    server = target_server(body_size="100")
    conn = http.client.HTTPConnection(LOCALHOST, server.port, timeout=5)
    try:
        for _ in range(10):
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert resp.read() == b"x" * 100
    finally:
        conn.close()
    stats = server.wait_stats(connections_open=0)
    assert stats["connections_opened"] == 1
    assert stats["requests"] == 10


def test_status_and_body_size(target_server):
    server = target_server(status=503, body_size="1KiB")
    conn = http.client.HTTPConnection(LOCALHOST, server.port, timeout=5)
    try:
        conn.request("GET", "/anything?q=1")
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 503
        assert body == b"x" * 1024
        assert resp.getheader("Content-Length") == "1024"
        assert resp.getheader("Content-Type") == "text/plain"
        conn.request("HEAD", "/")
        resp = conn.getresponse()
        assert resp.status == 503
        assert resp.read() == b""
        assert resp.getheader("Content-Length") == "1024"
    finally:
        conn.close()
    assert server.stats()["responses"] == {"503": 2}


def test_request_body_read_and_counted(target_server):
    server = target_server()
    body = b"b" * 1000
    post = (
        b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n" + body
    )
    with connect(server.port) as sock:
        # Split the request across writes, then pipeline a GET behind it.
        sock.sendall(post[:30])
        time.sleep(0.02)
        sock.sendall(post[30:500])
        time.sleep(0.02)
        sock.sendall(post[500:] + REQ)
        responses = read_responses(sock, 2)
        assert [r.status_code for r, _ in responses] == [200, 200]
        stats = server.stats()
    assert stats["requests"] == 2
    assert stats["bytes_received"] == len(post) + len(REQ)
    assert len(server.arrivals()) == 2


def test_delay_is_at_least_configured(target_server):
    server = target_server(delay="50ms")
    with connect(server.port) as sock:
        for _ in range(3):
            t0 = time.monotonic_ns()
            sock.sendall(REQ)
            read_responses(sock, 1)
            assert time.monotonic_ns() - t0 >= 50_000_000
        # Pipelined: each response is due 50 ms after its own arrival, not after the
        # previous response, and they still come in order.
        t0 = time.monotonic_ns()
        sock.sendall(REQ * 3)
        assert len(read_responses(sock, 3)) == 3
        elapsed = time.monotonic_ns() - t0
    assert elapsed >= 50_000_000
    arrivals = server.arrivals()
    assert len(arrivals) == 6
    assert arrivals == sorted(arrivals)


def test_arrivals_use_the_shared_monotonic_clock(target_server):
    server = target_server()
    before = time.monotonic_ns()
    with connect(server.port) as sock:
        for _ in range(5):
            sock.sendall(REQ)
            read_responses(sock, 1)
    after = time.monotonic_ns()
    arrivals = server.arrivals()
    assert len(arrivals) == 5
    assert arrivals == sorted(arrivals)
    assert before <= arrivals[0] and arrivals[-1] <= after


def test_stall_holds_responses_then_sends_them_in_order(target_server):
    server = target_server()
    with connect(server.port) as sock:
        t0 = time.monotonic()
        server.stall(1.0)
        sock.sendall(REQ * 3)
        stats = server.wait_stats(requests=3)  # control requests work during the stall
        assert stats["stalled"] is True
        assert stats["requests"] == 3
        assert stats["responses"] == {}
        sock.settimeout(0.05)
        with pytest.raises(socket.timeout):
            sock.recv(1)  # nothing was written yet
        sock.settimeout(5)
        responses = read_responses(sock, 3)
        assert time.monotonic() - t0 >= 1.0
        assert [r.status_code for r, _ in responses] == [200, 200, 200]
    stats = server.stats()
    assert stats["stalled"] is False
    assert stats["responses"] == {"200": 3}


def test_stall_zero_ends_a_stall(target_server):
    server = target_server()
    with connect(server.port) as sock:
        server.stall(30)
        sock.sendall(REQ)
        assert server.wait_stats(requests=1)["responses"] == {}
        t0 = time.monotonic()
        server.stall(0)
        read_responses(sock, 1)
        assert time.monotonic() - t0 < 2
    assert server.stats()["stalled"] is False


def test_stall_and_delay_combine(target_server):
    server = target_server(delay="300ms")
    with connect(server.port) as sock:
        server.stall(0.1)
        t0 = time.monotonic()
        sock.sendall(REQ)
        read_responses(sock, 1)
        # Held by the stall for ~0.1 s, but the 300 ms delay from arrival still holds.
        assert time.monotonic() - t0 >= 0.3


def test_control_requests_not_counted(target_server):
    server = target_server()
    for _ in range(3):
        server.stats()
        server.arrivals()
    server.stall(0)
    server.reset()
    # Control requests on a keep-alive connection, too.
    conn = http.client.HTTPConnection(LOCALHOST, server.port, timeout=5)
    try:
        for path in ("/_hammer/stats", "/_hammer/arrivals", "/_hammer/nope"):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status in (200, 404)
            assert resp.getheader("Content-Type") == "application/json"
        conn.request("GET", "/_hammer/reset")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 405
    finally:
        conn.close()
    time.sleep(0.05)
    assert server.stats() == EMPTY_STATS
    assert server.arrivals() == []


def test_connection_counted_from_first_normal_request(target_server):
    server = target_server()
    stats_req = b"GET /_hammer/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with connect(server.port) as sock:
        sock.sendall(stats_req)
        read_responses(sock, 1)
        assert server.stats()["connections_opened"] == 0
        sock.sendall(REQ)
        read_responses(sock, 1)
        stats = server.stats()
    assert stats["connections_opened"] == 1
    assert stats["connections_open"] == 1
    assert stats["requests"] == 1
    assert stats["bytes_received"] == len(REQ)


def test_reset_zeroes_counts(target_server):
    server = target_server()
    conn = http.client.HTTPConnection(LOCALHOST, server.port, timeout=5)
    try:
        for _ in range(4):
            conn.request("GET", "/")
            conn.getresponse().read()
        assert server.stats()["requests"] == 4
        server.reset()
        stats = server.stats()
        assert stats["connections_opened"] == 0
        assert stats["requests"] == 0
        assert stats["bytes_received"] == 0
        assert stats["responses"] == {}
        assert stats["connections_open"] == 1  # a gauge: the connection is still open
        assert server.arrivals() == []
        conn.request("GET", "/")
        conn.getresponse().read()
        assert server.stats()["requests"] == 1
    finally:
        conn.close()
    assert server.wait_stats(connections_open=0)["connections_open"] == 0


def test_pipelined_requests_answered_in_order(target_server):
    server = target_server(body_size="5", delay="30ms")
    requests = (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /_hammer/stats HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with connect(server.port) as sock:
        sock.sendall(requests)
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"HTTP/1.1 ") < 4 and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
    # Raw check (h11 cannot be told about the HEAD without a matching request).
    parts = data.split(b"HTTP/1.1 ")[1:]
    assert len(parts) == 4
    assert parts[0].endswith(b"\r\n\r\nxxxxx")
    assert b"application/json" in parts[1]
    # The stats response was held behind the first (delayed) response, and it was
    # generated when the request was parsed: it saw 1 request, no response yet.
    assert b'"requests": 1' in parts[1]
    assert parts[2].endswith(b"Content-Length: 5\r\n\r\n")  # HEAD: no body
    assert parts[3].endswith(b"\r\n\r\nxxxxx")
    stats = server.stats()
    assert stats["requests"] == 3
    assert stats["responses"] == {"200": 3}


def test_http10_closes(target_server):
    server = target_server(body_size="3")
    with connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" in head
    assert body == b"xxx"
    stats = server.wait_stats(connections_open=0)
    assert stats["requests"] == 1
    assert stats["connections_opened"] == 1


def test_http10_keepalive_honoured(target_server):
    server = target_server()
    req = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    with connect(server.port) as sock:
        for _ in range(2):
            sock.sendall(req)
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            assert b"Connection: keep-alive" in data
    assert server.stats()["requests"] == 2


def test_connection_close_honoured_and_rest_ignored(target_server):
    server = target_server()
    close_req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with connect(server.port) as sock:
        sock.sendall(REQ + close_req + REQ)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.count(b"Connection: close") == 1
    stats = server.wait_stats(connections_open=0)
    assert stats["requests"] == 2


def test_bad_request_gets_400_and_close(target_server):
    server = target_server()
    with connect(server.port) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")
    server.wait_stats(connections_open=0)


def _busy_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOCALHOST, 0))
    sock.listen(1)
    return sock


def test_bind_failure_port_in_use():
    with _busy_socket() as busy:
        port = busy.getsockname()[1]
        proc = subprocess.run(
            hammer_command("serve", "--port", str(port)),
            capture_output=True, text=True, timeout=20,
        )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"hammer: error: cannot bind 127.0.0.1:{port}: ")
    assert "in use" in lines[0].lower()


def test_bind_failure_bad_address():
    # 192.0.2.1 (TEST-NET-1) is not a local address: bind fails, nothing is sent.
    proc = subprocess.run(
        hammer_command("serve", "--host", "192.0.2.1", "--port", "0"),
        capture_output=True, text=True, timeout=20,
    )
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hammer: error: cannot bind 192.0.2.1:0: ")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_with_final_counts(target_server, sig):
    server = target_server(extra_args=("--stats-interval", "50ms"))
    conn = http.client.HTTPConnection(LOCALHOST, server.port, timeout=5)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        time.sleep(0.15)
        server.proc.send_signal(sig)
        assert server.proc.wait(timeout=5) == 0
    finally:
        conn.close()
    assert server.stop() == 0
    err = server.stderr_text()
    assert "Traceback" not in err
    assert "hammer serve: connections_opened=" in err  # periodic line
    last = err.strip().splitlines()[-1]
    assert last.startswith("hammer serve: stopped: ")
    assert "requests=1 " in last


def test_in_process_target_server():
    from hammer.server import ServeConfig, TargetServer

    with TargetServer(ServeConfig(port=0, body_bytes=2)) as srv:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", srv.url)
        conn = http.client.HTTPConnection(LOCALHOST, srv.port, timeout=5)
        try:
            for _ in range(3):
                conn.request("GET", "/")
                assert conn.getresponse().read() == b"xx"
        finally:
            conn.close()
        stats = srv.stats()
        assert stats["requests"] == 3
        assert stats["connections_opened"] == 1
        assert stats["responses"] == {"200": 3}
        assert len(srv.arrivals()) == 3
        srv.reset()
        assert srv.stats()["requests"] == 0
    # Stopped: the port no longer accepts.
    with pytest.raises(OSError):
        socket.create_connection((LOCALHOST, srv.port), timeout=1).close()
