"""Host limits a run depends on, read once, and the verdict for a plan.

A connection is one open file and, towards one destination, one local (ephemeral) port.
hammer keeps at most --connections sockets open: a request with no free connection waits
for one (it is late), so the sockets a run needs do not grow with rate x timeout.
A socket that hammer closes first keeps its local port in TIME_WAIT for 60 s, so
connections that churn (errors, timeouts, a server that closes) spend the port range at
up to range / 60 s new connections per second per destination.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hammer.errors import ConfigError

# descriptors a run needs beside its sockets: epoll instances, stdio, Python's own
FD_OVERHEAD = 64
TIME_WAIT_S = 60

ReadFn = Callable[[str], str | None]


def read_proc(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


@dataclass(frozen=True)
class HostLimits:
    nofile_soft: int
    nofile_hard: int
    port_low: int | None
    port_high: int | None
    tcp_tw_reuse: str | None
    somaxconn: int | None
    conntrack_max: int | None
    clocksource: str | None
    timer_slack_ns: int | None
    cpus: int

    @property
    def ephemeral_ports(self) -> int | None:
        if self.port_low is None or self.port_high is None:
            return None
        return self.port_high - self.port_low + 1

    @property
    def new_connections_per_s(self) -> float | None:
        """New connections per second per destination the port range sustains when the
        client closes first (each closed port waits TIME_WAIT_S)."""
        ports = self.ephemeral_ports
        return ports / TIME_WAIT_S if ports is not None else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def read_host_limits(read: ReadFn = read_proc) -> HostLimits:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = 1 << 30
    ports = (read("/proc/sys/net/ipv4/ip_local_port_range") or "").split()
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return HostLimits(
        nofile_soft=soft if soft != resource.RLIM_INFINITY else infinite,
        nofile_hard=hard if hard != resource.RLIM_INFINITY else infinite,
        port_low=_int(ports[0]) if len(ports) == 2 else None,
        port_high=_int(ports[1]) if len(ports) == 2 else None,
        tcp_tw_reuse=read("/proc/sys/net/ipv4/tcp_tw_reuse"),
        somaxconn=_int(read("/proc/sys/net/core/somaxconn")),
        conntrack_max=_int(read("/proc/sys/net/netfilter/nf_conntrack_max")),
        clocksource=read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        timer_slack_ns=_int(read(f"/proc/{os.getpid()}/timerslack_ns")),
        cpus=cpus,
    )


@dataclass
class PlanVerdict:
    """What a plan needs from the host, and whether it fits."""

    sockets: int
    files_needed: int
    raise_soft_to: int | None = None     # the soft limit will be raised to this
    problems: list[str] = field(default_factory=list)   # the run cannot proceed
    warnings: list[str] = field(default_factory=list)   # it can, with a caveat

    @property
    def fits(self) -> bool:
        return not self.problems


def check_plan(host: HostLimits, connections: int, rate_rps: float | None = None,
               churn: bool = False, loopback: bool = False) -> PlanVerdict:
    """Judge a plan: `connections` open at once; `churn`: connections closed by the
    client and reopened (a new one per request in the worst case, at `rate_rps`);
    `loopback`: the target is on this host (tcp_tw_reuse=2 then reuses TIME_WAIT ports)."""
    needed = connections + FD_OVERHEAD
    verdict = PlanVerdict(sockets=connections, files_needed=needed)
    if needed > host.nofile_hard:
        verdict.problems.append(
            f"{connections:,} connections need {needed:,} open files but the hard limit "
            f"(ulimit -Hn) is {host.nofile_hard:,}: raise it (e.g. in "
            f"/etc/security/limits.conf, or LimitNOFILE= for a service) or use fewer "
            f"connections")
    elif needed > host.nofile_soft:
        verdict.raise_soft_to = needed
    ports = host.ephemeral_ports
    if ports is not None and connections > ports:
        verdict.problems.append(
            f"{connections:,} connections to one destination need as many local ports "
            f"but the ephemeral range {host.port_low}-{host.port_high} has {ports:,}: "
            f"widen net.ipv4.ip_local_port_range or use fewer connections")
    budget = host.new_connections_per_s
    reuse = host.tcp_tw_reuse == "1" or (host.tcp_tw_reuse == "2" and loopback)
    # with tcp_tw_reuse, new connections reuse ports in TIME_WAIT: the budget does not bind
    if churn and not reuse and rate_rps is not None and budget is not None and rate_rps > budget:
        verdict.warnings.append(
            f"opening a connection per request at {rate_rps:,.0f}/s exceeds the "
            f"{budget:,.0f} new connections/s that {ports:,} ephemeral ports sustain with "
            f"{TIME_WAIT_S} s TIME_WAIT when the client closes first (hammer waits for the "
            f"server to close, but a server that does not will exhaust the ports): keep "
            f"connections alive or enable net.ipv4.tcp_tw_reuse")
    return verdict


def ensure_nofile(connections: int, rate_rps: float | None = None, churn: bool = False,
                  loopback: bool = False) -> PlanVerdict:
    """Before a run: refuse (ConfigError) a plan the host cannot carry, raise the
    RLIMIT_NOFILE soft limit to what it needs (up to the hard limit), and return the
    verdict, whose warnings the run reports (e.g. a churn beyond the port budget)."""
    verdict = check_plan(read_host_limits(), connections, rate_rps, churn=churn,
                         loopback=loopback)
    if verdict.problems:
        raise ConfigError(verdict.problems[0])
    if verdict.raise_soft_to is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (verdict.raise_soft_to, hard))
    return verdict


def clock_read_ns(samples: int = 200_000) -> float:
    """Measured cost of one read of the core's clock (CLOCK_MONOTONIC), in ns."""
    from hammer import _core

    return float(_core.bench_clock(samples))


def render_limits(host: HostLimits, verdict: PlanVerdict | None, clock_ns: float | None,
                  plan_text: str | None) -> str:
    def show(value: object) -> str:
        return "-" if value is None else str(value)

    ports = host.ephemeral_ports
    budget = host.new_connections_per_s
    lines = [
        "hammer limits",
        f"  open files        soft {host.nofile_soft:,}  hard {host.nofile_hard:,}"
        f"  (a connection is one; hammer raises soft up to hard itself)",
        f"  ephemeral ports   {show(host.port_low)}-{show(host.port_high)}"
        + (f" ({ports:,} ports)" if ports else ""),
        "  new conns/s       " + (f"{budget:,.0f} per destination when the client closes first"
                                  f" ({TIME_WAIT_S} s TIME_WAIT)" if budget else "-"),
        f"  tcp_tw_reuse      {show(host.tcp_tw_reuse)}",
        f"  somaxconn         {show(host.somaxconn)}",
        f"  conntrack max     {show(host.conntrack_max)}",
        f"  clocksource       {show(host.clocksource)}"
        + (f"  (a clock read costs {clock_ns:.0f} ns)" if clock_ns is not None else ""),
        "  timer slack       "
        + (f"{host.timer_slack_ns:,} ns (hammer's workers lower theirs to 1 ns)"
           if host.timer_slack_ns is not None else "-"),
        f"  CPUs              {host.cpus}",
    ]
    if verdict is not None and plan_text is not None:
        lines.append("")
        lines.append(f"plan: {plan_text}")
        lines.append(f"  needs {verdict.sockets:,} sockets, {verdict.files_needed:,} open files")
        if verdict.raise_soft_to is not None:
            lines.append(f"  soft open-files limit will be raised to {verdict.raise_soft_to:,}")
        for problem in verdict.problems:
            lines.append(f"  does not fit: {problem}")
        for warning in verdict.warnings:
            lines.append(f"  warning: {warning}")
        if verdict.fits:
            lines.append("  fits" + (" (with the warnings above)" if verdict.warnings else ""))
    return "\n".join(lines) + "\n"

