"""The plan: *when* requests go out, apart from *what* a request is (the hammer).

A Plan holds the schedule (a constant rate, a rate profile or Poisson arrivals; none
for a closed loop), how long it lasts and how many requests it may schedule, the
concurrency, the per-request timeout and the seed. Every hammer kind, the core's HTTP
and user-written Python hammers alike, is driven by the same Plan.
"""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, TypedDict

from hammer import pacer, units
from hammer.errors import ConfigError

DEFAULT_DURATION_NS = 10 * units.NS_PER_S
DEFAULT_TIMEOUT_NS = 10 * units.NS_PER_S
# Open loop: the loop wakes by its timer for slots at most once per quantum (a wake costs
# about 20 us of CPU on these VMs) and sends every slot due by then, each measured from
# its own intended time. Below one slot per quantum, every slot gets its own wake.
# The core's quantum stays under KVM's halt polling (200 us by default): a vCPU idle for
# longer is descheduled by the host and may wake milliseconds late, and so may the
# server's (at 250 us, send-lag p90 reached 2 ms here; at 100-150 us it stayed ~0.1 ms).
# A Python hammer's wake costs more: it takes the longest quantum still under that
# window. (At 250 us, its wakes here came up to 0.9 ms late at p99 when the host was busy,
# and send-lag p99 reached 2.5-3.6 ms; bench/wake_floor.c measures the knee.)
CORE_QUANTUM_NS = 150_000
PYTHON_QUANTUM_NS = 190_000
MAX_QUANTUM_NS = 100_000_000
MAX_SPIN_NS = units.NS_PER_S
MAX_RATE_RPS = 100_000_000
MIN_RATE_RPS = Fraction(1, 86_400)
MAX_THREADS = 256
MAX_CONCURRENCY = 1_000_000
MAX_SHARDS = 10_000
ARRIVALS = ("uniform", "poisson")


# the MQTT kind's own run() options (hammer.mqtt), known here so that an HTTP run can
# refuse them without importing it
MQTT_OPTIONS = ("qos", "payload", "payload_file", "payload_size", "retain",
                "client_id_prefix", "keepalive", "mqtt_version", "inflight", "batch",
                "storm", "e2e", "e2e_wait", "username", "password")
MQTT_SCHEMES = ("mqtt", "mqtts")


def is_mqtt_url(url: str | None) -> bool:
    return url is not None and url.split("://", 1)[0].lower() in MQTT_SCHEMES


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class PacerArgs(TypedDict):
    """The schedule as the core's pacer takes it (Engine, SlotTimer)."""

    rate_num: int | None
    rate_den: int
    profile: list[tuple[str, float, float, float, float]] | None
    poisson_seed: int | None
    trace: array[int] | None


@dataclass(frozen=True)
class Plan:
    """When: the schedule, its bounds, concurrency and timeouts. Validated once."""

    rate_rps: Fraction | None = None   # None: closed loop; with a profile, its mean rate
    rate_profile: pacer.RateProfile | None = None   # fitted to the duration
    arrivals: str = "uniform"                         # or "poisson"
    duration_ns: int | None = DEFAULT_DURATION_NS   # None: until `requests` run out
    requests: int | None = None                      # the request budget
    concurrency: int | None = None   # as given (-c); None: the hammer's own default
    threads: int = 1
    timeout_ns: int = DEFAULT_TIMEOUT_NS
    spin_ns: int = 0                 # poll this long before each slot (0: never poll)
    quantum_ns: int | None = None    # 0: one timer wake per slot ("exact"); None: auto
    seed: int = 1
    shard_index: int = 0             # this run sends slots shard_index + k*shard_count
    shard_count: int = 1
    # a replay's timeline: slot i is due at start + trace_ns[i] (ascending), instead of a rate
    trace_ns: array[int] | None = field(default=None, compare=False, repr=False)

    @property
    def shard(self) -> tuple[int, int] | None:
        """(k, n), 1-based, when this plan is shard k of n; None when it is whole."""
        return (self.shard_index + 1, self.shard_count) if self.shard_count > 1 else None

    def quantum_for(self, default_ns: int) -> int:
        """The pacing quantum, with `auto` resolved to the kind's default."""
        return default_ns if self.quantum_ns is None else self.quantum_ns

    @property
    def open_loop(self) -> bool:
        return self.rate_rps is not None

    @property
    def mode(self) -> str:
        return "open" if self.open_loop else "closed"

    def n_slots(self) -> int:
        """Slots the open-loop schedule holds within its duration and request budget."""
        if self.rate_rps is None:
            raise ValueError("closed loop has no schedule")
        candidates = []
        if self.trace_ns is not None:
            candidates.append(len(self.trace_ns))
        elif self.arrivals == "poisson":
            # how many arrivals fall within the duration depends on the draws
            if self.duration_ns is not None:
                from hammer import _core

                candidates.append(_core.poisson_slots_within(
                    self.rate_rps.numerator, self.rate_rps.denominator, self.seed,
                    self.duration_ns))
        elif self.rate_profile is not None:
            candidates.append(self.rate_profile.slots())
        elif self.duration_ns is not None:
            candidates.append(pacer.slots_within(self.duration_ns, self.rate_rps))
        if self.requests is not None:
            candidates.append(self.requests)
        return min(candidates) if candidates else 1 << 62

    def pacer_args(self) -> PacerArgs:
        """The schedule as the core's pacer takes it."""
        rate = self.rate_rps
        poisson = self.arrivals == "poisson" and rate is not None
        return {
            "rate_num": rate.numerator if rate is not None and self.trace_ns is None else None,
            "rate_den": rate.denominator if rate is not None else 1,
            "profile": self.rate_profile.as_core() if self.rate_profile is not None else None,
            "poisson_seed": self.seed if poisson else None,
            "trace": self.trace_ns,
        }

    def core_schedule(self, *, connections: int, batch_sched: bool) -> dict[str, object]:
        """The plan as the core's Engine takes it (its `schedule`)."""
        return {
            **self.pacer_args(),
            "n_slots": self.n_slots() if self.open_loop else 0,
            "duration_ns": self.duration_ns if self.duration_ns is not None else -1,
            "max_requests": self.requests if self.requests is not None else -1,
            "timeout_ns": self.timeout_ns,
            "spin_ns": self.spin_ns,
            "quantum_ns": self.quantum_for(CORE_QUANTUM_NS),
            "seed": self.seed,
            "threads": self.threads,
            "connections": connections,
            "batch_sched": batch_sched,
            "shard_index": self.shard_index,
            "shard_count": self.shard_count,
        }

    def with_concurrency(self, concurrency: int) -> Plan:
        return replace(self, concurrency=concurrency)


class PlanView:
    """For a run's config (the HTTP kind's, a Python hammer's): the plan's fields read
    through the config, for brevity. The class has a `plan` attribute."""

    plan: Plan

    rate_rps = property(lambda self: self.plan.rate_rps)
    rate_profile = property(lambda self: self.plan.rate_profile)
    arrivals = property(lambda self: self.plan.arrivals)
    duration_ns = property(lambda self: self.plan.duration_ns)
    requests = property(lambda self: self.plan.requests)
    threads = property(lambda self: self.plan.threads)
    timeout_ns = property(lambda self: self.plan.timeout_ns)
    spin_ns = property(lambda self: self.plan.spin_ns)
    seed = property(lambda self: self.plan.seed)
    open_loop = property(lambda self: self.plan.open_loop)
    mode = property(lambda self: self.plan.mode)

    @property
    def connections(self) -> int:
        """Connections (HTTP) or hits in flight at most (Python hammers): settled when
        the config was made, so never None here."""
        assert self.plan.concurrency is not None
        return self.plan.concurrency

    def n_slots(self) -> int:
        return self.plan.n_slots()


class NotHttp:
    """What a report asks of a run's config that only the HTTP kind has."""

    method = None
    tls = None
    keepalive = None
    max_requests_per_conn = 0
    requests_table = ()
    concurrency_unit = "in-flight slot"


def as_ns(value: str | float | int | None, what: str, *, allow_zero: bool = False) -> int | None:
    if value is None:
        return None
    try:
        if isinstance(value, str):
            ns = units.parse_duration_ns(value, allow_zero=allow_zero)
        else:
            if isinstance(value, bool) or not math.isfinite(value):
                raise ValueError
            ns = int(Fraction(value) * units.NS_PER_S)
            if ns < 0 or (ns == 0 and not allow_zero):
                raise ValueError
    except ValueError as exc:
        detail = str(exc) if isinstance(value, str) else f"invalid {what} {value!r}"
        raise ConfigError(f"{what}: {detail}" if what not in detail else detail) from None
    return ns


def as_count(value: str | int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"invalid {what} {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ConfigError(f"invalid {what} '{value}': must be a positive whole number")
        return value
    try:
        return units.parse_count(str(value), name=what)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def as_rate(value: str | float | int | Fraction | None) -> Fraction | None:
    if value is None:
        return None
    try:
        if isinstance(value, str):
            rate = units.parse_rate(value)
        else:
            if isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"invalid rate {value!r}")
            if value <= 0:
                raise ValueError(f"rate must be positive: '{value}'")
            rate = Fraction(value).limit_denominator(10**6)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if rate < MIN_RATE_RPS:
        raise ConfigError(f"rate {float(rate):g}/s is too small (at least one request a day)")
    if rate > MAX_RATE_RPS:
        raise ConfigError(
            f"rate {float(rate):,.0f}/s is above the {MAX_RATE_RPS:,}/s hammer supports")
    # keep the period representable exactly: numerator and denominator fit in int64
    return rate.limit_denominator(10**9) if rate.denominator > 10**9 else rate


def make_plan(
    *,
    rate: str | float | int | Fraction | None = None,
    arrivals: str = "uniform",
    duration: str | float | int | None = None,
    requests: str | int | None = None,
    concurrency: str | int | None = None,
    threads: str | int = 1,
    timeout: str | float | int = "10s",
    spin: str | float | int | None = None,
    pacing: str | None = None,
    seed: int = 1,
    shard: str | tuple[int, int] | None = None,
) -> Plan:
    """Validate the schedule options (strings as on the command line, or numbers:
    seconds, req/s) into a Plan. Raises ConfigError with a one-line message."""
    profile = None
    if isinstance(rate, str) and pacer.is_profile(rate):
        try:
            profile = pacer.parse_profile(rate)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        rate_rps = None
    else:
        rate_rps = as_rate(rate)
    if arrivals not in ARRIVALS:
        raise ConfigError(f"unknown arrivals {arrivals!r} (use uniform or poisson)")
    if arrivals == "poisson" and rate_rps is None:
        raise ConfigError("--arrivals poisson needs a constant --rate")
    duration_ns = as_ns(duration, "duration")
    n_requests = as_count(requests, "requests")
    if profile is not None:
        if duration_ns is None:
            duration_ns = (round(profile.duration_s * units.NS_PER_S) if profile.duration_s
                           else DEFAULT_DURATION_NS)
        profile = profile.fitted(duration_ns / units.NS_PER_S)
        if profile.slots() < 1:
            raise ConfigError(f"rate profile {profile.text!r} schedules no request")
        # the mean rate: what reports show as the target
        rate_rps = Fraction(profile.slots() * units.NS_PER_S, duration_ns).limit_denominator(
            10**6)
    if duration_ns is None and n_requests is None:
        duration_ns = DEFAULT_DURATION_NS
    n_threads = as_count(threads, "threads") or 1
    if n_threads > MAX_THREADS:
        raise ConfigError(f"threads {n_threads} is more than the {MAX_THREADS} hammer supports")
    n_conc = as_count(concurrency, "connections")
    if n_conc is not None and n_conc > MAX_CONCURRENCY:
        raise ConfigError(f"connections {n_conc:,} is more than the {MAX_CONCURRENCY:,} supported")
    timeout_ns = as_ns(timeout, "timeout")
    assert timeout_ns is not None
    spin_ns = as_ns(spin, "spin", allow_zero=True) or 0
    if spin_ns > MAX_SPIN_NS:
        raise ConfigError(f"spin {units.format_duration_ns(spin_ns)} is too long (at most 1s)")
    quantum_ns = parse_pacing(pacing)
    shard_index, shard_count = parse_shard(shard)
    if shard_count > 1:
        # a closed loop's budget and any given concurrency are split (the schedule's
        # slots are dealt by the core), so the shards together make the whole plan
        if n_conc is not None:
            n_conc = _share(n_conc, shard_index, shard_count, "connections")
        if n_requests is not None and rate_rps is None:
            n_requests = _share(n_requests, shard_index, shard_count, "requests")
    return Plan(rate_rps=rate_rps, rate_profile=profile, arrivals=arrivals,
                duration_ns=duration_ns, requests=n_requests, concurrency=n_conc,
                threads=n_threads, timeout_ns=timeout_ns, spin_ns=spin_ns,
                quantum_ns=quantum_ns, seed=int(seed), shard_index=shard_index,
                shard_count=shard_count)


def plan_option_names() -> frozenset[str]:
    """run()'s options that make a plan: make_plan's, `connections` for `concurrency`."""
    import inspect

    names = set(inspect.signature(make_plan).parameters) - {"concurrency"}
    return frozenset(names | {"connections"})


def plan_from_options(options: Mapping[str, Any]) -> Plan:
    """make_plan from run()'s plan options (plan_option_names())."""
    kwargs = dict(options)
    if "connections" in kwargs:
        kwargs["concurrency"] = kwargs.pop("connections")
    return make_plan(**kwargs)


def start_ns_for(start_at: float | None, now_ns: int, delay_ns: int) -> int:
    """When slot 0 is due on CLOCK_MONOTONIC: `delay_ns` from now, or at the wall-clock
    instant `start_at` (seconds since the epoch, as time.time()) when one was agreed,
    waited for on this host's monotonic clock. An instant already past stays the anchor:
    the shards' schedules stay interleaved, and the slots already due go out late."""
    import time

    if start_at is None:
        return now_ns + delay_ns
    # the wall clock read between two monotonic reads, the closest pair of a few: a
    # preemption between the reads would shift this shard's schedule against the others'
    best_gap_ns, mono_ns, wall_ns = 1 << 62, 0, 0
    for _ in range(5):
        m0 = time.monotonic_ns()
        wall = time.time_ns()
        m1 = time.monotonic_ns()
        if m1 - m0 < best_gap_ns:
            best_gap_ns, mono_ns, wall_ns = m1 - m0, (m0 + m1) // 2, wall
    return mono_ns + round(start_at * 1e9) - wall_ns


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int]:
    """'K/N' (1-based, as --shard takes it) or (K, N) into (index from 0, count)."""
    if shard is None:
        return 0, 1
    if isinstance(shard, str):
        k_text, sep, n_text = shard.partition("/")
        try:
            k, n = int(k_text), int(n_text)
        except ValueError:
            raise ConfigError(f"invalid shard {shard!r} (use K/N, e.g. 1/3)") from None
        if not sep:
            raise ConfigError(f"invalid shard {shard!r} (use K/N, e.g. 1/3)")
    else:
        k, n = shard
    if n < 1 or not 1 <= k <= n:
        raise ConfigError(f"invalid shard {k}/{n}: K must be 1..N")
    if n > MAX_SHARDS:
        raise ConfigError(f"{n} shards is more than the {MAX_SHARDS:,} supported")
    return k - 1, n


def _share(total: int, index: int, count: int, what: str) -> int:
    """Shard `index`'s part of `total`, the first shards taking one more."""
    part = total // count + (1 if index < total % count else 0)
    if part < 1:
        raise ConfigError(f"{what} {total:,} cannot be split into {count} shards")
    return part


def parse_pacing(text: str | None) -> int | None:
    """--pacing: `auto` (None: the kind's quantum), `exact` (0: a wake per slot), or a
    quantum in ns."""
    if text is None or text == "auto":
        return None
    if text == "exact":
        return 0
    try:
        quantum_ns = units.parse_duration_ns(text.removeprefix("quantum="))
    except ValueError as exc:
        raise ConfigError(f"pacing: {exc} (use auto, exact or a quantum such as 250us)") \
            from None
    if quantum_ns > MAX_QUANTUM_NS:
        raise ConfigError(f"pacing quantum {units.format_duration_ns(quantum_ns)} is too long "
                          "(at most 100ms)")
    return quantum_ns
