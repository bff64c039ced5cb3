"""Running a client pinned to a CPU, bounded by a hard timeout, with the rusage of
exactly that child; the CPU time of a live process and of each core."""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

SERVER_CPU = 0
CLIENT_CPU = 1
HARD_TIMEOUT_EXTRA_S = 30.0
RSS_SAMPLE_S = 0.05             # how often the client's VmHWM is read while it runs
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
