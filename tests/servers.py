"""Test helpers: the built-in target server and nginx as subprocesses, on 127.0.0.1.

The fixtures in conftest.py wrap ``start_target_server`` and ``start_nginx``; the
classes here are what the fixtures yield.

Counting notes for nginx (see ``NginxServer``):

* ``requests_served()`` counts access-log lines that are not for ``/status``. nginx
  writes a line (unbuffered here) in the log phase, just *after* the response went out,
  so a client that has its last response may look before the line is written: pass
  ``wait_for=N`` to poll until at least N lines are there.
* ``connections_accepted()`` reads stub_status ``accepts``. Each stub_status query is
  itself a new connection (and request); the helper makes every query on a fresh
  single-use connection and subtracts a baseline taken at startup plus the queries made
  since, so the figure is exactly the connections everyone else opened. Prefer
  ``connections_in_log()`` (distinct ``$connection`` serials in the access log) when
  every connection carried at least one request.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCALHOST = "127.0.0.1"
URL_LINE = re.compile(r"^hammer serve: listening on (http://(127\.0\.0\.1|\[::1\]):(\d+)/)$")

# urllib must never go through a proxy from the environment: everything is local.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(host: str = LOCALHOST) -> int:
    """A port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _request(url: str, method: str = "GET", timeout: float = 5.0) -> bytes:
    data = b"" if method == "POST" else None
    req = urllib.request.Request(url, data=data, method=method)
    with _OPENER.open(req, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """Read stdout up to and including the first newline, or raise on timeout/EOF."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line on stdout within {timeout}s (got {buf!r})")
            if not sel.select(left):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                raise EOFError(f"stdout closed before a full line (got {buf!r})")
            buf += chunk
    return buf


def poll_stats(fetch: Any, timeout: float, expected: dict[str, Any]) -> dict[str, Any]:
    """Call fetch() until every expected key has its value; on timeout return the last
    stats anyway, so the caller's assert shows the difference."""
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, Any] = fetch()
        if all(stats.get(k) == v for k, v in expected.items()) or \
                time.monotonic() >= deadline:
            return stats
        time.sleep(0.01)


def _stop_process(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> int:
    """Send sig, wait up to timeout, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


# -- the built-in target server -------------------------------------------------------


class TargetServerProcess:
    """``python -m hammer serve --port 0 ...`` running as a subprocess.

    Attributes: ``url`` (``http://127.0.0.1:PORT/``), ``host``, ``port``, ``proc``,
    ``args`` (the command line), ``stderr_path``.
    """

    def __init__(
        self, proc: subprocess.Popen[bytes], url: str, port: int, args: list[str],
        stderr_path: Path, host: str = LOCALHOST,
    ) -> None:
        self.proc = proc
        self.url = url
        self.host = host
        self.port = port
        self.args = args
        self.stderr_path = stderr_path
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _control(self, path: str, method: str = "GET") -> Any:
        return json.loads(_request(f"{self.url}_hammer/{path}", method))

    def stats(self) -> dict[str, Any]:
        """``{"connections_opened", "connections_open", "requests", "bytes_received",
        "responses": {"200": n}, "stalled"}`` (control requests are never counted)."""
        result: dict[str, Any] = self._control("stats")
        return result

    def arrivals(self) -> list[int]:
        """time.monotonic_ns() at which each normal request's headers were complete."""
        result: list[int] = self._control("arrivals")["arrivals_ns"]
        return result

    def reset(self) -> None:
        self._control("reset", "POST")

    def stall(self, seconds: float) -> None:
        """Hold every normal response for `seconds` from now (0 ends a stall)."""
        self._control(f"stall?seconds={seconds!r}", "POST")

    def wait_stats(
        self, timeout: float = 5.0, **expected: Any
    ) -> dict[str, Any]:
        """Poll stats() until every given key has the given value (see poll_stats)."""
        return poll_stats(self.stats, timeout, expected)

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after `timeout` seconds. Returns the exit code."""
        if self.returncode is None:
            self.returncode = _stop_process(self.proc, signal.SIGTERM, timeout)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        return self.returncode


def hammer_command(*args: str) -> list[str]:
    """The command line for ``python -m hammer ARGS`` with this interpreter."""
    return [sys.executable, "-m", "hammer", *args]


def start_target_server(
    log_dir: Path,
    status: int = 200,
    body_size: str = "0",
    delay: str = "0ms",
    extra_args: tuple[str, ...] = (),
    timeout: float = 10.0,
) -> TargetServerProcess:
    """Start ``hammer serve --port 0`` and wait for its URL line."""
    args = hammer_command(
        "serve", "--host", LOCALHOST, "--port", "0", "--status", str(status),
        "--body-size", body_size, "--delay", delay, *extra_args,
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    n = len(list(log_dir.glob("serve-*.stderr")))
    stderr_path = log_dir / f"serve-{n}.stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, bufsize=0
        )
    try:
        line = _read_line(proc, timeout).decode(errors="replace").rstrip("\r\n")
        match = URL_LINE.match(line)
        if match is None:
            raise RuntimeError(f"unexpected first line from hammer serve: {line!r}")
    except Exception as exc:
        _stop_process(proc, signal.SIGKILL, 5)
        if proc.stdout is not None:
            proc.stdout.close()
        raise RuntimeError(
            f"hammer serve did not start: {exc}; exit={proc.returncode}; "
            f"stderr: {stderr_path.read_text(errors='replace')!r}"
        ) from exc
    return TargetServerProcess(proc, match.group(1), int(match.group(3)), args, stderr_path,
                               host=match.group(2).strip("[]"))


# -- nginx -----------------------------------------------------------------------------


def find_nginx() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


NGINX_LOG_FORMAT = (
    '$msec $status $request_length $bytes_sent $connection $connection_requests '
    '$ssl_session_reused "$request"'
)
SIZE_64K = 64 * 1024

_NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
{user_line}
pid {prefix}/nginx.pid;
lock_file {prefix}/nginx.lock;
error_log {prefix}/error.log notice;
worker_rlimit_nofile 16384;

events {{
    worker_connections 8192;
}}

http {{
    default_type text/plain;
    log_format hammer '{log_format}';
    access_log {prefix}/access.log hammer;
    client_body_temp_path {prefix}/tmp/client_body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server_tokens off;

    server {{
        listen {host}:{port} backlog=4096;
        listen unix:{prefix}/nginx.sock;
        server_name localhost;

        location / {{
            return 200 "hello\\n";
        }}
        location = /64k {{
            root {prefix}/www;
        }}
        location = /status {{
            stub_status;
            access_log off;
        }}
{extra_locations}
    }}
{tls_server}
}}
"""

_NGINX_TLS_SERVER = """
    server {{
        listen {host}:{port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache shared:TLS:1m;
        {client_auth}
        location / {{
            return 200 "hello\\n";
        }}
    }}
"""


STUB_STATUS_KEYS = ("active", "accepts", "handled", "requests", "reading", "writing",
                    "waiting")


def parse_stub_status(text: str) -> dict[str, int]:
    """nginx stub_status's page as a dict of its seven numbers:

        Active connections: 1
        server accepts handled requests
         5 5 7
        Reading: 0 Writing: 1 Waiting: 0
    """
    nums = [int(x) for x in re.findall(r"\d+", text)]
    return dict(zip(STUB_STATUS_KEYS, nums[:7], strict=True))


@dataclass(frozen=True)
class AccessLogEntry:
    msec: float  # wall-clock seconds (nginx $msec), not monotonic
    status: int
    request_length: int
    bytes_sent: int
    connection: int  # nginx connection serial number
    connection_requests: int
    tls_reused: bool  # nginx $ssl_session_reused: "r" on a resumed TLS session
    request: str  # the request line, e.g. "GET / HTTP/1.1"

    @classmethod
    def parse(cls, line: str) -> AccessLogEntry:
        msec, status, rlen, sent, conn, creqs, reused, request = line.split(" ", 7)
        return cls(
            float(msec), int(status), int(rlen), int(sent), int(conn), int(creqs),
            reused == "r", request.strip().strip('"'),
        )

    @property
    def path(self) -> str:
        parts = self.request.split(" ")
        return parts[1] if len(parts) > 1 else ""


class NginxServer:
    """nginx on 127.0.0.1:PORT with a private prefix directory.

    Locations: ``/`` -> 200 "hello\\n"; ``/64k`` -> a 65536-byte static file;
    ``/status`` -> stub_status (not logged).
    Attributes: ``url``, ``host``, ``port``, ``prefix``, ``conf_path``,
    ``access_log_path``, ``error_log_path``, ``proc``.
    """

    def __init__(self, proc: subprocess.Popen[bytes], port: int, prefix: Path) -> None:
        self.proc = proc
        self.host = LOCALHOST
        self.port = port
        self.url = f"http://{LOCALHOST}:{port}/"
        self.prefix = prefix
        self.unix_socket = str(prefix / "nginx.sock")  # the same server, on a Unix socket
        self.tls_port: int | None = None   # a second server with TLS (start_nginx(tls=...))
        self.tls_url: str | None = None
        self.conf_path = prefix / "nginx.conf"
        self.access_log_path = prefix / "access.log"
        self.error_log_path = prefix / "error.log"
        self.returncode: int | None = None
        self._status_queries = 0
        self._base_accepts = 0
        self._base_requests = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    # stub_status -----------------------------------------------------------------

    def _raw_status(self) -> dict[str, int]:
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=5)
        try:
            conn.request("GET", "/status", headers={"Connection": "close"})
            resp = conn.getresponse()
            text = resp.read().decode()
            if resp.status != 200:
                raise RuntimeError(f"nginx /status answered {resp.status}: {text!r}")
        finally:
            conn.close()
            # Counted even on failure: once connected, nginx accepted the connection.
            self._status_queries += 1
        return parse_stub_status(text)

    def _take_baseline(self) -> None:
        raw = self._raw_status()
        self._status_queries = 0
        self._base_accepts = raw["accepts"]
        self._base_requests = raw["requests"]

    def stub_status(self) -> dict[str, int]:
        """stub_status, corrected so it only reflects everyone else's traffic:
        ``accepts``, ``handled`` and ``requests`` since startup without the status
        queries; ``active`` and ``writing`` without this query's own connection."""
        raw = self._raw_status()
        k = self._status_queries
        return {
            **raw,
            "accepts": raw["accepts"] - self._base_accepts - k,
            "handled": raw["handled"] - self._base_accepts - k,
            "requests": raw["requests"] - self._base_requests - k,
            "active": raw["active"] - 1,
            "writing": raw["writing"] - 1,
        }

    def connections_accepted(self) -> int:
        """Connections nginx accepted since startup, minus the status queries'."""
        return self.stub_status()["accepts"]

    # access log ------------------------------------------------------------------

    def access_log_lines(self) -> list[str]:
        """Raw access-log lines (format NGINX_LOG_FORMAT), /status excluded."""
        try:
            text = self.access_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return [ln for ln in lines if AccessLogEntry.parse(ln).path != "/status"]

    def access_log_entries(self) -> list[AccessLogEntry]:
        return [AccessLogEntry.parse(ln) for ln in self.access_log_lines()]

    def requests_served(self, wait_for: int | None = None, timeout: float = 5.0) -> int:
        """Requests in the access log (not /status). With wait_for=N, poll until at
        least N are logged (or timeout), then return the count."""
        count = len(self.access_log_lines())
        if wait_for is None:
            return count
        deadline = time.monotonic() + timeout
        while count < wait_for and time.monotonic() < deadline:
            time.sleep(0.01)
            count = len(self.access_log_lines())
        return count

    def connections_in_log(self) -> int:
        """Distinct connections that carried at least one logged request."""
        return len({e.connection for e in self.access_log_entries()})

    def error_log_text(self) -> str:
        try:
            return self.error_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # lifecycle -------------------------------------------------------------------

    def stop(self, timeout: float = 5.0) -> int:
        """SIGQUIT (graceful), SIGKILL after `timeout` seconds (workers too)."""
        if self.returncode is None:
            workers = children_of(self.proc.pid)
            self.returncode = _stop_process(self.proc, signal.SIGQUIT, timeout)
            for pid in workers:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        return self.returncode


def children_of(pid: int) -> list[int]:
    """Direct children of pid (nginx workers), from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            out.append(int(entry.name))
    return out


def start_nginx(
    nginx_bin: str, prefix: Path, *, workers: int = 1, extra_locations: str = "",
    attempts: int = 5, timeout: float = 10.0, tls: PkiFiles | None = None,
    client_auth: bool = False,
) -> NginxServer:
    """Write a private config under prefix and start nginx on a free 127.0.0.1 port.

    Retries with another port if the picked one got taken in between.
    """
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "tmp").mkdir(exist_ok=True)
    www = prefix / "www"
    www.mkdir(exist_ok=True)
    (www / "64k").write_bytes(b"x" * SIZE_64K)
    # As root the workers would run as "nobody", who cannot enter pytest's 0700 tmp dirs.
    user_line = "user root;" if os.geteuid() == 0 else ""
    last_error = ""
    for _ in range(attempts):
        port = free_port()
        tls_port = free_port() if tls is not None else None
        tls_server = "" if tls is None else _NGINX_TLS_SERVER.format(
            host=LOCALHOST, port=tls_port, cert=tls.server_cert, key=tls.server_key,
            client_auth=(f"ssl_client_certificate {tls.client_ca}; ssl_verify_client on;"
                         if client_auth else ""))
        conf = _NGINX_CONF.format(
            workers=workers, user_line=user_line, prefix=prefix, host=LOCALHOST, port=port,
            log_format=NGINX_LOG_FORMAT, extra_locations=extra_locations,
            tls_server=tls_server,
        )
        conf_path = prefix / "nginx.conf"
        conf_path.write_text(conf)
        for name in ("nginx.pid", "access.log", "error.log"):
            with contextlib.suppress(FileNotFoundError):
                (prefix / name).unlink()
        error_log = prefix / "error.log"
        proc = subprocess.Popen(
            [nginx_bin, "-p", str(prefix), "-c", str(conf_path), "-e", str(error_log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        server = NginxServer(proc, port, prefix)
        server.tls_port = tls_port
        server.tls_url = f"https://localhost:{tls_port}/" if tls_port else None
        try:
            _wait_nginx_ready(server, timeout)
        except _NginxExited:
            last_error = server.error_log_text()
            server.stop()
            if "Address already in use" in last_error:
                continue
            raise RuntimeError(f"nginx exited at startup: {last_error}") from None
        except BaseException:
            server.stop()
            raise
        return server
    raise RuntimeError(f"nginx could not bind a free port in {attempts} attempts: {last_error}")


class _NginxExited(Exception):
    pass


def _wait_nginx_ready(server: NginxServer, timeout: float) -> None:
    """Wait for the pid file (written after the listen sockets exist), then take the
    stub_status baseline (which also proves a worker is answering)."""
    deadline = time.monotonic() + timeout
    pid_file = server.prefix / "nginx.pid"
    while True:
        if server.proc.poll() is not None:
            raise _NginxExited
        if pid_file.exists() and pid_file.read_text().strip():
            try:
                server._take_baseline()
                return
            except (OSError, http.client.HTTPException):
                pass
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"nginx not ready after {timeout}s; error log: {server.error_log_text()}"
            )
        time.sleep(0.02)


# Linux: SO_TIMESTAMPNS (== SCM_TIMESTAMPNS); Python's socket module does not name it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class ArrivalServer:
    """A minimal HTTP/1.1 keep-alive server that records each request's arrival time as
    stamped by the kernel (SO_TIMESTAMPNS) when its bytes reached the socket, so the
    server's own wake-up latency does not blur the measured spacing. Answers every
    request with an empty 200. Runs in a thread; one request per read (no pipelining)."""

    def __init__(self) -> None:
        import selectors
        import threading

        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOCALHOST, 0))
        self._listener.listen(1024)
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://{LOCALHOST}:{self.port}/"
        self.arrivals_ns: list[int] = []
        self.requests = 0
        self.connections = 0
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import struct

        response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        while not self._stop:
            for key, _ in self._sel.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    try:
                        conn, _ = self._listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.connections += 1
                    self._sel.register(conn, selectors.EVENT_READ, data=bytearray())
                    continue
                data, ancdata, _, _ = sock.recvmsg(65536, 1024)
                if not data:
                    self._sel.unregister(sock)
                    sock.close()
                    continue
                pending = key.data
                pending += data
                stamp = 0
                for level, kind, payload in ancdata:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", payload[:16])
                        stamp = sec * 1_000_000_000 + nsec
                # requests are complete at each header end (no bodies are sent here)
                n = pending.count(b"\r\n\r\n")
                del pending[: pending.rfind(b"\r\n\r\n") + 4 if n else 0]
                self.requests += n
                self.arrivals_ns.extend([stamp] * n)
                sock.sendall(response * n)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        for key in list(self._sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._sel.close()

    def __enter__(self) -> ArrivalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class PkiFiles:
    """A CA made for the tests, a server certificate it signed (localhost, 127.0.0.1),
    a second CA nobody trusts with its own server certificate, and a client CA with a
    client certificate. All PEM files, made with the openssl command."""

    ca: str
    server_cert: str
    server_key: str
    untrusted_ca: str
    untrusted_cert: str
    untrusted_key: str
    client_ca: str
    client_cert: str
    client_key: str


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


# a server certificate's extensions: valid for localhost and 127.0.0.1
SERVER_EXT = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"


def make_ca(d: Path, name: str) -> None:
    """A self-signed CA in d: NAME.pem, NAME.key."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_leaf(d: Path, name: str, ca: str, ext: str) -> None:
    """A certificate (CN=NAME, extensions ext) signed by the CA ca in d: NAME.pem,
    NAME.key."""
    (d / f"{name}.ext").write_text(ext)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem",
             "-extfile", f"{name}.ext", cwd=d)


def make_test_pki(d: Path) -> PkiFiles:
    d.mkdir(parents=True, exist_ok=True)
    for ca in ("test-ca", "untrusted-ca", "client-ca"):
        make_ca(d, ca)
    make_leaf(d, "server", "test-ca", SERVER_EXT)
    make_leaf(d, "untrusted", "untrusted-ca", SERVER_EXT)
    make_leaf(d, "client", "client-ca", "extendedKeyUsage=clientAuth\n")
    return PkiFiles(
        ca=str(d / "test-ca.pem"), server_cert=str(d / "server.pem"),
        server_key=str(d / "server.key"), untrusted_ca=str(d / "untrusted-ca.pem"),
        untrusted_cert=str(d / "untrusted.pem"), untrusted_key=str(d / "untrusted.key"),
        client_ca=str(d / "client-ca.pem"), client_cert=str(d / "client.pem"),
        client_key=str(d / "client.key"))
