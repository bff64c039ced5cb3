"""nginx with a private prefix and config (bench/nginx.conf.template), pinned to the
server's CPU; its stub_status."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import string
import subprocess
import time
from pathlib import Path

from servers import (
    SERVER_EXT,
    children_of,
    free_port,
    make_ca,
    make_leaf,
    parse_stub_status,
)

from . import BENCH

TEMPLATE = BENCH / "nginx.conf.template"
HOST = "127.0.0.1"
SIZE_64K = 64 * 1024
IDLE_WAIT_S = 20.0              # after a run, wait this long for nginx to close connections


class Nginx:
    """nginx with a private prefix (all temp paths inside it) on a free 127.0.0.1 port."""

    def __init__(self, binary: str, prefix: Path, pin_cpu: int | None) -> None:
        self.binary = binary
        self.prefix = prefix
        self.pin_cpu = pin_cpu
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.workers: list[int] = []
        self.status_calls = 0
        self.pinning: list[str] = []
        self.tls_port = 0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"https://localhost:{self.tls_port}/"

    @property
    def ca_file(self) -> str:
        return str(self.prefix / "pki" / "ca.pem")

    def _make_pki(self) -> None:
        """A CA (ca.pem) and a server certificate for localhost and 127.0.0.1 (server.pem,
        server.key), as the tests make them, with the openssl command."""
        pki = self.prefix / "pki"
        pki.mkdir(exist_ok=True)
        make_ca(pki, "ca")
        make_leaf(pki, "server", "ca", SERVER_EXT)

    def start(self, attempts: int = 5) -> None:
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        (self.prefix / "www").mkdir(exist_ok=True)
        (self.prefix / "www" / "64k").write_bytes(b"x" * SIZE_64K)
        if not (self.prefix / "pki" / "server.pem").exists():
            self._make_pki()
        template = string.Template(TEMPLATE.read_text())
        # as root, workers would run as nobody, who cannot enter the 0700 temp dir
        user_line = "user root;" if os.geteuid() == 0 else ""
        last = ""
        for attempt in range(attempts):
            # a restart tries the old port first: the clients' URLs carry it
            if attempt or not self.port:
                self.port = free_port()
                self.tls_port = free_port()
            conf = self.prefix / "nginx.conf"
            conf.write_text(template.substitute(PREFIX=str(self.prefix), PORT=self.port,
                                                TLS_PORT=self.tls_port, USER_LINE=user_line))
            with contextlib.suppress(FileNotFoundError):
                (self.prefix / "nginx.pid").unlink()
            argv = [self.binary, "-p", str(self.prefix), "-c", str(conf),
                    "-e", str(self.prefix / "error.log")]
            if self.pin_cpu is not None:
                argv = ["taskset", "-c", str(self.pin_cpu), *argv]
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ready(10.0):
                self._pin()
                return
            last = self.error_log()
            self.stop()
            if "Address already in use" not in last:
                break
        raise RuntimeError(f"nginx did not start: {last.strip()[-500:]}")

    def _wait_ready(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            pid_file = self.prefix / "nginx.pid"
            if pid_file.exists() and pid_file.read_text().strip():
                try:
                    self.status()
                    self.workers = children_of(self.proc.pid)
                    return bool(self.workers)
                except (OSError, http.client.HTTPException):
                    pass
            time.sleep(0.02)
        return False

    def _pin(self) -> None:
        """taskset -pc CPU for the master and each worker (they inherited it already)."""
        assert self.proc is not None
        if self.pin_cpu is None:
            return
        for pid in [self.proc.pid, *self.workers]:
            res = subprocess.run(["taskset", "-pc", str(self.pin_cpu), str(pid)],
                                 capture_output=True, text=True, timeout=10, check=False)
            self.pinning.append((res.stdout or res.stderr).strip().splitlines()[-1])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def error_log(self) -> str:
        try:
            return (self.prefix / "error.log").read_text(errors="replace")
        except OSError:
            return ""

    def status(self) -> dict[str, int]:
        """stub_status; each call is one request nginx counts (self.status_calls)."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            self.status_calls += 1
            conn.request("GET", "/status", headers={"Connection": "close"})
            resp = conn.getresponse()
            text = resp.read().decode()
        finally:
            conn.close()
        return parse_stub_status(text)

    def wait_idle(self, timeout: float = IDLE_WAIT_S) -> dict[str, int]:
        """Poll until only the status connection itself is active."""
        deadline = time.monotonic() + timeout
        st = self.status()
        while st["active"] > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            st = self.status()
        return st

    def stop(self) -> None:
        if self.proc is None:
            return
        workers = children_of(self.proc.pid) or self.workers
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.proc = None
