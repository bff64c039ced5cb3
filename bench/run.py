#!/usr/bin/env python3
"""Benchmark driver: hammer against its peers (wrk, wrk2, hey, ab, h2load) on nginx.

    python bench/run.py [--duration 10s] [--rounds 3] [--connections 64]
                        [--scenario NAME ...] [--client NAME ...]
                        [--wrk2 PATH | --wrk2-src DIR]
                        [--hammer-pythonpath DIR] [--baseline REF] [--json out.json]

nginx (one worker, private config from bench/nginx.conf.template, a private prefix in a
temp dir) runs pinned to CPU 0; every client runs pinned to CPU 1 (`taskset -c 1 ...`),
so each side has one core. Runs alternate over rounds (A B C A B C ...). For each run
the driver records what the client says it completed, what nginx says it served
(stub_status `requests` delta, minus the driver's own status queries), the client's CPU
time and peak RSS from the rusage of exactly that child (os.wait4), and the latency
percentiles the tool prints. With --baseline REF, every hammer client runs twice per
round, the second time as hammer-base (hammer as of REF, built into a temp dir), and the
tables give their paired ratio. See bench/README.md.

Standard library plus hammer, and tests/servers.py (standard library only) for what the
tests do alike: free ports, finding nginx and its workers, stub_status, the test PKI.
Every run is bounded: the tool stops itself after the
duration, and the driver SIGKILLs it (by pid) DURATION + 30 s after the start.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import re
import resource
import select
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hammer import units

HERE = Path(__file__).resolve().parent
# the tests' helpers for local servers (tests/ is not a package: its conftest does the same)
sys.path.insert(0, str(HERE.parent / "tests"))
from servers import (  # noqa: E402
    SERVER_EXT,
    children_of,
    find_nginx,
    free_port,
    make_ca,
    make_leaf,
    parse_stub_status,
)

TEMPLATE = HERE / "nginx.conf.template"
HOST = "127.0.0.1"
SERVER_CPU = 0
CLIENT_CPU = 1
HARD_TIMEOUT_EXTRA_S = 30.0
SIZE_64K = 64 * 1024
SMALL_BODY = b"hello\n"
OPEN_20K_RATE = 20_000
OPEN_MAX_FRACTION = 0.9
CALIBRATION_MAX_S = 3
THREADS_CPU_LIMIT = 1.10        # threads-2: CPU-µs/req with -t 2 may grow at most 10 %
# threads-2 judges a 10 % limit between two runs of the same tool, while one run's
# CPU-µs/req swings by +-10 % on a VM with steal: it runs at least this many rounds
THREADS_MIN_ROUNDS = 5
HAMMER_START_NOFILE = 1024      # hammer starts with this soft RLIMIT_NOFILE: it must raise it
IDLE_WAIT_S = 20.0              # after a run, wait this long for nginx to close connections
HELP_SAMPLES = 5
NOISE_FRAC = 0.10               # a run where others took > 10 % of either core is flagged
RSS_SAMPLE_S = 0.05             # how often the client's VmHWM is read while it runs

SCENARIOS = ("closed-64", "closed-1000", "open-20k", "open-max", "closed-10k", "64k",
             "https-64",
             "threads-2")
PEERS = ("wrk", "hey", "ab", "h2load", "wrk2")
HAMMERS = ("hammer", "hammer-base")     # tools: hammer, and the --baseline build of it
HAMMER_CLIENTS = ("hammer", "hammer-spin0", "hammer-t1", "hammer-t2")


def base_name(client: str) -> str:
    """The name of a hammer client's twin on the --baseline build: hammer-t1 -> hammer-base-t1."""
    return "hammer-base" + client.removeprefix("hammer")


ALL_CLIENTS = (*HAMMER_CLIENTS, *map(base_name, HAMMER_CLIENTS), *PEERS, "wrk-t1", "wrk-t2",
               "floor")
FLOOR_SOURCE = Path(__file__).resolve().parent / "floor.c"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------


@dataclass
class ProcResult:
    argv: list[str]
    returncode: int | None      # exit status; None when killed by a signal
    signal: int | None
    timed_out: bool
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kib: int             # ru_maxrss: includes the driver's RSS at fork (see vm_hwm_kib)
    hwm_kib: int                # the client's own peak RSS (VmHWM), sampled while it runs
    stdout: str
    stderr: str

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def _set_nofile(soft: int | None) -> Callable[[], None]:
    """A preexec_fn setting the child's soft RLIMIT_NOFILE (None: raise it to the hard
    limit, which peers need at 10,000 connections and cannot do themselves)."""

    def apply() -> None:
        cur_soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = hard if soft is None else min(soft, hard)
        if hard == resource.RLIM_INFINITY and soft is None:
            target = max(cur_soft, 1 << 20)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))

    return apply


def vm_hwm_kib(pid: int) -> int:
    """VmHWM of pid: the peak RSS of its address space since its last exec.

    Why not ru_maxrss alone: the kernel starts a forked child's RSS high-water mark at the
    parent's RSS and carries it across exec, so wait4's ru_maxrss of a small client reads
    as the driver's own RSS (about 14-20 MB). VmHWM only covers the exec'd image. It is
    sampled every RSS_SAMPLE_S while the client runs, so growth in its last moments can
    be missed."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_pinned(argv: Sequence[str], cpu: int | None, timeout_s: float, workdir: Path,
               nofile_soft: int | None = None,
               env: dict[str, str] | None = None) -> ProcResult:
    """Run argv (under `taskset -c CPU`, which execs it: the pid is the client's), wait
    for it with a hard timeout (SIGKILL by pid past it) and return its own rusage."""
    full = ["taskset", "-c", str(cpu), *argv] if cpu is not None else list(argv)
    out_path = workdir / "client.stdout"
    err_path = workdir / "client.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.monotonic()
        # own session: a Ctrl-C reaches only the driver, which then kills the client
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                preexec_fn=_set_nofile(nofile_soft), cwd=workdir,
                                env=env, start_new_session=True)
    timed_out = False
    pidfd = -1
    hwm = 0
    try:
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            pidfd = -1
        deadline = t0 + timeout_s
        poller = select.poll()
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        while True:
            hwm = max(hwm, vm_hwm_kib(proc.pid))
            if pidfd >= 0:
                if poller.poll(RSS_SAMPLE_S * 1000):
                    break
            elif os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                break
            else:
                time.sleep(RSS_SAMPLE_S)
            if time.monotonic() > deadline:
                timed_out = True
                if pidfd >= 0:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                else:
                    os.kill(proc.pid, signal.SIGKILL)
                break
        _, status, ru = os.wait4(proc.pid, 0)
    except BaseException:
        # Ctrl-C (or anything else) while a client runs: kill exactly that child
        with contextlib.suppress(OSError):
            if pidfd >= 0:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.wait4(proc.pid, 0)
        proc.returncode = -9
        raise
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    return ProcResult(
        argv=full, returncode=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        signal=sig, timed_out=timed_out, wall_s=wall, user_s=ru.ru_utime, sys_s=ru.ru_stime,
        maxrss_kib=ru.ru_maxrss, hwm_kib=hwm, stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


@dataclass
class HammerBuild:
    """Which hammer a hammer tool runs: the one `import hammer` finds (pythonpath None:
    the installed one, as the driver itself imports), or the one in a directory put first
    on PYTHONPATH (--hammer-pythonpath, or the --baseline build)."""

    tool: str                   # "hammer" or "hammer-base"
    pythonpath: str | None = None
    ref: str | None = None      # --baseline: the git ref given, and the commit it named
    commit: str | None = None
    package: str = ""           # hammer's package directory, as this build imports it

    def env(self) -> dict[str, str] | None:
        """The client's environment (None: the driver's own)."""
        if self.pythonpath is None:
            return None
        return {**os.environ, "PYTHONPATH": self.pythonpath}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hammer", *args]

    def describe(self) -> str:
        what = f"{self.ref} = {self.commit[:12]}, " if self.ref and self.commit else ""
        return f"{self.tool}: {what}{self.package}"


def compile_hammer(build: HammerBuild) -> str:
    """Find the build's package and byte-compile its modules, as pip does when it installs
    a wheel, so that no run pays for compiling them: an editable install with
    PYTHONDONTWRITEBYTECODE set would otherwise recompile every module at every start
    (about 70 ms of CPU here)."""
    import compileall

    found = subprocess.run([sys.executable, "-c", "import hammer; print(hammer.__file__)"],
                           env=build.env(), capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise RuntimeError(f"{build.tool}: cannot import hammer "
                           f"(PYTHONPATH={build.pythonpath}): {found.stderr.strip()[-300:]}")
    pkg = Path(found.stdout.strip()).resolve().parent
    build.package = str(pkg)
    ok = compileall.compile_dir(str(pkg), quiet=1)
    return (f"{build.describe()}: bytecode "
            + ("compiled" if ok else "NOT compiled (read-only?)"))


def build_hammer(ref: str, dest: Path, tool: str = "hammer-base") -> HammerBuild:
    """Build hammer as of git ref (C extension included) into dest/site, a `pip install
    --target` from `git archive REF`: neither the working tree nor the installed hammer is
    touched. Run it with PYTHONPATH=dest/site."""
    repo = HERE.parent
    rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                          f"{ref}^{{commit}}"], capture_output=True, text=True, check=False)
    if rev.returncode != 0:
        raise RuntimeError(f"--baseline {ref}: not a commit of the repository at {repo}")
    commit = rev.stdout.strip()
    src, site = dest / "src", dest / "site"
    src.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(repo), "archive", commit],
                               stdout=subprocess.PIPE)
    assert archive.stdout is not None
    untar = subprocess.run(["tar", "-x", "-C", str(src)], stdin=archive.stdout,
                           capture_output=True, text=True, check=False)
    archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0:
        raise RuntimeError(f"git archive {commit} | tar -x failed: {untar.stderr.strip()}")
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-input",
           "--disable-pip-version-check", "--quiet", "--target", str(site), str(src)]
    # with setuptools and Cython here, build with them (quicker, no index needed); else
    # pip's isolated build environment fetches what pyproject.toml requires
    if all(importlib.util.find_spec(m) for m in ("setuptools", "Cython")):
        pip.insert(4, "--no-build-isolation")
    t0 = time.monotonic()
    done = subprocess.run(pip, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"building {ref} ({commit[:12]}) failed: "
                           + " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:]))
    log(f"{tool}: built {ref} ({commit[:12]}) into {site} in {time.monotonic() - t0:.0f}s")
    return HammerBuild(tool, str(site), ref, commit)


WRK2_BUILD_TIMEOUT_S = 900


def build_wrk2(src: Path, scratch: Path) -> str:
    """Build wrk2 from a source tree (giltene/wrk2: a Makefile that builds its bundled
    LuaJIT, then links against the system's OpenSSL) and return the binary's path. `make`
    runs in src itself when it is writable (incremental: the next run of the bench finds it
    built), else in a copy under scratch. Raises RuntimeError with the end of make's output
    when it does not build."""
    if not (src / "Makefile").is_file():
        raise RuntimeError(f"--wrk2-src {src}: no Makefile there (a wrk2 source tree?)")
    make = shutil.which("make")
    if make is None or (shutil.which("cc") or shutil.which("gcc")) is None:
        raise RuntimeError("--wrk2-src: building wrk2 needs make and a C compiler "
                           "(apt-get install make gcc libssl-dev zlib1g-dev)")
    where = src
    if not os.access(src, os.W_OK):
        where = scratch / "wrk2-src"
        shutil.copytree(src, where, symlinks=True)
    t0 = time.monotonic()
    try:
        done = subprocess.run([make, f"-j{os.cpu_count() or 1}"], cwd=where,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              check=False, timeout=WRK2_BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"--wrk2-src: make in {where} did not finish in "
                           f"{WRK2_BUILD_TIMEOUT_S} s") from exc
    exe = where / "wrk"
    if done.returncode != 0 or not os.access(exe, os.X_OK):
        tail = done.stdout.strip().splitlines()[-15:]
        raise RuntimeError(f"--wrk2-src: make in {where} failed (exit {done.returncode}); "
                           "wrk2 needs libssl-dev and zlib1g-dev. The end of its output:\n  "
                           + "\n  ".join(tail))
    log(f"wrk2: built {exe} from {src} in {time.monotonic() - t0:.0f}s"
        + ("" if where == src else " (a copy: the source tree is not writable)"))
    return str(exe)


# -- nginx -----------------------------------------------------------------------------


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a live process, from /proc/PID/stat (0.0 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def cpu_stat() -> dict[int, tuple[float, float]]:
    """Per CPU: (busy seconds: user+nice+system+irq+softirq, steal seconds)."""
    out = {}
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            name, *vals = line.split()
            if name.startswith("cpu") and name != "cpu":
                v = [int(x) for x in vals[:8]]
                out[int(name[3:])] = ((v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK,
                                      v[7] / CLK_TCK)
    except (OSError, ValueError, IndexError):
        pass
    return out


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


# -- clients ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    url: str
    connections: int
    threads: int
    duration_s: int
    rate: int | None = None       # open loop at this many req/s
    spin: str | None = None       # hammer --spin
    hammer_extra: tuple[str, ...] = ()  # more hammer flags (e.g. --cacert for https)


@dataclass
class Parsed:
    completed: int | None = None  # responses the client counted
    errors: int | None = None
    duration_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _time_ms(value: str, unit: str) -> float:
    return float(value) * _TIME_UNITS[unit]


def _int(pattern: str, text: str) -> int | None:
    m = re.search(pattern, text, re.MULTILINE)
    return int(m.group(1)) if m else None


def _float(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text, re.MULTILINE)
    return float(m.group(1)) if m else None


def parse_hammer(out: str, err: str) -> Parsed:
    data = json.loads(out)
    counts = data["counts"]
    lat = data["latency_ms"]
    return Parsed(
        completed=counts["completed"], errors=counts["error"], duration_s=data["duration_s"],
        p50_ms=lat.get("p50"), p99_ms=lat.get("p99"),
        extra={
            "sent": counts["sent"], "scheduled": counts["scheduled"], "late": counts["late"],
            "unsent": counts["unsent"], "http_error": counts["http_error"],
            "achieved_rps": data["rate"]["achieved_rps"],
            "target_rps": data["rate"]["target_rps"],
            "latency_uncorrected_p99_ms": data["latency_uncorrected_ms"].get("p99"),
            "send_lag_p99_ms": data["send_lag_ms"].get("p99"),
            "errors": data["errors"], "saturated": data["saturated"], "notes": data["notes"],
        })


def _wrk_latency(text: str, pct: str) -> float | None:
    # wrk: "     50%  507.00us"; wrk2: " 50.000%    1.23ms" (first block: recorded latency)
    m = re.search(rf"^\s*{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.MULTILINE)
    return _time_ms(m.group(1), m.group(2)) if m else None


def parse_wrk(out: str, err: str) -> Parsed:
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out, re.MULTILINE)
    if not m:
        raise ValueError("no 'N requests in' line")
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    sock_errors = sum(int(g) for g in sock.groups()) if sock else 0
    non2xx = _int(r"Non-2xx or 3xx responses: (\d+)", out) or 0
    return Parsed(
        completed=int(m.group(1)), errors=sock_errors,
        duration_s=_time_ms(m.group(2), m.group(3)) / 1e3,
        p50_ms=_wrk_latency(out, "50"), p99_ms=_wrk_latency(out, "99"),
        extra={"non_2xx_3xx": non2xx, "socket_errors": sock_errors,
               "requests_per_s": _float(r"^Requests/sec:\s+([\d.]+)", out)})


def parse_hey(out: str, err: str) -> Parsed:
    statuses = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    if not statuses and "Summary:" not in out:
        raise ValueError("no hey summary")
    err_block = out.split("Error distribution:", 1)[1] if "Error distribution:" in out else ""
    errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]\s", err_block, re.MULTILINE))

    def pct(p: str) -> float | None:
        v = _float(rf"^\s*{p}% in ([\d.]+) secs", out)
        return v * 1e3 if v is not None else None

    return Parsed(
        completed=sum(statuses.values()), errors=errors,
        duration_s=_float(r"^\s*Total:\s+([\d.]+) secs", out), p50_ms=pct("50"),
        p99_ms=pct("99"),
        extra={"status": statuses, "requests_per_s": _float(r"Requests/sec:\s+([\d.]+)", out)})


def parse_ab(out: str, err: str) -> Parsed:
    done = _int(r"^Complete requests:\s+(\d+)", out)
    if done is None:
        raise ValueError("no 'Complete requests' line")
    return Parsed(
        completed=done, errors=_int(r"^Failed requests:\s+(\d+)", out),
        duration_s=_float(r"^Time taken for tests:\s+([\d.]+) seconds", out),
        p50_ms=_float(r"^\s*50%\s+([\d.]+)", out), p99_ms=_float(r"^\s*99%\s+([\d.]+)", out),
        extra={"keep_alive_requests": _int(r"^Keep-Alive requests:\s+(\d+)", out),
               "non_2xx": _int(r"^Non-2xx responses:\s+(\d+)", out) or 0,
               "percentiles_note": "ab prints whole milliseconds"})


def parse_floor(out: str, err: str) -> Parsed:
    """bench/floor.c: `requests N`, `errors N`, `seconds S` (the load phase)."""
    done = _int(r"^requests (\d+)$", out)
    if done is None:
        raise ValueError("no 'requests N' line")
    return Parsed(completed=done, errors=_int(r"^errors (\d+)$", out) or 0,
                  duration_s=_float(r"^seconds ([\d.]+)$", out))


def compile_floor(workdir: Path) -> str | None:
    """Build bench/floor.c (the bare C client that marks the kernel's floor); None if
    there is no C compiler or it fails."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    exe = workdir / "floor"
    done = subprocess.run([cc, "-O2", "-o", str(exe), str(FLOOR_SOURCE)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        log(f"floor.c did not compile: {done.stderr.strip()[:500]}")
        return None
    return str(exe)


def parse_h2load(out: str, err: str) -> Parsed:
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    if not m:
        raise ValueError("no 'requests: N total' line")
    total, started, done, ok, failed, errored, tmo = (int(g) for g in m.groups())
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    return Parsed(
        completed=done, errors=errored + tmo,
        duration_s=_float(r"finished in ([\d.]+)s", out),
        extra={"total": total, "started": started, "succeeded": ok, "failed": failed,
               "mean_ms": _time_ms(mean.group(1), mean.group(2)) if mean else None,
               "percentiles_note": "h2load prints no percentiles (min/max/mean/sd only)"})


@dataclass(frozen=True)
class Client:
    name: str          # as reported (hammer, hammer-spin0, wrk, ...)
    tool: str          # which binary / parser
    params: Params


class Tools:
    """Where each tool is, and how to run it."""

    def __init__(self, wrk2: str | None, floor: str | None = None,
                 hammers: dict[str, HammerBuild] | None = None) -> None:
        self.hammers = hammers or {"hammer": HammerBuild("hammer")}
        self.paths: dict[str, str | None] = {
            "wrk": shutil.which("wrk"), "hey": shutil.which("hey"), "ab": shutil.which("ab"),
            "h2load": shutil.which("h2load"),
            **{t: sys.executable if t in self.hammers else None for t in HAMMERS},
            "wrk2": wrk2 if wrk2 and os.access(wrk2, os.X_OK) else None,
            "floor": floor,
        }
        self.wrk2_requested = wrk2

    def with_baseline(self, clients: list[Client]) -> list[Client]:
        """With --baseline, each hammer client followed by its twin on the baseline build:
        the same arguments, run right after it in every round, so the rounds pair them."""
        if self.paths["hammer-base"] is None:
            return clients
        out = []
        for c in clients:
            out.append(c)
            if c.tool == "hammer":
                out.append(Client(base_name(c.name), "hammer-base", c.params))
        return out

    def env(self, c: Client) -> dict[str, str] | None:
        """The client's environment: a hammer build's PYTHONPATH, else the driver's own."""
        build = self.hammers.get(c.tool)
        return build.env() if build else None

    def offer(self, tool: str, clients: list[Client], notes: list[str],
              *candidates: Client) -> bool:
        """Add the candidates (runs of `tool`) when the tool is here, else a note why not."""
        if self.paths[tool] is None:
            notes.append(self.missing_note(tool))
            return False
        clients.extend(candidates)
        return True

    def missing_note(self, tool: str) -> str:
        if tool == "floor":
            return "floor: not run (bench/floor.c did not compile: no cc?)"
        if tool == "wrk2":
            if self.wrk2_requested:
                return f"wrk2: {self.wrk2_requested} is not executable; skipped"
            return "wrk2: not run (pass --wrk2 PATH or --wrk2-src DIR)"
        hint = {"ab": "apt-get install apache2-utils", "h2load": "apt-get install nghttp2-client",
                "hey": "apt-get install hey", "wrk": "apt-get install wrk"}.get(tool, "")
        return f"{tool}: not installed ({hint}); skipped"

    def argv(self, c: Client) -> list[str]:
        p = c.params
        exe = self.paths[c.tool]
        assert exe is not None
        if c.tool in HAMMERS:
            argv = [exe, "-m", "hammer", "run", p.url, "-c", str(p.connections),
                    "-t", str(p.threads), "-d", f"{p.duration_s}s", "--json", "-", "-q"]
            if p.rate is not None:
                argv += ["-r", str(p.rate)]
            if p.spin is not None:
                argv += ["--spin", p.spin]
            return argv + list(p.hammer_extra)
        if c.tool == "wrk":
            return [exe, f"-t{p.threads}", f"-c{p.connections}", f"-d{p.duration_s}s",
                    "--latency", p.url]
        if c.tool == "wrk2":
            return [exe, f"-t{p.threads}", f"-c{p.connections}", f"-d{p.duration_s}s",
                    f"-R{p.rate}", "--latency", p.url]
        if c.tool == "hey":
            return [exe, "-z", f"{p.duration_s}s", "-c", str(p.connections), p.url]
        if c.tool == "ab":
            return [exe, "-k", "-c", str(p.connections), "-t", str(p.duration_s),
                    "-n", "100000000", p.url]
        if c.tool == "h2load":
            return [exe, "--h1", "-c", str(p.connections), "-t", str(p.threads),
                    "-D", str(p.duration_s), p.url]
        if c.tool == "floor":
            u = urllib.parse.urlsplit(p.url)
            return [exe, u.hostname or "", str(u.port), u.path or "/", str(p.connections),
                    str(p.duration_s)]
        raise ValueError(c.tool)


PARSERS: dict[str, Callable[[str, str], Parsed]] = {
    "hammer": parse_hammer, "hammer-base": parse_hammer, "wrk": parse_wrk, "wrk2": parse_wrk,
    "hey": parse_hey, "ab": parse_ab, "h2load": parse_h2load, "floor": parse_floor,
}


# -- scenarios -------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    description: str
    clients: list[Client]
    notes: list[str] = field(default_factory=list)


def closed_peers(tools: Tools, base: Params, scenario: str) -> tuple[list[Client], list[str]]:
    """hammer plus every closed-loop peer that can express `base`."""
    clients = [Client("hammer", "hammer", base)]
    notes = []
    for tool in ("wrk", "hey", "ab", "h2load"):
        if scenario == "closed-10k" and tool == "ab":
            notes.append("ab: skipped at 10,000 connections (not run at this scale, per the "
                         "benchmark spec)")
            continue
        if scenario == "closed-10k" and tool == "hey":
            notes.append("hey: skipped at 10,000 connections: its transport keeps at most "
                         "500 idle connections per host, so it cannot hold 10,000 keep-alive "
                         "connections")
            continue
        tools.offer(tool, clients, notes, Client(tool, tool, base))
    if tools.offer("floor", clients, notes, Client("floor", "floor", base)):
        notes.append("floor: bench/floor.c, a bare C client (one write and one read per "
                     "request, no parsing, no measurement): the kernel's share, not a peer")
    if tools.paths["wrk2"] is not None:
        notes.append("wrk2: skipped (it has no closed-loop mode: -R is required)")
    return clients, notes


def build_scenario(name: str, tools: Tools, base_url: str, conns: int,
                   duration_s: int, open_max_rate: int | None, nginx_tls_url: str = "",
                   ca_file: str = "") -> Scenario:
    small = base_url + "/"
    p = Params(small, conns, 1, duration_s)
    if name == "closed-64":
        clients, notes = closed_peers(tools, p, name)
        return Scenario(name, f"closed loop, keep-alive, {conns} connections, 1 thread, "
                              f"GET / ({len(SMALL_BODY)}-byte body)", clients, notes)
    if name == "closed-1000":
        clients, notes = closed_peers(tools, Params(small, 1000, 1, duration_s), name)
        return Scenario(name, "closed loop, keep-alive, 1,000 connections, 1 thread, GET /",
                        clients, notes)
    if name == "https-64":
        hp = Params(nginx_tls_url, conns, 1, duration_s, hammer_extra=("--cacert", ca_file))
        clients = [Client("hammer", "hammer", hp)]
        notes = ["hammer verifies the certificate (--cacert); wrk does not verify"]
        tools.offer("wrk", clients, notes, Client("wrk", "wrk", hp))
        return Scenario(name, f"closed loop, HTTPS (TLS 1.2, keep-alive), {conns} "
                              f"connections, 1 thread, GET /", clients, notes)
    if name == "64k":
        clients, notes = closed_peers(tools, Params(base_url + "/64k", conns, 1, duration_s),
                                      name)
        return Scenario(name, f"closed loop, keep-alive, {conns} connections, 1 thread, "
                              f"GET /64k (65,536-byte static file)", clients, notes)
    if name == "closed-10k":
        clients, notes = closed_peers(tools, Params(small, 10_000, 1, duration_s), name)
        notes.append(f"hammer starts with soft RLIMIT_NOFILE {HAMMER_START_NOFILE} and must "
                     "raise it itself; peers start with the soft limit at the hard limit")
        return Scenario(name, "closed loop, 10,000 concurrent keep-alive connections, "
                              "1 thread, GET /", clients, notes)
    if name == "threads-2":
        two = Params(small, conns, 2, duration_s)
        clients = [Client("hammer-t1", "hammer", p), Client("hammer-t2", "hammer", two)]
        notes = ["checks that hammer's CPU-µs/request does not grow > 10 % with -t 2"]
        # the same pair for wrk: what two threads time-sharing one core cost any client
        tools.offer("wrk", clients, notes, Client("wrk-t1", "wrk", p),
                    Client("wrk-t2", "wrk", two))
        return Scenario(name, f"closed loop, {conns} connections, -t 1 vs -t 2 (both "
                              f"pinned to CPU {CLIENT_CPU}: the two threads share one core)",
                        clients, notes)
    if name in ("open-20k", "open-max"):
        rate = OPEN_20K_RATE if name == "open-20k" else open_max_rate
        notes = []
        if rate is None:
            return Scenario(name, "open loop near the server's max", [],
                            ["skipped: the closed-loop calibration run failed"])
        op = Params(small, conns, 1, duration_s, rate=rate)
        clients = [Client("hammer", "hammer", op)]
        if name == "open-20k":
            clients = [Client("hammer", "hammer", Params(small, conns, 1, duration_s, rate,
                                                         "1ms")),
                       Client("hammer-spin0", "hammer",
                              Params(small, conns, 1, duration_s, rate, "0"))]
        tools.offer("wrk2", clients, notes, Client("wrk2", "wrk2", op))
        notes.append("wrk, hey, ab, h2load: skipped (no open-loop mode: hey -q throttles each "
                     "worker of a closed loop, h2load --rate paces connections)")
        desc = (f"open loop at {rate:,} req/s, {conns} connections, 1 thread, GET /"
                + (f" ({OPEN_MAX_FRACTION:.0%} of hammer's closed-loop max)"
                   if name == "open-max" else ""))
        return Scenario(name, desc, clients, notes)
    raise ValueError(name)


# -- one run ---------------------------------------------------------------------------


@dataclass
class RunRecord:
    scenario: str
    client: str
    round: int
    argv: list[str]
    ok: bool
    failure: str | None
    client_completed: int | None
    client_errors: int | None
    server_requests: int | None
    server_minus_client: int | None
    duration_s: float | None
    requests_per_s: float | None
    cpu_user_s: float
    cpu_sys_s: float
    cpu_us_per_request: float | None
    maxrss_kib: int                 # ru_maxrss from wait4 (inflated by the fork: see vm_hwm_kib)
    peak_rss_kib: int               # the client's own VmHWM (ru_maxrss if it could not be read)
    p50_ms: float | None
    p99_ms: float | None
    wall_s: float
    extra: dict[str, Any]
    machine: dict[str, Any]      # nginx CPU, and CPU time of others on the two cores

    @property
    def noise(self) -> float:
        """The largest share of a core that others used during the run, or that the
        hypervisor stole from it (a VM's steal time), on either core."""
        return max(self.machine.get(f"{core}_core_{what}_frac", 0.0)
                   for core in ("server", "client") for what in ("other", "steal"))


def do_run(nginx: Nginx, tools: Tools, scenario: str, client: Client, rnd: int,
           workdir: Path, client_cpu: int | None) -> RunRecord:
    if not nginx.alive():
        log("  nginx is gone: restarting it")
        nginx.start()
    nginx.wait_idle()
    before = nginx.status()["requests"]
    calls0 = nginx.status_calls
    argv = tools.argv(client)
    nofile = HAMMER_START_NOFILE if client.tool in HAMMERS else None
    srv0 = sum(proc_cpu_s(pid) for pid in nginx.workers)
    cpus0 = cpu_stat()
    res = run_pinned(argv, client_cpu, client.params.duration_s + HARD_TIMEOUT_EXTRA_S,
                     workdir, nofile_soft=nofile, env=tools.env(client))
    cpus1 = cpu_stat()
    srv_cpu = sum(proc_cpu_s(pid) for pid in nginx.workers) - srv0
    # CPU time on the two cores that neither nginx nor the client accounts for: other
    # processes (noise), plus kernel work charged to no task (softirq, some loopback TCP)
    machine: dict[str, Any] = {"server_cpu_s": srv_cpu}
    for label, cpu, own in (("server", nginx.pin_cpu, srv_cpu), ("client", client_cpu,
                                                                  res.cpu_s)):
        if cpu is not None and cpu in cpus0 and cpu in cpus1:
            busy = cpus1[cpu][0] - cpus0[cpu][0]
            machine[f"{label}_core_busy_s"] = busy
            machine[f"{label}_core_other_frac"] = max(busy - own, 0.0) / res.wall_s
            steal = cpus1[cpu][1] - cpus0[cpu][1]
            machine[f"{label}_core_steal_s"] = steal
            machine[f"{label}_core_steal_frac"] = steal / res.wall_s
    server: int | None = None
    try:
        nginx.wait_idle()
        after = nginx.status()["requests"]
        server = after - before - (nginx.status_calls - calls0)
    except (OSError, http.client.HTTPException) as exc:
        log(f"  stub_status failed after the run: {exc}")
    failure = None
    parsed = Parsed()
    if res.timed_out:
        failure = f"hard timeout: killed after {res.wall_s:.1f}s"
    elif res.returncode != 0 and not (client.tool in HAMMERS and res.returncode == 3):
        # hammer's exit 3: the run completed, but the generator fell behind its schedule
        # (the report says why: send lag, unsent); a measurement, not a failure
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        how = (f"exit {res.returncode}" if res.returncode is not None
               else f"killed by {signal.Signals(res.signal or 9).name}")
        failure = f"{how}: {tail or '(no output)'}"
    try:
        parsed = PARSERS[client.tool](res.stdout, res.stderr)
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        failure = failure or f"could not parse the output: {exc}: " + " | ".join(
            (res.stderr or res.stdout).strip().splitlines()[-3:])
    completed = parsed.completed
    dur = parsed.duration_s or float(client.params.duration_s)
    cpu_us = res.cpu_s * 1e6 / completed if completed else None
    machine["server_busy_frac"] = srv_cpu / dur if dur else None
    machine["server_cpu_us_per_request"] = srv_cpu * 1e6 / server if server else None
    return RunRecord(
        scenario=scenario, client=client.name, round=rnd, argv=res.argv,
        ok=failure is None and bool(completed), failure=failure or (
            None if completed else "no request completed"),
        client_completed=completed, client_errors=parsed.errors, server_requests=server,
        server_minus_client=(server - completed
                             if server is not None and completed is not None else None),
        duration_s=parsed.duration_s,
        requests_per_s=completed / dur if completed and dur else None,
        cpu_user_s=res.user_s, cpu_sys_s=res.sys_s, cpu_us_per_request=cpu_us,
        maxrss_kib=res.maxrss_kib, peak_rss_kib=res.hwm_kib or res.maxrss_kib,
        p50_ms=parsed.p50_ms, p99_ms=parsed.p99_ms,
        wall_s=res.wall_s, extra=parsed.extra, machine=machine,
    )


def failed_run(scenario: str, client: Client, rnd: int, why: str) -> RunRecord:
    """A run that could not be carried out at all (nginx gone, cannot start the tool)."""
    return RunRecord(
        scenario=scenario, client=client.name, round=rnd, argv=[], ok=False, failure=why,
        client_completed=None, client_errors=None, server_requests=None,
        server_minus_client=None, duration_s=None, requests_per_s=None, cpu_user_s=0.0,
        cpu_sys_s=0.0, cpu_us_per_request=None, maxrss_kib=0, peak_rss_kib=0, p50_ms=None,
        p99_ms=None, wall_s=0.0, extra={}, machine={})


def describe(r: RunRecord) -> str:
    if not r.ok:
        return f"FAILED: {r.failure}"
    agree = ("server agrees" if r.server_minus_client == 0
             else f"server-client {r.server_minus_client:+,}"
             if r.server_minus_client is not None else "server count unknown")
    busy = r.machine.get("server_busy_frac")
    noisy = (f", NOISY: others used or the host stole {r.noise:.0%} of a core"
             if r.noise > NOISE_FRAC else "")
    return (f"{r.client_completed:,} req, {r.requests_per_s or 0:,.0f}/s, CPU "
            f"{r.cpu_user_s + r.cpu_sys_s:.2f}s = {r.cpu_us_per_request:.2f} µs/req, "
            f"RSS {r.peak_rss_kib / 1024:.1f} MB, {agree}, nginx busy "
            f"{_fmt(_pct(busy), '.0f')}%{noisy}")


# -- summary ---------------------------------------------------------------------------


def _med(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _pct(v: float | None) -> float | None:
    return v * 100 if v is not None else None


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


@dataclass
class ClientSummary:
    client: str
    runs: int
    ok_runs: int
    rps_median: float | None
    cpu_us_median: float | None
    cpu_us_min: float | None
    cpu_us_max: float | None
    cpu_us_net_median: float | None  # hammer: minus its fixed per-run cost (start-up, report)
    rss_mb_peak: float | None
    p50_ms_median: float | None
    p99_ms_median: float | None
    server_minus_client: list[int | None]
    server_busy_median: float | None    # nginx worker CPU ÷ load-phase duration
    noisy_runs: int                     # runs where others took > NOISE_FRAC of a core
    failures: list[str]
    extra: dict[str, Any]
    cpu_us_by_round: dict[int, float] = field(default_factory=dict)


def summarise(runs: list[RunRecord], clients: list[Client],
              fixed_cpu_s: dict[str, float | None]) -> list[ClientSummary]:
    """Per client, in the order given. fixed_cpu_s: each hammer build's fixed per-run CPU
    (by tool; None when it could not be measured), subtracted for the net* column."""
    out = []
    for client in clients:
        name = client.name
        mine = [r for r in runs if r.client == name]
        good = [r for r in mine if r.ok]
        cpu = [r.cpu_us_per_request for r in good if r.cpu_us_per_request is not None]
        net = None
        fixed = fixed_cpu_s.get(client.tool)
        if fixed is not None:
            net = _med([max(r.cpu_user_s + r.cpu_sys_s - fixed, 0.0) * 1e6
                        / r.client_completed for r in good if r.client_completed])
        extra: dict[str, Any] = {}
        if good and "late" in good[0].extra and good[0].extra.get("target_rps"):
            extra = {
                "achieved_rps_median": _med([r.extra["achieved_rps"] for r in good]),
                "late_max": max(r.extra["late"] for r in good),
                "unsent_max": max(r.extra["unsent"] for r in good),
                "send_lag_p99_ms_median": _med([r.extra["send_lag_p99_ms"] for r in good]),
                "server_vs_sent": [(r.server_requests - r.extra["sent"])
                                   if r.server_requests is not None else None for r in good],
            }
        out.append(ClientSummary(
            client=name, runs=len(mine), ok_runs=len(good),
            rps_median=_med([r.requests_per_s for r in good]),
            cpu_us_median=_med(cpu), cpu_us_min=min(cpu) if cpu else None,
            cpu_us_max=max(cpu) if cpu else None, cpu_us_net_median=net,
            rss_mb_peak=max(r.peak_rss_kib for r in good) / 1024 if good else None,
            p50_ms_median=_med([r.p50_ms for r in good]),
            p99_ms_median=_med([r.p99_ms for r in good]),
            server_minus_client=[r.server_minus_client for r in good],
            server_busy_median=_med([r.machine.get("server_busy_frac") for r in good]),
            noisy_runs=sum(1 for r in good if r.noise > NOISE_FRAC),
            failures=[f"round {r.round}: {r.failure}" for r in mine if not r.ok],
            extra=extra,
            cpu_us_by_round={r.round: r.cpu_us_per_request for r in good
                             if r.cpu_us_per_request is not None},
        ))
    return out


def _agreement(diffs: list[int | None]) -> str:
    if not diffs:
        return "-"
    if all(d == 0 for d in diffs):
        return "exact"
    return "/".join("?" if d is None else f"{d:+,}" for d in diffs)


def _paired(a: ClientSummary, b: ClientSummary) -> str:
    """a's CPU-µs/req over b's, round by round: the two ran back to back, so the
    machine's drift between rounds (steal, frequency) cancels out of each ratio."""
    ratios = sorted(a.cpu_us_by_round[r] / b.cpu_us_by_round[r]
                    for r in a.cpu_us_by_round if r in b.cpu_us_by_round)
    if len(ratios) < 2:
        return ""
    return (f"; paired by round x{statistics.median(ratios):.2f} "
            f"({ratios[0]:.2f}-{ratios[-1]:.2f}, {len(ratios)} rounds)")


def _ratio_line(a: ClientSummary, b: ClientSummary) -> str:
    """a against b: CPU-µs/req (and net*: a's against b's net*, or b's raw figure when b
    has none) and req/s, as the ratio of the medians and paired round by round."""
    assert a.cpu_us_median is not None and b.cpu_us_median is not None
    rps = a.rps_median / b.rps_median if a.rps_median is not None and b.rps_median else None
    b_net = b.cpu_us_net_median if b.cpu_us_net_median is not None else b.cpu_us_median
    net = a.cpu_us_net_median / b_net if a.cpu_us_net_median is not None and b_net else None
    return (f"{a.client}/{b.client}: CPU-µs/req x{a.cpu_us_median / b.cpu_us_median:.2f} "
            f"(net* x{_fmt(net, '.2f')}), req/s x{_fmt(rps, '.2f')}" + _paired(a, b))


def baseline_ratios(summaries: list[ClientSummary]) -> list[str]:
    """Each hammer client against its twin on the --baseline build (below 1: the change
    made hammer cheaper)."""
    by = {s.client: s for s in summaries}
    out = []
    for s in summaries:
        base = by.get(base_name(s.client)) if s.client in HAMMER_CLIENTS else None
        if base is not None and s.cpu_us_median and base.cpu_us_median:
            out.append(_ratio_line(s, base))
    return out


def render_table(sc: Scenario, summaries: list[ClientSummary],
                 reference: dict[str, ClientSummary] | None) -> str:
    lines = [f"== {sc.name}: {sc.description}"]
    header = (f"  {'client':<17} {'req/s':>10} {'CPU-µs/req (min-max)':>24} {'net*':>6} "
              f"{'RSS MB':>7} {'p50 ms':>7} {'p99 ms':>7} {'nginx%':>6}  "
              f"{'server-client':<14} runs")
    lines.append(header)
    for s in summaries:
        cpu = (f"{_fmt(s.cpu_us_median, '.2f')} ({_fmt(s.cpu_us_min, '.2f')}-"
               f"{_fmt(s.cpu_us_max, '.2f')})") if s.cpu_us_median is not None else "-"
        lines.append(
            f"  {s.client:<17} {_fmt(s.rps_median, ',.0f'):>10} {cpu:>24} "
            f"{_fmt(s.cpu_us_net_median, '.2f'):>6} {_fmt(s.rss_mb_peak, '.1f'):>7} "
            f"{_fmt(s.p50_ms_median, '.3f'):>7} "
            f"{_fmt(s.p99_ms_median, '.3f'):>7} "
            f"{_fmt(_pct(s.server_busy_median), '.0f'):>6}  "
            f"{_agreement(s.server_minus_client):<14} "
            f"{s.ok_runs}/{s.runs}" + (f" ({s.noisy_runs} noisy)" if s.noisy_runs else ""))
    for s in summaries:
        if s.extra:
            e = s.extra
            lines.append(
                f"  {s.client}: achieved {_fmt(e['achieved_rps_median'], ',.0f')}/s, "
                f"late max {e['late_max']:,}, unsent max {e['unsent_max']:,}, send-lag p99 "
                f"{_fmt(e['send_lag_p99_ms_median'], '.3f')} ms, server vs sent "
                f"{_agreement(e['server_vs_sent'])}")
        for f in s.failures:
            lines.append(f"  {s.client} {f}")
    by = {s.client: s for s in summaries}
    hammers = [s for s in summaries if s.client in HAMMER_CLIENTS and s.cpu_us_median]
    peers = [s for s in summaries if not s.client.startswith("hammer") and s.cpu_us_median]
    for h in hammers:
        for p in peers:
            if h.client[-3:-1] == p.client[-3:-1] == "-t" and h.client[-1] != p.client[-1]:
                continue  # threads-2: compare like thread counts only
            lines.append(f"  {_ratio_line(h, p)}")
    lines.extend(f"  {line}" for line in baseline_ratios(summaries))
    if sc.name == "threads-2":
        for tool in ("hammer", "hammer-base", "wrk"):
            one, two = by.get(f"{tool}-t1"), by.get(f"{tool}-t2")
            if not (one and two and one.cpu_us_median and two.cpu_us_median):
                continue
            growth = two.cpu_us_median / one.cpu_us_median
            line = f"  {tool} -t 2 vs -t 1: CPU-µs/req x{growth:.2f}{_paired(two, one)}"
            if tool == "hammer":  # the target; wrk's pair is the reference
                line += (f" (limit x{THREADS_CPU_LIMIT:.2f}): "
                         + ("OK" if growth <= THREADS_CPU_LIMIT else "FAIL (> +10 %)"))
            lines.append(line)
    if sc.name == "closed-10k" and reference:
        for s in summaries:
            ref = reference.get(s.client)
            if ref and ref.cpu_us_median and s.cpu_us_median and ref.rss_mb_peak and \
                    s.rss_mb_peak:
                lines.append(
                    f"  {s.client} vs its closed-64: CPU-µs/req x"
                    f"{s.cpu_us_median / ref.cpu_us_median:.2f}, peak RSS "
                    f"{ref.rss_mb_peak:.1f} -> {s.rss_mb_peak:.1f} MB")
    if any(s.noisy_runs for s in summaries):
        lines.append(f"  noisy: other processes used, or the hypervisor stole (steal time), "
                     f"> {NOISE_FRAC:.0%} of the server's or the client's core during the "
                     "run: figures unreliable")
    if any(s.cpu_us_net_median is not None for s in summaries):
        lines.append("  net*: hammer's CPU minus its fixed per-run cost (interpreter start-up, "
                     "imports, report; see the 'fixed cost' line), per request")
    lines.extend(f"  note: {n}" for n in sc.notes)
    return "\n".join(lines)


# -- the rest --------------------------------------------------------------------------


def help_timing(workdir: Path, cpu: int | None, build: HammerBuild) -> dict[str, Any]:
    """`python -m hammer --help`: wall time, median of HELP_SAMPLES."""
    walls, cpus, bare = [], [], []
    ok = True
    for _ in range(HELP_SAMPLES):
        res = run_pinned(build.command("--help"), cpu, 30, workdir, env=build.env())
        ok = ok and res.returncode == 0
        walls.append(res.wall_s)
        cpus.append(res.cpu_s)
        # the interpreter alone, with the same site-packages (.pth files run at start-up)
        bare.append(run_pinned([sys.executable, "-c", "pass"], cpu, 30, workdir).wall_s)
    return {"command": f"{sys.executable} -m hammer --help", "ok": ok,
            "wall_s_median": statistics.median(walls), "wall_s": walls,
            "cpu_s_median": statistics.median(cpus),
            "bare_python_wall_s_median": statistics.median(bare)}


def hammer_fixed_cost(url: str, workdir: Path, cpu: int | None,
                      build: HammerBuild) -> dict[str, Any]:
    """CPU of a 1-request hammer run (median of 3): interpreter start, imports, report.
    CPU-µs/request includes this per-run cost; it matters in short runs."""
    argv = build.command("run", url, "-n", "1", "-c", "1", "--json", "-", "-q")
    samples = [run_pinned(argv, cpu, 60, workdir, env=build.env()) for _ in range(3)]
    return {"ok": all(r.returncode == 0 for r in samples),
            "cpu_s": statistics.median(r.cpu_s for r in samples),
            "wall_s": statistics.median(r.wall_s for r in samples),
            "cpu_s_samples": [r.cpu_s for r in samples],
            "peak_rss_kib": max(r.hwm_kib or r.maxrss_kib for r in samples)}


def calibrate(nginx: Nginx, tools: Tools, conns: int, duration_s: int, workdir: Path,
              cpu: int | None) -> tuple[int | None, RunRecord]:
    d = max(1, min(duration_s, CALIBRATION_MAX_S))
    client = Client("hammer", "hammer", Params(nginx.base_url + "/", conns, 1, d))
    rec = do_run(nginx, tools, "open-max/calibration", client, 0, workdir, cpu)
    if not rec.ok or not rec.requests_per_s:
        return None, rec
    return int(rec.requests_per_s * OPEN_MAX_FRACTION), rec


def parse_duration(text: str) -> int:
    ns = units.parse_duration_ns(text)
    secs = -(-ns // 1_000_000_000)
    if secs * 1_000_000_000 != ns:
        log(f"note: --duration {text} rounded up to {secs}s (ab and h2load take whole seconds)")
    return int(secs)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", default="10s", help="length of each run (default 10s)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--connections", type=int, default=64,
                    help="connections for closed-64, open-*, 64k, threads-2 (default 64)")
    ap.add_argument("--scenario", action="extend", nargs="+", choices=SCENARIOS,
                    metavar="NAME", help=f"scenarios to run (default all): {', '.join(SCENARIOS)}")
    ap.add_argument("--client", action="extend", nargs="+", choices=ALL_CLIENTS, metavar="NAME",
                    help="only these clients (default all available)")
    wrk2 = ap.add_mutually_exclusive_group()
    wrk2.add_argument("--wrk2", metavar="PATH", help="a wrk2 binary (open-loop scenarios)")
    wrk2.add_argument("--wrk2-src", metavar="DIR",
                      help="a wrk2 source tree (github.com/giltene/wrk2): run make in it "
                           "(in a copy in the temp dir when it is not writable) and use the "
                           "wrk binary it builds, as --wrk2 would")
    ap.add_argument("--nginx", default=find_nginx() or "/usr/sbin/nginx",
                    help="nginx binary (default: from PATH, else /usr/sbin/nginx, "
                         "/usr/local/sbin/nginx or /usr/local/nginx/sbin/nginx)")
    ap.add_argument("--json", metavar="PATH", help="write every run and summary here")
    ap.add_argument("--no-pin", action="store_true", help="do not pin server and client CPUs")
    ap.add_argument("--hammer-pythonpath", metavar="DIR",
                    help="run the hammer clients with PYTHONPATH=DIR (a build of hammer, e.g. "
                         "`pip install --target DIR .`; default: the installed hammer)")
    ap.add_argument("--baseline", metavar="REF",
                    help="build hammer as of git REF into a temp dir and run it as hammer-base "
                         "beside every hammer client, with the same arguments; the tables "
                         "give hammer/hammer-base paired round by round")
    args = ap.parse_args(argv)
    try:
        duration_s = parse_duration(args.duration)
    except ValueError as exc:
        ap.error(f"--duration: {exc}")
    if args.rounds < 1 or args.connections < 1:
        ap.error("--rounds and --connections must be >= 1")
    if not os.access(args.nginx, os.X_OK):
        log(f"error: nginx not found at {args.nginx}")
        return 1
    if args.hammer_pythonpath and not Path(args.hammer_pythonpath).is_dir():
        ap.error(f"--hammer-pythonpath: {args.hammer_pythonpath} is not a directory")
    scenarios = [s for s in SCENARIOS if not args.scenario or s in args.scenario]
    tmp = Path(tempfile.mkdtemp(prefix="hammer-bench-"))
    hammers = {"hammer": HammerBuild(
        "hammer", str(Path(args.hammer_pythonpath).resolve()) if args.hammer_pythonpath
        else None)}
    try:
        if args.baseline:
            hammers["hammer-base"] = build_hammer(args.baseline, tmp / "baseline")
        build_notes = [compile_hammer(b) for b in hammers.values()]
        wrk2_path = args.wrk2
        if args.wrk2_src:
            wrk2_path = build_wrk2(Path(args.wrk2_src).resolve(), tmp)
            build_notes.append(f"wrk2: built from {args.wrk2_src}: {wrk2_path}")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        log(f"error: {exc}")
        shutil.rmtree(tmp, ignore_errors=True)
        return 1
    tools = Tools(wrk2_path, compile_floor(tmp), hammers)

    notes: list[str] = []
    cpus = os.sched_getaffinity(0)
    server_cpu: int | None = SERVER_CPU
    client_cpu: int | None = CLIENT_CPU
    if args.no_pin or shutil.which("taskset") is None or not {SERVER_CPU, CLIENT_CPU} <= cpus:
        server_cpu = client_cpu = None
        notes.append("CPU pinning off (--no-pin, no taskset, or CPUs 0 and 1 not available)")
    if len(cpus) > 2:
        notes.append(f"{len(cpus)} CPUs: only CPU {SERVER_CPU} (nginx) and {CLIENT_CPU} "
                     "(client) are used")

    result: dict[str, Any] = {
        "meta": {"duration_s": duration_s, "rounds": args.rounds,
                 "connections": args.connections, "python": sys.version.split()[0],
                 "server_cpu": server_cpu, "client_cpu": client_cpu,
                 "tools": tools.paths, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                 "hammers": {t: asdict(b) for t, b in hammers.items()}},
        "notes": notes, "scenarios": {},
    }
    for line in build_notes:
        notes.append(line)
        log(line)
    work = tmp / "client"
    work.mkdir()
    nginx = Nginx(args.nginx, tmp / "nginx", server_cpu)
    head_lines: list[str] = []      # printed again at the end, after the tables
    base_lines: list[str] = []      # hammer against hammer-base, every scenario
    closed64: dict[str, ClientSummary] | None = None
    fixed_cpu_s: dict[str, float | None] = {}
    exit_code = 0
    try:
        for tool, build in hammers.items():
            help_t = help_timing(work, client_cpu, build)
            result[f"{tool.replace('-', '_')}_help"] = help_t
            line = ("" if tool == "hammer" else f"{tool}: ") + (
                f"python -m hammer --help: {help_t['wall_s_median'] * 1e3:.0f} ms wall (median "
                f"of {HELP_SAMPLES}), {help_t['cpu_s_median'] * 1e3:.0f} ms CPU; bare "
                f"`python -c pass`: {help_t['bare_python_wall_s_median'] * 1e3:.0f} ms"
                + ("" if help_t["ok"] else "  [FAILED]"))
            log(line)
            head_lines.append(line)

        nginx.start()
        result["meta"]["nginx"] = {"port": nginx.port, "prefix": str(nginx.prefix),
                                   "workers": nginx.workers, "pinning": nginx.pinning}
        log(f"nginx on {nginx.base_url} (master {nginx.proc.pid if nginx.proc else '?'}, "
            f"workers {nginx.workers}); " + "; ".join(nginx.pinning))
        for tool, build in hammers.items():
            fixed = hammer_fixed_cost(nginx.base_url + "/", work, client_cpu, build)
            result[f"{tool.replace('-', '_')}_fixed_cost"] = fixed
            fixed_cpu_s[tool] = fixed["cpu_s"] if fixed["ok"] else None
            line = (f"{tool} fixed cost per run (1-request run: start-up, imports, report): "
                    f"{fixed['cpu_s'] * 1e3:.0f} ms CPU, {fixed['wall_s'] * 1e3:.0f} ms wall, "
                    f"RSS {fixed['peak_rss_kib'] / 1024:.1f} MB"
                    + ("" if fixed["ok"] else " [FAILED]"))
            log(line)
            head_lines.append(line)

        for name in scenarios:
            rate = None
            calib: RunRecord | None = None
            if name == "open-max":
                rate, calib = calibrate(nginx, tools, args.connections, duration_s, work,
                                        client_cpu)
                log(f"[open-max] calibration (hammer closed loop): {describe(calib)}"
                    + (f" -> rate {rate:,}/s" if rate else ""))
            sc = build_scenario(name, tools, nginx.base_url, args.connections, duration_s, rate,
                                nginx.tls_url, nginx.ca_file)
            if calib is not None and calib.ok:
                busy = calib.machine.get("server_busy_frac")
                per_req = calib.machine.get("server_cpu_us_per_request")
                sc.notes.append(
                    f"calibration: hammer closed loop {calib.requests_per_s or 0:,.0f} req/s "
                    f"with nginx {_fmt(_pct(busy), '.0f')}% busy"
                    + (f" ({per_req:.1f} CPU-µs/req: about {1e6 / per_req:,.0f} req/s at 100 %)"
                       if per_req else "")
                    + ("; nginx was not saturated, so the client set the max"
                       if busy is not None and busy < 0.9 else ""))
            sc.clients = tools.with_baseline(sc.clients)
            # a baseline twin goes with its hammer client unless named itself
            skipped = [c for c in sc.clients if args.client and c.name not in args.client
                       and not (c.tool == "hammer-base"
                                and "hammer" + c.name.removeprefix("hammer-base")
                                in args.client)]
            if skipped:
                sc.notes.append("not selected: " + ", ".join(c.name for c in skipped))
            sc.clients = [c for c in sc.clients if c not in skipped]
            runs: list[RunRecord] = []
            rounds = args.rounds
            if name == "threads-2" and rounds < THREADS_MIN_ROUNDS:
                rounds = THREADS_MIN_ROUNDS
                sc.notes.append(f"{rounds} rounds (at least {THREADS_MIN_ROUNDS} for this "
                                "scenario: its verdict is a 10 % difference)")
            for rnd in range(1, rounds + 1):
                for client in sc.clients:
                    try:
                        rec = do_run(nginx, tools, name, client, rnd, work, client_cpu)
                    except (OSError, RuntimeError, http.client.HTTPException) as exc:
                        rec = failed_run(name, client, rnd, f"{type(exc).__name__}: {exc}")
                    runs.append(rec)
                    log(f"[{name} {rnd}/{rounds}] {client.name}: {describe(rec)}")
            summaries = summarise(runs, sc.clients, fixed_cpu_s)
            base_lines.extend(f"{name}: {line}" for line in baseline_ratios(summaries))
            if name == "closed-64":
                closed64 = {s.client: s for s in summaries}
            table = render_table(sc, summaries, closed64)
            print(table + "\n", flush=True)
            result["scenarios"][name] = {
                "description": sc.description, "notes": sc.notes,
                "calibration": asdict(calib) if calib else None, "rate": rate,
                "summary": [asdict(s) for s in summaries], "runs": [asdict(r) for r in runs],
            }
        for line in head_lines:
            print(line)
        if "hammer-base" in hammers:
            base = hammers["hammer-base"]
            print(f"hammer ({hammers['hammer'].package}) against hammer-base ({base.ref} = "
                  f"{base.commit}) (CPU-µs/req below 1: hammer is cheaper):")
            for line in base_lines or ["(no pair completed)"]:
                print(f"  {line}")
            result["baseline_ratios"] = base_lines
    except KeyboardInterrupt:
        log("interrupted: stopping")
        exit_code = 130
    except RuntimeError as exc:
        log(f"error: {exc}")
        exit_code = 1
    finally:
        err_tail = nginx.error_log().strip().splitlines()[-5:]
        nginx.stop()
        result["nginx_error_log_tail"] = err_tail
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
            log(f"wrote {args.json}")
        shutil.rmtree(tmp, ignore_errors=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
