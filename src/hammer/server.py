"""The built-in target server: uvloop + httptools, HTTP/1.1 keep-alive, exact counts.

Every normal request gets the configured status and a body of ``body_bytes`` bytes
(``b"x"`` repeated), after ``delay_ns`` counted from the moment its headers arrived.
Responses on one connection always go out in request order (pipelining is supported).

The server side is the truth the tests compare against, so it counts:

* ``connections_opened`` / ``connections_open``: a connection is counted when the
  headers of its first *normal* (non-control) request are complete; connections that
  only ever carry control requests are never counted.
* ``requests``: normal requests fully received (body included).
* ``bytes_received``: every byte read on counted connections. Bytes read before the
  connection was counted are included when it becomes counted, except bytes of
  control requests that were complete (and followed by nothing) before that.
* ``responses``: responses actually written, by status (``{"200": n}``).
* ``arrivals_ns``: ``time.monotonic_ns()`` (CLOCK_MONOTONIC, comparable across
  processes on the machine) when each normal request's headers were complete.

Two normal endpoints, counted like any other request, for flows that log in first:

* ``POST /login`` -> ``200 {"token": "..."}``, a new bearer token (``logins`` counts them).
* ``/auth/...``: the configured status when the request carries ``Authorization: Bearer
  T`` with a token T this server issued, else ``401`` (``unauthorized`` counts them).

Control endpoints, never counted, under ``/_hammer/``:

* ``GET /_hammer/stats`` -> the counts above (minus arrivals) and ``"stalled"``.
* ``GET /_hammer/arrivals`` -> ``{"arrivals_ns": [...]}``.
* ``POST /_hammer/reset`` -> zero every count and the arrivals. ``connections_open``
  is a gauge and is left alone: it keeps telling how many counted connections are
  open (a connection counted before the reset is still decremented when it closes).
* ``POST /_hammer/stall?seconds=S`` -> for S seconds from now no normal response is
  written; held responses go out, in order, when the stall ends (each still no earlier
  than its arrival plus the delay). ``seconds=0`` ends a stall. Control requests are
  answered during a stall (unless pipelined behind a held response).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import sys
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs

import httptools

__all__ = ["ServeConfig", "ServerState", "TargetServer", "format_url", "serve_forever"]

CONTROL_PREFIX = b"/_hammer/"
LOGIN_PATH = b"/login"
AUTH_PREFIX = b"/auth/"
BEARER = b"bearer "
_BACKLOG = 4096
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    status: int = 200
    body_bytes: int = 0
    delay_ns: int = 0
    stats_interval_ns: int | None = None


def format_url(host: str, port: int) -> str:
    """``http://HOST:PORT/``, with an IPv6 literal in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def _format_hostport(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def _build_response(
    status: int, content_type: bytes, body: bytes, conn_header: bytes | None, head: bool
) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}".encode("ascii")]
    lines.append(b"Server: hammer")
    lines.append(b"Content-Type: " + content_type)
    informational = 100 <= status < 200
    no_body = informational or status in _NO_BODY_STATUSES
    if not no_body:
        lines.append(b"Content-Length: " + str(len(body)).encode("ascii"))
    if conn_header is not None:
        lines.append(b"Connection: " + conn_header)
    out = b"\r\n".join(lines) + b"\r\n\r\n"
    if not no_body and not head:
        out += body
    return out


class ServerState:
    """Counters, configuration and live connections, shared by one loop's protocols."""

    def __init__(self, config: ServeConfig) -> None:
        if not 100 <= config.status <= 999:
            raise ValueError(f"status must be in 100..999, not {config.status}")
        if config.body_bytes < 0:
            raise ValueError("body_bytes must be >= 0")
        if config.delay_ns < 0:
            raise ValueError("delay_ns must be >= 0")
        self.config = config
        self.status = config.status
        self.status_key = str(config.status)
        self.delay_ns = config.delay_ns
        self.body = b"x" * config.body_bytes
        self.connections: set[_HttpProtocol] = set()
        self.stall_until_ns = 0
        self.tokens: set[bytes] = set()
        self._responses_cache: dict[tuple[bytes | None, bool], bytes] = {}
        self.connections_open = 0
        self.reset()

    def reset(self) -> None:
        self.connections_opened = 0
        self.requests = 0
        self.bytes_received = 0
        self.responses: dict[str, int] = {}
        self.arrivals: array[int] = array("q")
        self.logins = 0
        self.unauthorized = 0

    def login_response(self, conn_header: bytes | None, head: bool) -> bytes:
        self.logins += 1
        token = f"t{self.logins}-{os.urandom(8).hex()}".encode()
        self.tokens.add(token)
        body = b'{"token": "' + token + b'"}'
        return _build_response(200, b"application/json", body, conn_header, head)

    def unauthorized_response(self, conn_header: bytes | None, head: bool) -> bytes:
        self.unauthorized += 1
        return _build_response(401, b"application/json", b'{"error": "unknown token"}',
                               conn_header, head)

    def response_bytes(self, conn_header: bytes | None, head: bool) -> bytes:
        key = (conn_header, head)
        data = self._responses_cache.get(key)
        if data is None:
            data = _build_response(self.status, b"text/plain", self.body, conn_header, head)
            self._responses_cache[key] = data
        return data

    def stalled(self) -> bool:
        return self.stall_until_ns > time.monotonic_ns()

    def snapshot(self) -> dict[str, Any]:
        return {
            "connections_opened": self.connections_opened,
            "connections_open": self.connections_open,
            "requests": self.requests,
            "bytes_received": self.bytes_received,
            "responses": dict(self.responses),
            "logins": self.logins,
            "unauthorized": self.unauthorized,
            "stalled": self.stalled(),
        }

    def arrivals_list(self) -> list[int]:
        return self.arrivals.tolist()

    def set_stall(self, seconds: float) -> None:
        now = time.monotonic_ns()
        self.stall_until_ns = now + round(seconds * 1e9) if seconds > 0 else 0
        for conn in list(self.connections):
            conn.reschedule()

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()

    def summary_line(self) -> str:
        responses = " ".join(f"{k}:{v}" for k, v in sorted(self.responses.items())) or "-"
        return (
            f"connections_opened={self.connections_opened} "
            f"connections_open={self.connections_open} requests={self.requests} "
            f"bytes_received={self.bytes_received} responses={responses}"
        )


class _Pending:
    __slots__ = ("close", "data", "ready_ns", "status_key")

    def __init__(self, data: bytes, ready_ns: int, status_key: str | None, close: bool) -> None:
        self.data = data
        self.ready_ns = ready_ns  # 0 for control responses: never held
        self.status_key = status_key  # None for control responses: not counted
        self.close = close


class _HttpProtocol(asyncio.Protocol):
    __slots__ = (
        "_arrival_ns",
        "_authorization",
        "_body_ignored",
        "_closing",
        "_conn_header",
        "_control",
        "_counted",
        "_head",
        "_in_message",
        "_loop",
        "_method",
        "_parser",
        "_queue",
        "_state",
        "_timer",
        "_transport",
        "_uncounted_bytes",
        "_url_parts",
    )

    def __init__(self, state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
        self._state = state
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[_Pending] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False
        self._uncounted_bytes = 0
        self._closing = False
        self._in_message = False
        self._url_parts: list[bytes] = []
        self._control = False
        self._method = b""
        self._head = False
        self._conn_header: bytes | None = None
        self._body_ignored = 0
        self._arrival_ns = 0
        self._authorization: bytes | None = None

    # -- transport callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but implement it.
        self._transport = cast(asyncio.Transport, transport)
        self._state.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        state = self._state
        state.connections.discard(self)
        if self._counted:
            state.connections_open -= 1
            self._counted = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if self._counted:
            self._state.bytes_received += len(data)
        else:
            self._uncounted_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close_after_pending()
        except httptools.HttpParserError:
            if not self._closing:
                self._queue.append(_Pending(_BAD_REQUEST, 0, None, True))
                self._closing = True
                self._flush()
        if not self._counted and not self._in_message:
            # Everything read so far belonged to complete control requests.
            self._uncounted_bytes = 0

    def eof_received(self) -> bool:
        # Half-close from the client: answer what is queued, then close.
        self._close_after_pending()
        return True

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    # -- parser callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url_parts.clear()
        self._body_ignored = 0
        self._authorization = None

    def on_url(self, url: bytes) -> None:
        self._url_parts.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 13 and name.lower() == b"authorization":
            self._authorization = value

    def on_headers_complete(self) -> None:
        if self._closing:
            return
        parser = self._parser
        url = b"".join(self._url_parts) if len(self._url_parts) != 1 else self._url_parts[0]
        self._control = url.startswith(CONTROL_PREFIX)
        self._method = parser.get_method()
        self._head = self._method == b"HEAD"
        if not parser.should_keep_alive():
            self._conn_header = b"close"
        elif parser.get_http_version() == "1.0":
            self._conn_header = b"keep-alive"
        else:
            self._conn_header = None
        if self._control:
            return
        state = self._state
        now = time.monotonic_ns()
        self._arrival_ns = now
        state.arrivals.append(now)
        if not self._counted:
            self._counted = True
            state.connections_opened += 1
            state.connections_open += 1
            state.bytes_received += self._uncounted_bytes
            self._uncounted_bytes = 0

    def on_body(self, body: bytes) -> None:
        self._body_ignored += len(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._closing:
            return
        close = self._conn_header == b"close"
        state = self._state
        if self._control:
            url = b"".join(self._url_parts)
            item = _Pending(self._control_response(url), 0, None, close)
        else:
            state.requests += 1
            status_key = state.status_key
            url = b"".join(self._url_parts)
            auth = self._authorization
            if url.startswith(AUTH_PREFIX) and (
                    auth is None or auth[:7].lower() != BEARER or auth[7:] not in state.tokens):
                data = state.unauthorized_response(self._conn_header, self._head)
                status_key = "401"
            elif self._method == b"POST" and url == LOGIN_PATH:
                data = state.login_response(self._conn_header, self._head)
                status_key = "200"
            else:
                data = state.response_bytes(self._conn_header, self._head)
            item = _Pending(data, self._arrival_ns + state.delay_ns, status_key, close)
        self._queue.append(item)
        if close:
            self._closing = True
        self._flush()

    # -- responses -----------------------------------------------------------------

    def _control_response(self, url: bytes) -> bytes:
        state = self._state
        path, _, query = url.partition(b"?")
        name = path[len(CONTROL_PREFIX) :].decode("latin-1")
        method = self._method
        status = 200
        payload: dict[str, Any]
        routes = {"stats": b"GET", "arrivals": b"GET", "reset": b"POST", "stall": b"POST"}
        if name not in routes:
            status, payload = 404, {"error": f"no control endpoint {name!r}"}
        elif method != routes[name] and not (routes[name] == b"GET" and method == b"HEAD"):
            status = 405
            payload = {"error": f"{name} needs {routes[name].decode()}"}
        elif name == "stats":
            payload = state.snapshot()
        elif name == "arrivals":
            payload = {"arrivals_ns": state.arrivals_list()}
        elif name == "reset":
            state.reset()
            payload = {"ok": True}
        else:
            params = parse_qs(query.decode("latin-1"))
            try:
                seconds = float(params["seconds"][0])
                if not math.isfinite(seconds) or seconds < 0:
                    raise ValueError
            except (KeyError, ValueError):
                status = 400
                payload = {"error": "stall needs ?seconds=S with S >= 0"}
            else:
                state.set_stall(seconds)
                payload = {"ok": True, "stalled": state.stalled()}
        body = json.dumps(payload).encode()
        return _build_response(status, b"application/json", body, self._conn_header, self._head)

    def _flush(self) -> None:
        transport = self._transport
        queue = self._queue
        if transport is None:
            queue.clear()
            return
        state = self._state
        now = 0
        while queue:
            item = queue[0]
            if item.status_key is not None:
                if now == 0:
                    now = time.monotonic_ns()
                due = max(item.ready_ns, state.stall_until_ns)
                if due > now:
                    self._schedule(due - now)
                    return
                state.responses[item.status_key] = state.responses.get(item.status_key, 0) + 1
            queue.popleft()
            transport.write(item.data)
            if item.close:
                queue.clear()
                transport.close()
                return

    def _schedule(self, wait_ns: int) -> None:
        if self._timer is not None:
            return
        # libuv timers have millisecond resolution and a cached clock: round up; if the
        # timer still fires early, _flush() re-checks the monotonic clock and re-arms.
        self._timer = self._loop.call_later(math.ceil(wait_ns / 1e6) / 1e3, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._flush()

    def reschedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._queue:
            self._flush()

    def _close_after_pending(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._queue:
            self._queue[-1].close = True
        elif self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


_BAD_REQUEST = _build_response(400, b"text/plain", b"bad request\n", b"close", False)


def _bind_socket(host: str, port: int) -> socket.socket:
    """Resolve HOST and bind one listening socket on the first address (port 0 works)."""
    infos = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )
    if not infos:
        raise OSError(f"no address for {host!r}")
    last_exc: OSError | None = None
    for family, type_, proto, _, addr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            last_exc = exc
            continue
        return sock
    assert last_exc is not None
    raise last_exc


def _bind_error_reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror) and exc.strerror:
        return exc.strerror
    if exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _new_loop() -> asyncio.AbstractEventLoop:
    import uvloop

    return uvloop.new_event_loop()


class TargetServer:
    """The target server on its own uvloop loop in a daemon thread, for in-process use.

    >>> with TargetServer(ServeConfig(port=0)) as srv:
    ...     srv.url  # 'http://127.0.0.1:PORT/'
    """

    def __init__(self, config: ServeConfig | None = None) -> None:
        self.config = config if config is not None else ServeConfig(port=0)
        self.state = ServerState(self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._url: str | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("TargetServer is not started")
        return self._url

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("TargetServer is not started")
        return self._port

    def start_in_thread(self) -> str:
        """Bind, start serving in a daemon thread and return the base URL.

        Raises OSError if the address cannot be bound.
        """
        if self._thread is not None:
            return self.url
        sock = _bind_socket(self.config.host, self.config.port)
        self._port = sock.getsockname()[1]
        self._url = format_url(self.config.host, self._port)
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._thread_main, args=(sock, ready), name="hammer-target", daemon=True
        )
        self._thread.start()
        try:
            ready.result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self._url

    def _thread_main(self, sock: socket.socket, ready: Future[None]) -> None:
        loop = _new_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                loop.create_server(
                    lambda: _HttpProtocol(self.state, loop), sock=sock, backlog=_BACKLOG
                )
            )
        except BaseException as exc:
            sock.close()
            ready.set_exception(exc)
            loop.close()
            return
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            try:
                self._server.close()
                self.state.close_all()
                loop.run_until_complete(self._server.wait_closed())
                loop.run_until_complete(asyncio.sleep(0))
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the server's loop (a consistent snapshot) and return its result."""
        loop = self._loop
        thread = self._thread
        if loop is None or thread is None or not thread.is_alive() or loop.is_closed():
            return fn()
        result: Future[Any] = Future()

        def run() -> None:
            try:
                result.set_result(fn())
            except BaseException as exc:
                result.set_exception(exc)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # loop closed meanwhile
            return fn()
        return result.result(timeout=10)

    def stats(self) -> dict[str, Any]:
        return self._call(self.state.snapshot)

    def arrivals(self) -> list[int]:
        return self._call(self.state.arrivals_list)

    def reset(self) -> None:
        self._call(self.state.reset)

    def stall(self, seconds: float) -> None:
        self._call(lambda: self.state.set_stall(seconds))

    def stop(self) -> None:
        """Close the listener and every connection, and join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._loop = None
        self._server = None

    def __enter__(self) -> TargetServer:
        self.start_in_thread()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _print_err(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


async def _serve_main(config: ServeConfig, sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    state = ServerState(config)
    server = await loop.create_server(
        lambda: _HttpProtocol(state, loop), sock=sock, backlog=_BACKLOG
    )
    port = sock.getsockname()[1]
    with contextlib.suppress(OSError, ValueError):
        print(f"hammer serve: listening on {format_url(config.host, port)}", flush=True)

    stop = loop.create_future()

    def on_signal(signum: int) -> None:
        if not stop.done():
            stop.set_result(signum)

    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)

    ticker: asyncio.TimerHandle | None = None
    interval = config.stats_interval_ns

    def tick() -> None:
        nonlocal ticker
        _print_err(f"hammer serve: {state.summary_line()}")
        assert interval is not None
        ticker = loop.call_later(interval / 1e9, tick)

    if interval:
        ticker = loop.call_later(interval / 1e9, tick)
    try:
        await stop
    finally:
        if ticker is not None:
            ticker.cancel()
        for signum in signals:
            loop.remove_signal_handler(signum)
        server.close()
        state.close_all()
        await server.wait_closed()
        await asyncio.sleep(0)
    _print_err(f"hammer serve: stopped: {state.summary_line()}")


def serve_forever(config: ServeConfig) -> int:
    """Serve in the foreground until SIGINT/SIGTERM; return the process exit code.

    Prints ``hammer serve: listening on URL`` to stdout once bound. A bind failure
    prints one line to stderr and returns 2.
    """
    try:
        sock = _bind_socket(config.host, config.port)
    except OSError as exc:
        where = _format_hostport(config.host, config.port)
        _print_err(f"hammer: error: cannot bind {where}: {_bind_error_reason(exc)}")
        return 2
    loop = _new_loop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(_serve_main(config, sock))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return 0
