"""The clients: their names, command lines (Tools.argv) and output parsers."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .build import HammerBuild

PEERS = ("wrk", "hey", "ab", "h2load", "wrk2")
HAMMERS = ("hammer", "hammer-base")     # tools: hammer, and the --baseline build of it
HAMMER_CLIENTS = ("hammer", "hammer-exact", "hammer-t1", "hammer-t2", "hammer-live")
HAMMER_START_NOFILE = 1024      # hammer starts with this soft RLIMIT_NOFILE: it must raise it


def base_name(client: str) -> str:
    """The name of a hammer client's twin on the --baseline build: hammer-t1 -> hammer-base-t1."""
    return "hammer-base" + client.removeprefix("hammer")


ALL_CLIENTS = (*HAMMER_CLIENTS, *map(base_name, HAMMER_CLIENTS), *PEERS, "wrk-t1", "wrk-t2",
               "floor")


@dataclass(frozen=True)
class Params:
    url: str
    connections: int
    threads: int
    duration_s: int
    rate: int | None = None       # open loop at this many req/s
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
    name: str          # as reported (hammer, hammer-exact, wrk, ...)
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

    @staticmethod
    def with_live(clients: list[Client]) -> list[Client]:
        """With --live-view, the client named hammer followed by hammer-live: the same
        run with its live view forced on (--live), paired round by round."""
        out = []
        for c in clients:
            out.append(c)
            if c.name == "hammer":
                live = replace(c.params, hammer_extra=(*c.params.hammer_extra, "--live"))
                out.append(Client("hammer-live", c.tool, live))
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
