"""Replay production traffic from access logs: `hammer replay LOG... --target URL`.

The logs become a timeline: request i is due at t0 + (its original time - the first
time) / speed, as absolute times from the start (the core's trace pacer), never as
sleeps between requests, so nothing drifts. Logs stamped to the second are spread
through each second (evenly, Poisson, or kept as bursts); nginx's $msec gives real
times. The timeline is held in arrays (one int64 time and one uint32 request index per
line), not a Python object per line; each distinct (method, path) is serialised once.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import random
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from hammer import units
from hammer.errors import ConfigError

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SPREADS = ("even", "poisson", "none")
MAX_SHOWN_MALFORMED = 5
# nginx and Apache: common, and combined (referer and user agent); an optional leading
# or trailing nginx $msec (seconds since the epoch, to the millisecond)
_COMMON = re.compile(
    r'^(?:(?P<msec0>\d{9,11}\.\d{3}) )?(?:(?P<vhost>\S+) )?\S+ \S+ \S+ '
    r'\[(?P<time>[^\]]+)\] '
    r'"(?P<method>[A-Z]+) (?P<path>\S+)(?: HTTP/[0-9.]+)?" (?P<status>\d{3}) \S+'
    r'(?: "[^"]*" "[^"]*")?(?: (?P<msec1>\d{9,11}\.\d{3}))?')
_TIME_FORMAT = "%d/%b/%Y:%H:%M:%S %z"


@dataclass
class LogStats:
    """What the logs held, counted: nothing is dropped silently."""

    files: list[str] = field(default_factory=list)
    lines: int = 0
    parsed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    malformed: list[str] = field(default_factory=list)     # the first few, with line numbers
    out_of_order: int = 0
    precise: bool = True             # every kept line had a sub-second time ($msec)
    original_status: Counter[str] = field(default_factory=Counter)
    removed_idle_s: float = 0.0      # original time cut by --max-gap
    empty_bodies: int = 0            # unsafe requests sent with an empty body
    loops: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "lines": self.lines, "parsed": self.parsed,
                "skipped": dict(self.skipped), "malformed_shown": self.malformed,
                "out_of_order": self.out_of_order,
                "timestamps": "sub-second" if self.precise else "to the second",
                "removed_idle_s": round(self.removed_idle_s, 3), "loops": self.loops,
                "sent_with_empty_body": self.empty_bodies,
                "original_status": dict(sorted(self.original_status.items()))}


@dataclass
class Timeline:
    """Offsets (ns from the first request, already divided by the speed), the request
    index of each, and the distinct requests."""

    offsets_ns: array[int]
    targets: array[int]
    requests: list[tuple[str, str]]          # (method, path) by index
    stats: LogStats
    span_s: float                            # original span, first to last request
    speed: float
    hosts: list[str | None] = field(default_factory=list)   # logged Host by index

    @property
    def duration_s(self) -> float:
        return self.offsets_ns[-1] / 1e9 if self.offsets_ns else 0.0



def _open(path: str) -> IO[str]:
    try:
        raw = open(path, "rb")  # noqa: SIM115 - returned wrapped
    except OSError as exc:
        raise ConfigError(f"cannot read log {path}: {exc.strerror}") from None
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    binary: Any = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
    return io.TextIOWrapper(binary, encoding="utf-8", errors="replace")


Parsed = tuple[float, bool, str, str, str, str | None]   # time, precise, method, path,
                                                        # status, host (None: not logged)


def _parse_json(line: str) -> Parsed | None:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    method, path = obj.get("method") or obj.get("request_method"), \
        obj.get("uri") or obj.get("path") or obj.get("request_uri")
    if (method is None or path is None) and isinstance(obj.get("request"), str):
        parts = obj["request"].split()
        if len(parts) >= 2:
            method, path = parts[0], parts[1]
    if not isinstance(method, str) or not isinstance(path, str):
        return None
    if not method.isalpha() or not path or any(c.isspace() or ord(c) < 32 for c in path):
        return None  # it could not be a request line's method and target
    status = str(obj.get("status", "-"))
    host = obj.get("host") or obj.get("http_host") or obj.get("server_name")
    host = host if isinstance(host, str) and host and " " not in host else None
    # nginx logs a request when it ends: with $request_time, it began that much earlier
    took = obj.get("request_time")
    took_s = float(took) if isinstance(took, int | float) and not isinstance(took, bool) \
        else 0.0
    for key in ("msec", "time", "timestamp"):
        value = obj.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) - took_s, float(value) != int(value) or key == "msec", \
                method, path, status, host
    for key in ("time_iso8601", "time_local"):
        value = obj.get(key)
        if isinstance(value, str):
            try:
                when = (datetime.fromisoformat(value) if key == "time_iso8601"
                        else datetime.strptime(value, _TIME_FORMAT))
            except ValueError:
                return None
            return when.timestamp(), False, method, path, status, host
    return None


@dataclass
class Entries:
    """The parsed lines as arrays: time (s since the epoch), whether it is sub-second,
    and the request index. No Python object per line."""

    times: array[float] = field(default_factory=lambda: array("d"))
    precise: array[int] = field(default_factory=lambda: array("b"))
    targets: array[int] = field(default_factory=lambda: array("I"))

    def __len__(self) -> int:
        return len(self.times)

    def sort(self) -> None:
        """By time, stably (logs written at completion can be slightly out of order)."""
        order = sorted(range(len(self.times)), key=self.times.__getitem__)
        self.times = array("d", (self.times[i] for i in order))
        self.precise = array("b", (self.precise[i] for i in order))
        self.targets = array("I", (self.targets[i] for i in order))


@dataclass(frozen=True)
class Filters:
    """Which lines to replay: methods, the original status classes or codes, path
    patterns to include and exclude, and a window of the log (offsets from its first
    line, seconds)."""

    methods: frozenset[str] | None = None
    statuses: frozenset[str] | None = None        # "2xx", "404", ...
    include: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None
    start_s: float | None = None
    end_s: float | None = None

    def status_ok(self, status: str) -> bool:
        return (self.statuses is None or status in self.statuses
                or f"{status[:1]}xx" in self.statuses)


def read_logs(paths: Iterable[str], *, allow_unsafe: bool = False,
              methods: frozenset[str] | None = None, filters: Filters | None = None,
              keep_host: bool = False, hosts: list[str | None] | None = None,
              ) -> tuple[Entries, list[tuple[str, str]], LogStats]:
    """Parse every line into arrays; the distinct requests (and, in `hosts`, the Host
    each was logged with, with keep_host); the counts."""
    hosts = hosts if hosts is not None else []
    stats = LogStats()
    index: dict[tuple[str, str, str | None], int] = {}
    requests: list[tuple[str, str]] = []
    entries = Entries()
    time_cache: dict[str, float] = {}
    last = float("-inf")
    filters = filters or Filters(methods=methods)
    first: float | None = None
    for path in paths:
        stats.files.append(path)
        with _open(path) as f:
            for lineno, raw in enumerate(f, 1):
                line = raw.strip()
                stats.lines += 1
                if not line:
                    stats.skipped["empty"] += 1
                    continue
                parsed = _parse_line(line, time_cache)
                if parsed is None:
                    stats.skipped["malformed"] += 1
                    if len(stats.malformed) < MAX_SHOWN_MALFORMED:
                        stats.malformed.append(f"{path}:{lineno}: {line[:80]}")
                    continue
                when, precise, method, target, status, host = parsed
                stats.parsed += 1
                first = when if first is None else min(first, when)
                if filters.methods is not None and method not in filters.methods:
                    stats.skipped["method filtered"] += 1
                    continue
                if not filters.status_ok(status):
                    stats.skipped["status filtered"] += 1
                    continue
                if filters.include is not None and not filters.include.search(target):
                    stats.skipped["path not included"] += 1
                    continue
                if filters.exclude is not None and filters.exclude.search(target):
                    stats.skipped["path excluded"] += 1
                    continue
                if ((filters.start_s is not None and when - first < filters.start_s)
                        or (filters.end_s is not None and when - first >= filters.end_s)):
                    stats.skipped["outside the time window"] += 1
                    continue
                if method in UNSAFE_METHODS:
                    if not allow_unsafe:
                        stats.skipped[f"unsafe method {method} (--allow-unsafe sends them)"] += 1
                        continue
                    stats.empty_bodies += 1   # the log does not hold the body it had
                key = (method, target, host if keep_host else None)
                i = index.get(key)
                if i is None:
                    i = index[key] = len(requests)
                    requests.append((method, target))
                    hosts.append(key[2])
                if when < last:
                    stats.out_of_order += 1
                last = max(last, when)
                stats.precise = stats.precise and precise
                stats.original_status[status] += 1
                entries.times.append(when)
                entries.precise.append(1 if precise else 0)
                entries.targets.append(i)
    return entries, requests, stats


def _parse_line(line: str, time_cache: dict[str, float]) -> Parsed | None:
    if line.startswith("{"):
        return _parse_json(line)
    m = _COMMON.match(line)
    if m is None:
        return None
    msec = m.group("msec0") or m.group("msec1")
    if msec is not None:
        when, precise = float(msec), True
    else:
        stamp = m.group("time")
        cached = time_cache.get(stamp)
        if cached is None:
            try:
                cached = datetime.strptime(stamp, _TIME_FORMAT).timestamp()
            except ValueError:
                return None
            if len(time_cache) > 100_000:
                time_cache.clear()
            time_cache[stamp] = cached
        when, precise = cached, False
    return (when, precise, m.group("method"), m.group("path"), m.group("status"),
            m.group("vhost"))


def build_timeline(paths: Iterable[str], *, speed: float = 1.0, spread: str = "even",
                   seed: int = 1, allow_unsafe: bool = False,
                   methods: frozenset[str] | None = None, filters: Filters | None = None,
                   max_gap_s: float | None = None, loops: int = 1,
                   keep_host: bool = False) -> Timeline:
    """The replay's timeline from the logs."""
    if spread not in SPREADS:
        raise ConfigError(f"unknown spread {spread!r} (use even, poisson or none)")
    if not speed > 0:
        raise ConfigError(f"speed must be positive, not {speed!r}")
    if loops < 1:
        raise ConfigError(f"loop must be at least 1, not {loops}")
    hosts: list[str | None] = []
    entries, requests, stats = read_logs(paths, allow_unsafe=allow_unsafe, methods=methods,
                                         filters=filters, keep_host=keep_host, hosts=hosts)
    if not len(entries):
        raise ConfigError(f"no request to replay in {', '.join(stats.files)} "
                          f"({stats.lines:,} lines, skipped: {dict(stats.skipped)})")
    if stats.out_of_order:
        entries.sort()
    first = entries.times[0]
    # to the microsecond: the logs give milliseconds, and float seconds since the epoch
    # carry ~100 ns of rounding error
    offsets = array("q", (round((t - first) / speed * 1e6) * 1000
                          for t in _spread(entries, spread, seed)))
    removed_ns = _compress_gaps(offsets, round(max_gap_s / speed * 1e9)) if max_gap_s else 0
    targets = entries.targets
    if loops > 1:
        # the next pass starts one mean gap after the last request of the previous one
        period_ns = offsets[-1] + max(offsets[-1] // max(len(offsets) - 1, 1), 1)
        base = array("q", offsets)
        for k in range(1, loops):
            offsets.extend(t + k * period_ns for t in base)
        targets = array("I", targets.tobytes() * loops)
    stats.removed_idle_s = removed_ns * speed / 1e9
    stats.loops = loops
    return Timeline(offsets_ns=offsets, targets=targets, requests=requests,
                    stats=stats, span_s=entries.times[-1] - first, speed=speed, hosts=hosts)


def _compress_gaps(offsets: array[int], max_gap_ns: int) -> int:
    """Shorten every gap longer than max_gap_ns to it, in place; the time removed."""
    removed = 0
    previous = offsets[0] if offsets else 0
    for i in range(1, len(offsets)):
        gap = offsets[i] - previous
        previous = offsets[i]
        if gap > max_gap_ns:
            removed += gap - max_gap_ns
        offsets[i] -= removed
    return removed


def _spread(entries: Entries, spread: str, seed: int) -> Iterator[float]:
    """Times to the second become times within it: evenly, Poisson (sorted uniform draws:
    a Poisson process given its count), or left as bursts."""
    rng = random.Random(seed)
    times, precise = entries.times, entries.precise
    i = 0
    while i < len(times):
        when = times[i]
        if precise[i] or spread == "none":
            yield when
            i += 1
            continue
        j = i
        while j < len(times) and times[j] == when and not precise[j]:
            j += 1
        n = j - i
        if spread == "even":
            yield from (when + k / n for k in range(n))
        else:
            yield from (when + u for u in sorted(rng.random() for _ in range(n)))
        i = j


_NUMBER = re.compile(r"(?<=/)\d+(?=/|$)")
_ID = re.compile(r"(?<=/)(?:[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}|[0-9a-fA-F]{16,}|"
                 r"(?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{20,})(?=/|$)")


def path_pattern(path: str) -> str:
    """A path with its numbers and ids folded and its query dropped, for the per-target
    breakdown: /users/123/orders/9f8e...?x=1 -> /users/{n}/orders/{id}?..."""
    base, sep, _ = path.partition("?")
    return _ID.sub("{id}", _NUMBER.sub("{n}", base)) + ("?..." if sep else "")


def groups_of(requests: list[tuple[str, str]]) -> tuple[array[int], list[tuple[str, str]]]:
    """Each request's group (method and path pattern), and the groups in order."""
    index: dict[tuple[str, str], int] = {}
    of = array("I")
    for method, path in requests:
        key = (method, path_pattern(path))
        of.append(index.setdefault(key, len(index)))
    return of, list(index)


def replay_config(timeline: Timeline, target_url: str, *, headers: Iterable[str] = (),
                  body_dir: str | None = None, **options: Any) -> Any:
    """A RunConfig that sends the timeline to target_url (the core's HTTP kind). With
    body_dir, an unsafe request's body is the file body_dir/METHOD/PATH (query dropped)
    when there is one; else it goes out empty."""
    from urllib.parse import quote

    from hammer.config import URL_SAFE, _parse_header, _prepare, make_config, make_target

    base = make_config(target_url, requests=1, rate=1, **options)   # checks and resolves
    target = base.target
    # what the URL implies (Basic credentials from user:password@), then -H's
    parsed_headers = (make_target(target_url, resolve=False)[1]
                      + tuple(_parse_header(h) for h in headers))
    table = []
    with_body: set[int] = set()
    for i, (method, path) in enumerate(timeline.requests):
        body = b""
        if body_dir is not None and method in UNSAFE_METHODS:
            body_path = Path(body_dir, method, path.partition("?")[0].lstrip("/"))
            if body_path.is_file():
                body = body_path.read_bytes()
                with_body.add(i)
        host = timeline.hosts[i] if i < len(timeline.hosts) else None
        request_headers = parsed_headers + ((("Host", host),) if host else ())
        # the path as the log has it: already as the client sent it on the request line
        # (the parser takes it up to the first space)
        if not path.startswith("/"):
            path = make_target(f"{target.scheme}://{target.host_header}/{path}",
                               resolve=False)[0].path
        path = quote(path, safe=URL_SAFE)   # non-ASCII goes out percent-encoded
        table.append(_prepare(dataclasses.replace(target, path=path), method,
                              request_headers, body))
    duration_ns = timeline.offsets_ns[-1] + 1
    n = len(timeline.offsets_ns)
    mean_rate = Fraction(n * units.NS_PER_S, max(duration_ns, 1)).limit_denominator(10**6)
    plan = dataclasses.replace(base.plan, rate_rps=mean_rate, duration_ns=None, requests=n,
                               trace_ns=timeline.offsets_ns)
    group_of, groups = groups_of(timeline.requests)
    return dataclasses.replace(base, plan=plan, requests_table=tuple(table),
                               slot_targets=timeline.targets,
                               target_groups=group_of, group_labels=tuple(groups),
                               replay={**_replay_fields(timeline),
                                       **_body_counts(timeline, with_body)})


def _body_counts(timeline: Timeline, with_body: set[int]) -> dict[str, int]:
    """Unsafe requests sent with a body from --body-dir, and with an empty one."""
    unsafe = {i for i, (method, _) in enumerate(timeline.requests) if method in UNSAFE_METHODS}
    if not unsafe:
        return {"sent_with_empty_body": 0, "sent_with_body_from_body_dir": 0}
    counts = Counter(t for t in timeline.targets if t in unsafe)
    from_dir = sum(n for t, n in counts.items() if t in with_body)
    return {"sent_with_empty_body": sum(counts.values()) - from_dir,
            "sent_with_body_from_body_dir": from_dir}


def _replay_fields(timeline: Timeline) -> dict[str, Any]:
    return {"speed": timeline.speed, "original_span_s": round(timeline.span_s, 3),
            "replay_s": round(timeline.duration_s, 3),
            "distinct_requests": len(timeline.requests), **timeline.stats.to_dict()}


def render_dry_run(timeline: Timeline) -> str:
    stats = timeline.stats
    # the original's busiest second: the replay's offsets, times the speed
    original = Counter(int(t * timeline.speed // 1_000_000_000) for t in timeline.offsets_ns)
    peak_second, peak = max(original.items(), key=lambda kv: (kv[1], -kv[0]),
                            default=(0, 0))
    lines = [
        f"hammer replay --dry-run: {', '.join(stats.files)}",
        f"  lines       {stats.lines:,} read, {stats.parsed:,} parsed, "
        f"{len(timeline.offsets_ns):,} to replay, {len(timeline.requests):,} distinct",
        "  skipped     " + (", ".join(f"{k}: {v:,}" for k, v in stats.skipped.items()) or "-"),
        f"  timestamps  {'sub-second' if stats.precise else 'to the second'}; "
        f"{stats.out_of_order:,} lines out of order",
        f"  span        {units.format_duration_ns(timeline.span_s * 1e9)} of original "
        f"traffic; replay {units.format_duration_ns(timeline.duration_s * 1e9)} "
        f"at speed {timeline.speed:g}",
        f"  peak second {peak:,} requests in the original, {peak_second:,} s in",
        "  status      " + ("  ".join(f"{k}: {v:,}" for k, v in
                                      sorted(stats.original_status.items())) or "-"),
    ]
    if stats.empty_bodies:
        lines.append(f"  bodies      {stats.empty_bodies:,} unsafe requests go out with an "
                     "empty body (the log does not hold theirs)")
    if stats.removed_idle_s:
        lines.append(f"  --max-gap   removed {units.format_duration_ns(stats.removed_idle_s * 1e9)}"
                     " of idle original time")
    for shown in stats.malformed:
        lines.append(f"  malformed   {shown}")
    return "\n".join(lines) + "\n"


def log_paths(paths: Iterable[str]) -> list[str]:
    out = []
    for p in paths:
        if not Path(p).is_file():
            raise ConfigError(f"cannot read log {p}: no such file")
        out.append(p)
    return out
