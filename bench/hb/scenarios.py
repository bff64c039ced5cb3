"""The scenarios: which clients each one runs, with which parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

from .clients import HAMMER_START_NOFILE, Client, Params, Tools
from .procs import CLIENT_CPU

SCENARIOS = ("closed-64", "closed-1000", "open-20k", "open-1k", "open-max", "open-50k",
             "open-100k", "closed-10k",
             "64k", "https-64", "threads-2")
# --spacing captures these; open-50k and open-100k: how far one core goes
OPEN_SCENARIOS = ("open-20k", "open-1k", "open-max", "open-50k", "open-100k")
SMALL_BODY = b"hello\n"
OPEN_20K_RATE = 20_000
OPEN_1K_RATE = 1_000
OPEN_MAX_FRACTION = 0.9
THREADS_CPU_LIMIT = 1.10        # threads-2: CPU-µs/req with -t 2 may grow at most 10 %
# threads-2 judges a 10 % limit between two runs of the same tool, while one run's
# CPU-µs/req swings by +-10 % on a VM with steal: it runs at least this many rounds
THREADS_MIN_ROUNDS = 5


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
    if name in OPEN_SCENARIOS:
        rate = {"open-20k": OPEN_20K_RATE, "open-1k": OPEN_1K_RATE, "open-50k": 50_000,
                "open-100k": 100_000}.get(name, open_max_rate)
        notes = []
        if rate is None:
            return Scenario(name, "open loop near the server's max", [],
                            ["skipped: the closed-loop calibration run failed"])
        op = Params(small, conns, 1, duration_s, rate=rate)
        clients = [Client("hammer", "hammer", op)]
        if name == "open-20k":
            # hammer's default pacing (a timer wake at most every 250 us) and a wake per
            # request (--pacing exact)
            clients = [Client("hammer", "hammer", op),
                       Client("hammer-exact", "hammer",
                              Params(small, conns, 1, duration_s, rate,
                                     hammer_extra=("--pacing", "exact")))]
        tools.offer("wrk2", clients, notes, Client("wrk2", "wrk2", op))
        notes.append("wrk, hey, ab, h2load: skipped (no open-loop mode: hey -q throttles each "
                     "worker of a closed loop, h2load --rate paces connections)")
        desc = (f"open loop at {rate:,} req/s, {conns} connections, 1 thread, GET /"
                + (f" ({OPEN_MAX_FRACTION:.0%} of hammer's closed-loop max)"
                   if name == "open-max" else ""))
        return Scenario(name, desc, clients, notes)
    raise ValueError(name)
