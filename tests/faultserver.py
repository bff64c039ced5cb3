"""A fault-injecting HTTP/1.1 server for tests: plain sockets, so it can misbehave at the
byte level, on 127.0.0.1 only.

Run as a subprocess (the tests never run it in their own process, so its threads never
compete with the test for the GIL)::

    python tests/faultserver.py --mode MODE [--port P] [--stats-file PATH] [--close]

The first line on stdout is JSON: ``{"port": P, "control_port": C, "mode": MODE}``.
Every connection to the control port gets the current stats as one JSON document, then
EOF (``FaultServer.stats()`` reads it). On SIGTERM the server writes the same JSON to
``--stats-file`` (if given) and exits 0. ``--port`` binds a fixed port (with
SO_REUSEADDR, so a restarted server gets the port back at once).

One thread per accepted connection; each reads complete requests (head, plus a
Content-Length body if any) and answers according to one mode (one mode per server).

Stats, exact (updated under a lock, before the control port can see them):

* ``connections``: connections accepted (numbered 1, 2, ... in accept order);
* ``open``: accepted connections whose handler has not closed them yet;
* ``requests``: complete request heads (and bodies) read;
* ``good``: well-formed responses with status < 400 written in full (``sendall``
  returned), the count to compare with hammer's ``ok``;
* ``events``: per-mode counts (named below);
* ``lifetimes_ms``: ``drip`` and ``stall*`` only: for each request abandoned by the
  client, the milliseconds from the moment its head was read to the moment the server
  saw the client close the connection.

Modes (``events`` key in brackets):

``ok``
    A normal keep-alive ``200`` with a 6-byte Content-Length body (the baseline).
``accept_close``
    Accept and close at once, never reading [``closed_at_accept``]. The client sees
    EOF (or RST, when its request already arrived) before any response byte.
``no_response``
    Read the request, then close the connection (FIN) without writing a byte
    [``no_response``].
``close_after:N``
    Keep-alive ``200`` responses, but close the connection right after the N-th one on
    it, without ``Connection: close`` [``closed_after``]: a silent close. A request the
    client writes on that connection afterwards is never read (or counted).
``reset_mid``
    Write the first half of a response, then reset the connection (SO_LINGER on with
    a 0 s timeout, then close: RST, not FIN) [``reset_mid``].
``truncated``
    Headers with ``Content-Length: 100``, then 10 body bytes, then close
    [``truncated``].
``malformed_status``
    ``HTTP/1.1 2x0 OK`` [``malformed_status``]. The connection stays open.
``malformed_header``
    A header line without a colon [``malformed_header``].
``cl_and_te``
    Both ``Content-Length`` and ``Transfer-Encoding: chunked`` [``cl_and_te``].
``bad_chunk``
    A chunked body whose first chunk size is ``zz`` [``bad_chunk``].
``huge_headers``
    A 200 whose header block is 70 KiB (70 header lines of 1 KiB) [``huge_headers``].
``interim``
    ``100 Continue`` and ``103 Early Hints`` (separate writes) before a normal final
    ``200`` [``interim``: interim responses written, two per request].
``close_delimited``
    ``HTTP/1.1 200`` without Content-Length or Transfer-Encoding: the body, then close
    (one request per connection) [``close_delimited``].
``drip``
    A valid keep-alive ``200`` written one byte every 50 ms (``--drip-interval``),
    slowloris style: about 2 s for the whole response. Between bytes the server watches
    for the client's close and then stops [``drip_abandoned``; ``lifetimes_ms``].
``stall:S``
    Hold every response for S seconds, then answer normally. A client close during the
    hold is noticed at once [``stalled``; ``stall_abandoned``; ``lifetimes_ms``].
``stall_some:S``
    ``stall:S`` on odd-numbered connections (1st, 3rd, ... accepted) only; the others
    answer at once [same events].

``--close`` makes the normal responses of ``ok``, ``stall``, ``stall_some`` and
``interim`` carry ``Connection: close``, and the server closes after each: one request
per connection. For the kill/restart case, run mode ``ok`` with ``--port P``, SIGKILL
it, and start another on the same port (``FaultServer.kill()``, ``start_fault_server``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOCALHOST = "127.0.0.1"
SCRIPT = Path(__file__).resolve()

MODES = (
    "ok", "accept_close", "no_response", "close_after", "reset_mid", "truncated",
    "malformed_status", "malformed_header", "cl_and_te", "bad_chunk", "huge_headers", "interim",
    "close_delimited", "drip", "stall", "stall_some",
)
# modes that take a parameter after a colon, and its type
PARAM_MODES: dict[str, Callable[[str], float]] = {
    "close_after": int, "stall": float, "stall_some": float,
}

OK_BODY = b"hello\n"


def ok_response(close: bool = False) -> bytes:
    conn = b"Connection: close\r\n" if close else b""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + conn
            + b"Content-Length: %d\r\n\r\n" % len(OK_BODY) + OK_BODY)


# the broken responses, whole (each is otherwise a complete, plausible response)
CANNED: dict[str, bytes] = {
    "malformed_status": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
    "malformed_header": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                         b"X-Broken header without colon\r\n\r\nok"),
    "cl_and_te": (b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"2\r\nok\r\n0\r\n\r\n"),
    "bad_chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
    "huge_headers": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                     + b"".join(b"X-Pad-%02d: " % i + b"a" * (1024 - 12) + b"\r\n"
                                for i in range(70))
                     + b"\r\nok"),
}
_FULL = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40
HALF_RESPONSE = _FULL[:len(_FULL) // 2 + 5]  # the whole head and 5 body bytes
TRUNCATED = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"t" * 10
INTERIM = (b"HTTP/1.1 100 Continue\r\n\r\n",
           b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
CLOSE_DELIMITED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"b" * 100


# -- the server ------------------------------------------------------------------------


class Stats:
    def __init__(self, mode: str) -> None:
        self.lock = threading.Lock()
        self.mode = mode
        self.connections = 0
        self.open = 0
        self.requests = 0
        self.good = 0
        self.events: dict[str, int] = {}
        self.lifetimes_ms: list[float] = []

    def add(self, field: str, n: int = 1) -> None:
        with self.lock:
            setattr(self, field, getattr(self, field) + n)

    def event(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.events[name] = self.events.get(name, 0) + n

    def lifetime(self, since: float) -> None:
        ms = (time.monotonic() - since) * 1000.0
        with self.lock:
            self.lifetimes_ms.append(round(ms, 3))

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "mode": self.mode, "connections": self.connections, "open": self.open,
                "requests": self.requests, "good": self.good, "events": dict(self.events),
                "lifetimes_ms": list(self.lifetimes_ms),
            }


class Peer:
    """One accepted connection: buffered request reading, waits that notice a close."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except OSError:
            return False
        self.buf += data
        return bool(data)

    def read_request(self) -> bool:
        """Read one complete request (head, then a Content-Length body). False on EOF."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                return False
        end = self.buf.index(b"\r\n\r\n") + 4
        length = 0
        for line in self.buf[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(self.buf) < end + length:
            if not self._fill():
                return False
        self.buf = self.buf[end + length:]
        return True

    def wait_or_closed(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking at once if the client closes: True if it did.
        Bytes that arrive meanwhile are kept for the next request."""
        deadline = time.monotonic() + seconds
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if poller.poll(left * 1000.0) and not self._fill():
                return True

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def reset_on_close(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class FaultHandler:
    def __init__(self, mode: str, param: float, close: bool, drip_interval: float,
                 stats: Stats) -> None:
        self.mode = mode
        self.param = param
        self.close = close
        self.drip_interval = drip_interval
        self.stats = stats

    def serve(self, sock: socket.socket, number: int) -> None:
        try:
            with sock:
                if self.mode == "accept_close":
                    self.stats.event("closed_at_accept")
                    return
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                peer = Peer(sock)
                served = 0
                while peer.read_request():
                    self.stats.add("requests")
                    served += 1
                    if not self.respond(peer, number, served, time.monotonic()):
                        break
        finally:
            self.stats.add("open", -1)

    def good(self, peer: Peer, data: bytes) -> bool:
        """Write a good response; count it once written in full."""
        if not peer.send(data):
            self.stats.event("send_failed")
            return False
        self.stats.add("good")
        return True

    def respond(self, peer: Peer, number: int, served: int, t_request: float) -> bool:
        """Answer the request just read. False: close the connection."""
        mode = self.mode
        if mode == "ok":
            return self.good(peer, ok_response(self.close)) and not self.close
        if mode == "close_after":
            if not self.good(peer, ok_response()):
                return False
            if served >= self.param:
                self.stats.event("closed_after")
                return False
            return True
        if mode == "no_response":
            self.stats.event(mode)
            return False
        if mode in CANNED:
            self.stats.event(mode)
            return peer.send(CANNED[mode])
        if mode == "reset_mid":
            self.stats.event(mode)
            peer.send(HALF_RESPONSE)
            peer.reset_on_close()
            return False
        if mode == "truncated":
            self.stats.event(mode)
            peer.send(TRUNCATED)
            return False
        if mode == "interim":
            for part in INTERIM:
                if not peer.send(part):
                    return False
                self.stats.event("interim")
            return self.good(peer, ok_response(self.close)) and not self.close
        if mode == "close_delimited":
            self.stats.event(mode)
            self.good(peer, CLOSE_DELIMITED)
            return False
        if mode == "drip":
            data = ok_response()
            for i in range(len(data)):
                if not peer.send(data[i:i + 1]) or (
                        i + 1 < len(data) and peer.wait_or_closed(self.drip_interval)):
                    self.stats.event("drip_abandoned")
                    self.stats.lifetime(t_request)
                    return False
            self.stats.add("good")
            return True
        if mode == "stall" or (mode == "stall_some" and number % 2 == 1):
            self.stats.event("stalled")
            if peer.wait_or_closed(self.param):
                self.stats.event("stall_abandoned")
                self.stats.lifetime(t_request)
                return False
        return self.good(peer, ok_response(self.close)) and not self.close


def parse_mode(spec: str) -> tuple[str, float]:
    name, _, arg = spec.partition(":")
    if name not in MODES:
        raise argparse.ArgumentTypeError(f"unknown mode {name!r}")
    if name in PARAM_MODES:
        if not arg:
            raise argparse.ArgumentTypeError(f"mode {name} needs a parameter: {name}:X")
        return name, PARAM_MODES[name](arg)
    if arg:
        raise argparse.ArgumentTypeError(f"mode {name} takes no parameter")
    return name, 0.0


def listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOCALHOST, port))
    sock.listen(1024)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a fault-injecting HTTP/1.1 test server")
    parser.add_argument("--mode", required=True, type=parse_mode)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stats-file", type=Path)
    parser.add_argument("--close", action="store_true")
    parser.add_argument("--drip-interval", type=float, default=0.05)
    args = parser.parse_args(argv)
    mode, param = args.mode
    stats = Stats(mode if mode not in PARAM_MODES else f"{mode}:{param:g}")
    handler = FaultHandler(mode, param, args.close, args.drip_interval, stats)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with listen(args.port) as server, listen(0) as control:
        print(json.dumps({"port": server.getsockname()[1],
                          "control_port": control.getsockname()[1], "mode": stats.mode}),
              flush=True)
        while not stopping.is_set():
            ready, _, _ = select.select([server, control], [], [], 0.05)
            if server in ready:
                conn, _ = server.accept()
                with stats.lock:
                    stats.connections += 1
                    stats.open += 1
                    number = stats.connections
                threading.Thread(target=handler.serve, args=(conn, number), daemon=True).start()
            if control in ready:
                conn, _ = control.accept()
                with conn, contextlib.suppress(OSError):
                    conn.sendall(json.dumps(stats.snapshot()).encode())
    if args.stats_file is not None:
        args.stats_file.write_text(json.dumps(stats.snapshot()))
    return 0


# -- the test side: the server as a subprocess ----------------------------------------


class FaultServer:
    """A running ``faultserver.py`` subprocess. ``url``, ``port``, ``control_port``,
    ``mode``, ``proc``, ``stats_path``, ``stderr_path``."""

    def __init__(self, proc: subprocess.Popen[bytes], hello: dict[str, Any],
                 stats_path: Path, stderr_path: Path) -> None:
        self.proc = proc
        self.port = int(hello["port"])
        self.control_port = int(hello["control_port"])
        self.mode = str(hello["mode"])
        self.url = f"http://{LOCALHOST}:{self.port}/"
        self.stats_path = stats_path
        self.stderr_path = stderr_path
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stats(self) -> dict[str, Any]:
        """The live stats (see the module docstring)."""
        with socket.create_connection((LOCALHOST, self.control_port), timeout=5) as sock:
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        result: dict[str, Any] = json.loads(b"".join(chunks))
        return result

    def wait_stats(self, timeout: float = 5.0, **expected: Any) -> dict[str, Any]:
        """Poll until every given key has the given value, and no connection is still
        open (so the counts are final); on timeout return the last stats anyway, for
        the caller's assert to show the difference."""
        from servers import poll_stats

        expected.setdefault("open", 0)
        return poll_stats(self.stats, timeout, expected)

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: the process dies at once, its sockets closed by the kernel."""
        from servers import _stop_process

        if self.returncode is None:
            self.returncode = _stop_process(self.proc, signal.SIGKILL, 5)
            self._close_pipe()

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM (the server writes its stats file and exits 0), SIGKILL after
        `timeout`. Returns the exit code."""
        from servers import _stop_process

        if self.returncode is None:
            self.returncode = _stop_process(self.proc, signal.SIGTERM, timeout)
            self._close_pipe()
        return self.returncode

    def final_stats(self) -> dict[str, Any]:
        """The stats the server wrote when stopped with SIGTERM."""
        result: dict[str, Any] = json.loads(self.stats_path.read_text())
        return result

    def _close_pipe(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_fault_server(log_dir: Path, mode: str, port: int = 0,
                       extra_args: tuple[str, ...] = (), timeout: float = 10.0) -> FaultServer:
    """Start ``faultserver.py --mode MODE`` and wait for its first line."""
    from servers import _read_line, _stop_process

    log_dir.mkdir(parents=True, exist_ok=True)
    n = len(list(log_dir.glob("fault-*.stderr")))
    stderr_path = log_dir / f"fault-{n}.stderr"
    stats_path = log_dir / f"fault-{n}.json"
    args = [sys.executable, str(SCRIPT), "--mode", mode, "--port", str(port),
            "--stats-file", str(stats_path), *extra_args]
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=stderr, bufsize=0)
    try:
        hello = json.loads(_read_line(proc, timeout))
    except Exception as exc:
        _stop_process(proc, signal.SIGKILL, 5)
        if proc.stdout is not None:
            proc.stdout.close()
        raise RuntimeError(f"faultserver did not start: {exc}; exit={proc.returncode}; "
                           f"stderr: {stderr_path.read_text(errors='replace')!r}") from exc
    return FaultServer(proc, hello, stats_path, stderr_path)


if __name__ == "__main__":
    sys.exit(main())
