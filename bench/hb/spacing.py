"""How evenly an open-loop client spaces its requests, seen from outside the client.

During a run, tcpdump captures on the loopback every TCP segment that carries payload
(PSH set) toward nginx's port: one per request (one request per write, no pipelining).
The kernel stamps each packet when it passes the packet tap, which on the loopback
happens inside the client's send call, so the stamps are the send times to within the
tap's own cost. tcpdump runs pinned to the server's core (its reading and writing of
the file is charged there; the driver subtracts its CPU from that core's "other" time);
the per-packet tap and filter run in the sender's context, so they are part of the
client's system time in a run with --spacing.

The pcap (classic format, micro- or nanosecond stamps, either byte order) is read with
struct. Over the load phase (first to last request, minus TRIM_NS at each end), in 1 ms
windows: the rate seen, the p99 of the per-window counts, the share of windows holding
more than CROWDED times the mean, and the gaps between consecutive requests.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .procs import log

if TYPE_CHECKING:
    from .clients import Client
    from .runs import RunRecord

TRIM_NS = 100_000_000            # the first and last 100 ms of the load phase are left out
WINDOW_NS = 1_000_000            # 1 ms windows
CROWDED = 1.5                    # a window over 1.5x its expected share is crowded
SNAPLEN = 128                    # headers and the start of the request line
BUFFER_KIB = 64 * 1024           # tcpdump -B: the kernel ring, 64 MiB
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
BLOCK_FLUSH_S = 1.5              # > tcpdump's ring block timeout (1 s)

PCAP_MAGIC = {0xA1B2C3D4: 1_000, 0xA1B23C4D: 1}   # magic -> ns per fractional unit


def available() -> str | None:
    """None when a capture can run, else why not."""
    if shutil.which("tcpdump") is None:
        return "tcpdump is not installed (apt-get install tcpdump)"
    return None


def capture_filter(port: int) -> str:
    return f"tcp dst port {port} and (tcp[tcpflags] & tcp-push != 0)"


@dataclass
class Capture:
    """A running tcpdump writing to path."""

    proc: subprocess.Popen[bytes]
    path: Path
    argv: list[str]
    stderr_head: str


def start(port: int, path: Path, cpu: int | None) -> Capture:
    """Start tcpdump on lo (pinned to cpu) and wait until it is capturing."""
    argv = ["tcpdump", "-i", "lo", "-n", "-s", str(SNAPLEN), "-B", str(BUFFER_KIB),
            "--time-stamp-precision=nano", "-Z", "root", "-w", str(path), capture_filter(port)]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stderr is not None
    head = b""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while b"listening on" not in head:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([proc.stderr], [], [], max(left, 0.0))
        chunk = proc.stderr.read1(4096) if ready else b""  # type: ignore[attr-defined]
        if not chunk:
            _kill(proc)
            raise RuntimeError("tcpdump did not start: "
                               + head.decode(errors="replace").strip()[-300:])
        head += chunk
    return Capture(proc, path, argv, head.decode(errors="replace"))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(STOP_TIMEOUT_S)


def stop(cap: Capture, client_done: float) -> dict[str, Any]:
    """SIGINT tcpdump (it flushes the file and prints its counts): its counts and CPU."""
    proc = cap.proc
    assert proc.stderr is not None
    # tcpdump reads the kernel's ring a block at a time, and a block is handed over when
    # full or when its timeout (1 s) passes: stopping sooner loses the last one, silently
    time.sleep(max(0.0, client_done + BLOCK_FLUSH_S - time.monotonic()))
    proc.send_signal(signal.SIGINT)
    err = b""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], deadline - time.monotonic())
        chunk = proc.stderr.read1(4096) if ready else b""  # type: ignore[attr-defined]
        if not chunk:
            break
        err += chunk
    if time.monotonic() >= deadline:
        with contextlib.suppress(OSError):
            proc.kill()
    cpu_s = None
    if proc.returncode is None:
        # reap it here (not with poll()), for its own rusage: its CPU on the server's core
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu_s = ru.ru_utime + ru.ru_stime
    proc.stderr.close()
    text = cap.stderr_head + err.decode(errors="replace")
    out: dict[str, Any] = {"argv": cap.argv, "returncode": proc.returncode, "cpu_s": cpu_s}
    for key, pattern in (("captured", r"(\d+) packets? captured"),
                         ("received_by_filter", r"(\d+) packets? received by filter"),
                         ("dropped_by_kernel", r"(\d+) packets? dropped by kernel"),
                         ("dropped_by_interface", r"(\d+) packets? dropped by interface")):
        m = re.search(pattern, text)
        out[key] = int(m.group(1)) if m else None
    return out


def read_pcap(path: Path) -> tuple[list[int], int]:
    """Send times (ns, sorted) of the packets that carry TCP payload, and how many
    captured packets carried none (not requests: should be 0 with the PSH filter)."""
    data = path.read_bytes()
    if len(data) < 24:
        raise ValueError("pcap file too short")
    for endian in ("<", ">"):
        magic, _, _, _, _, _, linktype = struct.unpack(endian + "IHHiIII", data[:24])
        if magic in PCAP_MAGIC:
            break
    else:
        raise ValueError(f"not a classic pcap file (magic {data[:4].hex()})")
    frac_ns = PCAP_MAGIC[magic]
    link_len = {1: 14, 0: 4, 113: 16, 276: 20}.get(linktype)  # EN10MB, NULL, SLL, SLL2
    if link_len is None:
        raise ValueError(f"unknown pcap link type {linktype}")
    rec = struct.Struct(endian + "IIII")
    times: list[int] = []
    empty = 0
    off = 24
    n = len(data)
    while off + 16 <= n:
        sec, frac, incl, _orig = rec.unpack_from(data, off)
        off += 16
        pkt = data[off:off + incl]
        off += incl
        ip = pkt[link_len:]
        if len(ip) < 20 or ip[0] >> 4 != 4:
            empty += 1
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = (ip[2] << 8) | ip[3]
        if len(ip) < ihl + 13:
            empty += 1
            continue
        thl = (ip[ihl + 12] >> 4) * 4
        if total - ihl - thl <= 0:
            empty += 1
            continue
        times.append(sec * 1_000_000_000 + frac * frac_ns)
    times.sort()
    return times, empty


def _pctile(sorted_vals: list[int] | list[float], q: float) -> float | None:
    """The nearest-rank percentile q (0-100) of sorted values."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, -(-len(sorted_vals) * q // 100) - 1))
    return float(sorted_vals[int(k)])


def analyse(times: list[int]) -> dict[str, Any]:
    """The spacing figures of sorted send times (ns) over the trimmed load phase."""
    out: dict[str, Any] = {"requests_captured": len(times)}
    if len(times) < 2:
        return out
    t0, t1 = times[0] + TRIM_NS, times[-1] - TRIM_NS
    nwin = (t1 - t0) // WINDOW_NS
    if nwin < 10:
        out["note"] = "load phase too short to trim and window"
        return out
    t1 = t0 + nwin * WINDOW_NS
    counts = [0] * nwin
    inside = [t for t in times if t0 <= t < t1]
    for t in inside:
        counts[(t - t0) // WINDOW_NS] += 1
    mean = len(inside) / nwin
    gaps = sorted(b - a for a, b in itertools.pairwise(inside))
    counts_sorted = sorted(counts)
    out.update({
        "load_phase_s": (times[-1] - times[0]) / 1e9,
        "window_s": nwin * WINDOW_NS / 1e9,
        "requests_in_window": len(inside),
        "rate_seen_rps": len(inside) / (nwin * WINDOW_NS / 1e9),
        "per_ms_mean": mean,
        "per_ms_p50": _pctile(counts_sorted, 50),
        "per_ms_p99": _pctile(counts_sorted, 99),
        "per_ms_max": counts_sorted[-1],
        "empty_ms_frac": sum(1 for c in counts if c == 0) / nwin,
        "crowded_ms_frac": sum(1 for c in counts if c > CROWDED * mean) / nwin,
        "gap_us_p50": (_pctile(gaps, 50) or 0) / 1e3,
        "gap_us_p99": (_pctile(gaps, 99) or 0) / 1e3,
        "gap_us_max": gaps[-1] / 1e3 if gaps else None,
    })
    return out


def measure(cap: Capture, client_done: float) -> dict[str, Any]:
    """Stop the capture (at least BLOCK_FLUSH_S after the client's end, time.monotonic()),
    read and analyse it, delete the pcap."""
    counts = stop(cap, client_done)
    try:
        times, empty = read_pcap(cap.path)
        result = {**counts, **analyse(times), "no_payload_packets": empty}
    except (OSError, ValueError) as exc:
        log(f"  spacing: could not read the capture: {exc}")
        result = {**counts, "error": str(exc)}
    finally:
        with contextlib.suppress(OSError):
            cap.path.unlink()
    return result


def summarise(runs: list[RunRecord], clients: list[Client],
              fixed_cpu_s: dict[str, float | None]) -> list[dict[str, Any]]:
    """Per client (in order), over its runs that have a capture: the
    medians of the spacing figures, the client's CPU as a share of one core, and the
    capture's counts against the client's and nginx's."""
    out = []
    for client in clients:
        name = client.name
        mine = [r for r in runs if r.client == name and r.spacing
                and r.spacing.get("rate_seen_rps")]
        if not mine:
            failed = [r.spacing.get("error") or r.spacing.get("note") or "no capture"
                      for r in runs if r.client == name and r.spacing]
            if failed:
                out.append({"client": name, "captures": 0, "why": failed[0]})
            continue

        def med(key: str, rs: list[RunRecord] = mine) -> float | None:
            vals = [r.spacing[key] for r in rs if r.spacing.get(key) is not None]
            return statistics.median(vals) if vals else None

        fixed = fixed_cpu_s.get(client.tool)     # hammer's start-up and report
        core = [r.cpu_user_s + r.cpu_sys_s for r in mine]
        out.append({
            "client": name, "captures": len(mine),
            "target_rps": mine[0].extra.get("target_rps") or _rate_flag(mine[0].argv),
            "rate_seen_rps": med("rate_seen_rps"),
            "per_ms_mean": med("per_ms_mean"), "per_ms_p99": med("per_ms_p99"),
            "per_ms_max": med("per_ms_max"),
            "crowded_ms_frac": med("crowded_ms_frac"), "empty_ms_frac": med("empty_ms_frac"),
            "gap_us_p50": med("gap_us_p50"), "gap_us_p99": med("gap_us_p99"),
            "cpu_core_frac": statistics.median(c / r.wall_s for c, r in zip(core, mine,
                                                                         strict=True)),
            "cpu_core_frac_net": (statistics.median(
                max(c - fixed, 0.0) / (r.duration_s or r.wall_s)
                for c, r in zip(core, mine, strict=True)) if fixed is not None else None),
            "cpu_us_per_request": statistics.median(
                r.cpu_us_per_request for r in mine if r.cpu_us_per_request is not None)
            if any(r.cpu_us_per_request is not None for r in mine) else None,
            "capture_minus_client": [r.spacing.get("capture_minus_client") for r in mine],
            "capture_minus_server": [r.spacing.get("capture_minus_server") for r in mine],
            "dropped_by_kernel": sum(r.spacing.get("dropped_by_kernel") or 0 for r in mine),
            "capture_cpu_s": med("cpu_s"),
        })
    return out


def _rate_flag(argv: list[str]) -> int | None:
    """wrk2's -RN."""
    for a in argv:
        if a.startswith("-R") and a[2:].isdigit():
            return int(a[2:])
    return None
