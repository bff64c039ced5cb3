"""Run configuration: one frozen dataclass, validated once, with the request pre-serialised.

The CLI and the Python API both build a RunConfig through make_config(); nothing
downstream re-validates.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from urllib.parse import SplitResult, quote, urlsplit

from hammer import pacer, units

DEFAULT_DURATION_NS = 10 * units.NS_PER_S
DEFAULT_TIMEOUT_NS = 10 * units.NS_PER_S
# Open loop: the worker stops sleeping this long before each slot and polls instead.
# Waking from a sleep can be late by a millisecond or more on an idle (virtual) CPU;
# polling keeps sends within microseconds of the schedule at the cost of CPU time. By
# default only when a CPU is left over for everything else (the target, the control
# plane): polling threads on every CPU make the schedule worse, not better.
DEFAULT_SPIN_NS = 1_000_000
DEFAULT_OPEN_CONNECTIONS = 64
DEFAULT_CLOSED_CONNECTIONS = 10
MAX_RATE_RPS = 100_000_000
MIN_RATE_RPS = Fraction(1, 86_400)
MAX_CONNECTIONS = 1_000_000
MAX_THREADS = 256
USER_AGENT = "hammer/0.1"
_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
_URL_SAFE = "/?&=%:@!$'()*+,;~-._[]"


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_spin_ns(threads: int) -> int:
    return DEFAULT_SPIN_NS if threads < usable_cpus() else 0


class ConfigError(ValueError):
    """A bad option or argument: reported as one line, exit code 2, nothing sent."""


@dataclass(frozen=True)
class Target:
    """Where requests go: the URL as given (secrets redacted) and the resolved address."""

    url: str                # for reports: user:password removed
    scheme: str
    host: str               # as written in the URL (no brackets)
    port: int
    path: str               # path and query, as sent on the request line
    address: str            # resolved IP literal the core connects to
    host_header: str

    @property
    def is_loopback(self) -> bool:
        ip = _ip(self.address)
        return ip is not None and ip.is_loopback


@dataclass(frozen=True)
class TlsOptions:
    """TLS for https:// targets. Certificates are verified unless insecure."""

    insecure: bool = False
    cafile: str | None = None        # trust these CAs instead of the system store
    certfile: str | None = None      # client certificate (chain), PEM
    keyfile: str | None = None       # its private key, PEM (default: in certfile)
    server_name: str | None = None   # SNI and the name verified (default: the URL host)

    def for_core(self, target: Target) -> dict[str, object]:
        name = self.server_name or target.host
        is_ip = _ip(name) is not None
        return {
            "insecure": self.insecure, "cafile": self.cafile, "certfile": self.certfile,
            "keyfile": self.keyfile,
            "server_name": None if is_ip else name,   # SNI carries no IP literal
            "verify_name": None if is_ip else name,
            "verify_ip": name if is_ip else None,
        }


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


@dataclass(frozen=True)
class PreparedRequest:
    """One target's request, serialised once: keep-alive, and with `Connection: close`."""

    method: str
    url: str                 # redacted, for reports
    keep_alive: bytes = field(repr=False)
    closing: bytes = field(repr=False)

    @property
    def is_head(self) -> bool:
        return self.method == "HEAD"


@dataclass(frozen=True)
class RunConfig:
    target: Target
    method: str = "GET"
    rate_rps: Fraction | None = None   # None: closed loop
    connections: int = DEFAULT_CLOSED_CONNECTIONS
    threads: int = 1
    duration_ns: int | None = DEFAULT_DURATION_NS  # None: until `requests` run out
    requests: int | None = None
    timeout_ns: int = DEFAULT_TIMEOUT_NS
    spin_ns: int = DEFAULT_SPIN_NS
    requests_table: tuple[PreparedRequest, ...] = ()         # every target, in order
    random_order: bool = False
    seed: int = 1
    max_requests_per_conn: int = 0       # 0: no cap; 1: a new connection per request
    connect_timeout_ns: int | None = None  # None: the request timeout
    unix_socket: str | None = None
    rate_profile: pacer.RateProfile | None = None   # fitted to the run's duration
    arrivals: str = "uniform"                         # or "poisson"
    tls: TlsOptions | None = None                     # https:// targets

    @property
    def request_bytes(self) -> bytes:
        """The first target's keep-alive request, as sent."""
        return self.requests_table[0].keep_alive

    @property
    def keepalive(self) -> bool:
        return self.max_requests_per_conn != 1

    @property
    def open_loop(self) -> bool:
        return self.rate_rps is not None

    @property
    def mode(self) -> str:
        return "open" if self.open_loop else "closed"

    def n_slots(self) -> int:
        """Slots the open-loop schedule holds: slot i is due at i / rate seconds."""
        if self.rate_rps is None:
            raise ValueError("closed loop has no schedule")
        candidates = []
        if self.rate_profile is not None:
            candidates.append(self.rate_profile.slots())
        elif self.duration_ns is not None:
            candidates.append(pacer.slots_within(self.duration_ns, self.rate_rps))
        if self.requests is not None:
            candidates.append(self.requests)
        return min(candidates)


def redact_url(url: str) -> str:
    """The URL with any user:password@ replaced, for messages and reports."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@", r"\1<redacted>@", url)


def _parse_url(url: str) -> SplitResult:
    shown = redact_url(url)
    if not url or any(c.isspace() for c in url):
        raise ConfigError(f"invalid URL {shown!r}")
    if "://" not in url:
        raise ConfigError(f"invalid URL {shown!r}: give a scheme, e.g. http://{shown}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ConfigError(f"invalid URL {shown!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"unsupported URL scheme {parts.scheme!r} in {shown!r} (use http:// or https://)")
    if not parts.hostname:
        raise ConfigError(f"invalid URL {shown!r}: no host")
    return parts


def _resolve(host: str, port: int) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ConfigError(f"cannot resolve host {host!r}: {reason}") from None
    for family in (socket.AF_INET, socket.AF_INET6):
        for fam, _, _, _, sockaddr in infos:
            if fam == family:
                return str(sockaddr[0])
    raise ConfigError(f"cannot resolve host {host!r}: no IPv4 or IPv6 address")


def make_target(url: str, *, resolve: bool = True) -> tuple[Target, tuple[tuple[str, str], ...]]:
    """Parse and resolve the URL once. Returns the target and any header the URL
    implies (Basic credentials from user:password@)."""
    parts = _parse_url(url)
    host = parts.hostname or ""
    default_port = 443 if parts.scheme == "https" else 80
    port = parts.port or default_port
    # non-ASCII in the path or query goes out percent-encoded (UTF-8), as browsers do
    path = quote(parts.path or "/", safe=_URL_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_URL_SAFE)
    implied: tuple[tuple[str, str], ...] = ()
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        creds = f"{parts.username or ''}:{parts.password or ''}".encode()
        implied = (("Authorization", "Basic " + base64.b64encode(creds).decode()),)
        netloc = netloc.rsplit("@", 1)[1]
    shown_host = f"[{host}]" if ":" in host else host
    host_header = shown_host if parts.port in (None, default_port) else f"{shown_host}:{port}"
    redacted = parts._replace(netloc=netloc, fragment="").geturl()
    target = Target(url=redacted, scheme=parts.scheme, host=host, port=port, path=path,
                    address=_resolve(host, port) if resolve else host,
                    host_header=host_header)
    return target, implied


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(c not in _TCHARS for c in name):
        raise ConfigError(f"invalid header {text!r} (use 'Name: value')")
    if any(c in value for c in "\r\n\0"):
        raise ConfigError(f"invalid header {name!r}: the value holds a line break or NUL")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError(
            f"invalid header {name!r}: the value holds characters outside Latin-1 "
            "(percent-encode or base64 them)") from None
    if name.lower() == "connection":
        raise ConfigError(f"header {name!r} is set by hammer: use --disable-keepalive or "
                          "--max-requests-per-conn")
    if name.lower() in _FRAMING_HEADERS:
        raise ConfigError(f"header {name!r} is set by hammer from the body; remove it")
    return name, value


def serialise_request(target: Target, method: str, headers: Iterable[tuple[str, str]],
                      body: bytes, *, close: bool = False) -> bytes:
    """The exact bytes of one HTTP/1.1 request (keep-alive, or asking the server to close)."""
    given = list(headers)
    names = {k.lower() for k, _ in given}
    lines = [f"{method} {target.path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {target.host_header}")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in names:
        lines.append("Accept: */*")
    lines.extend(f"{k}: {v}" for k, v in given)
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body


def _as_ns(value: str | float | int | None, what: str, *, allow_zero: bool = False) -> int | None:
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


def _as_count(value: str | int | None, what: str) -> int | None:
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


def _as_rate(value: str | float | int | Fraction | None) -> Fraction | None:
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


def make_config(
    url: str | None,
    *,
    rate: str | float | int | Fraction | None = None,
    connections: str | int | None = None,
    threads: str | int = 1,
    duration: str | float | int | None = None,
    requests: str | int | None = None,
    timeout: str | float | int = "10s",
    spin: str | float | int | None = None,
    method: str = "GET",
    headers: Iterable[str] | Mapping[str, str] = (),
    body: str | bytes | None = None,
    body_file: str | os.PathLike[str] | None = None,
    targets: str | None = None,
    targets_format: str = "http",
    random_order: bool = False,
    seed: int = 1,
    disable_keepalive: bool = False,
    max_requests_per_conn: str | int | None = None,
    connect_timeout: str | float | int | None = None,
    unix_socket: str | None = None,
    arrivals: str = "uniform",
    insecure: bool = False,
    cacert: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    sni: str | None = None,
) -> RunConfig:
    """Validate options (strings as on the command line, or numbers: seconds, req/s)
    into a RunConfig. Raises ConfigError with a one-line message."""
    rate_rps, profile, duration_ns, n_requests = _schedule(rate, arrivals, duration, requests)
    n_threads, n_conns = _concurrency(threads, connections, open_loop=rate_rps is not None)
    timeout_ns = _as_ns(timeout, "timeout")
    assert timeout_ns is not None
    spin_ns = None if spin == "auto" else _as_ns(spin, "spin", allow_zero=True)
    if spin_ns is None:
        spin_ns = default_spin_ns(n_threads)
    if spin_ns > units.NS_PER_S:
        raise ConfigError(f"spin {units.format_duration_ns(spin_ns)} is too long (at most 1s)")
    per_conn = _as_count(max_requests_per_conn, "max-requests-per-conn") or 0
    if disable_keepalive:
        if per_conn not in (0, 1):
            raise ConfigError("--disable-keepalive and --max-requests-per-conn disagree")
        per_conn = 1
    if unix_socket is not None:
        if not Path(unix_socket).exists():
            raise ConfigError(f"unix socket {unix_socket!r} does not exist")
        if len(os.fsencode(unix_socket)) > 107:
            raise ConfigError(f"unix socket path {unix_socket!r} is too long (at most 107 bytes)")
    target, table = _requests(
        url, method, headers, body, body_file, targets, targets_format,
        resolve=unix_socket is None)
    return RunConfig(
        target=target,
        method=table[0].method,
        rate_rps=rate_rps,
        connections=n_conns,
        threads=n_threads,
        duration_ns=duration_ns,
        requests=n_requests,
        timeout_ns=timeout_ns,
        spin_ns=spin_ns,
        requests_table=tuple(table),
        random_order=bool(random_order),
        seed=int(seed),
        max_requests_per_conn=per_conn,
        connect_timeout_ns=_as_ns(connect_timeout, "connect-timeout"),
        unix_socket=unix_socket,
        rate_profile=profile,
        arrivals=arrivals,
        tls=_tls(target, insecure, cacert, cert, key, sni),
    )


def _schedule(rate: str | float | int | Fraction | None, arrivals: str,
              duration: str | float | int | None, requests: str | int | None,
              ) -> tuple[Fraction | None, pacer.RateProfile | None, int | None, int | None]:
    """The rate (None: closed loop), the rate profile if one was given, how long the
    load phase lasts and how many requests it may schedule."""
    profile = None
    if isinstance(rate, str) and pacer.is_profile(rate):
        try:
            profile = pacer.parse_profile(rate)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        rate_rps = None
    else:
        rate_rps = _as_rate(rate)
    if arrivals not in ("uniform", "poisson"):
        raise ConfigError(f"unknown arrivals {arrivals!r} (use uniform or poisson)")
    if arrivals == "poisson" and rate_rps is None:
        raise ConfigError("--arrivals poisson needs a constant --rate")
    duration_ns = _as_ns(duration, "duration")
    n_requests = _as_count(requests, "requests")
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
    return rate_rps, profile, duration_ns, n_requests


def _concurrency(threads: str | int, connections: str | int | None,
                 open_loop: bool) -> tuple[int, int]:
    n_threads = _as_count(threads, "threads") or 1
    n_conns = _as_count(connections, "connections")
    if n_conns is None:
        default = DEFAULT_OPEN_CONNECTIONS if open_loop else DEFAULT_CLOSED_CONNECTIONS
        n_conns = max(default, n_threads)
    if n_threads > MAX_THREADS:
        raise ConfigError(f"threads {n_threads} is more than the {MAX_THREADS} hammer supports")
    if n_conns > MAX_CONNECTIONS:
        raise ConfigError(f"connections {n_conns:,} is more than the {MAX_CONNECTIONS:,} supported")
    if n_conns < n_threads:
        raise ConfigError(
            f"connections ({n_conns}) must be at least threads ({n_threads}): "
            "each thread needs one")
    return n_threads, n_conns


def _body(body: str | bytes | None, body_file: str | os.PathLike[str] | None) -> bytes:
    if body is not None and body_file is not None:
        raise ConfigError("give --body or --body-file, not both")
    if body is not None:
        return body.encode() if isinstance(body, str) else bytes(body)
    if body_file is not None:
        try:
            return Path(body_file).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read body file {str(body_file)!r}: {exc.strerror}") from None
    return b""


def _method(method: str) -> str:
    method = method.strip() if isinstance(method, str) else method
    if not method or any(c not in _TCHARS for c in method):
        raise ConfigError(f"invalid method {method!r}")
    return method


def _requests(url: str | None, method: str, headers: Iterable[str] | Mapping[str, str],
              body: str | bytes | None, body_file: str | os.PathLike[str] | None,
              targets: str | None, targets_format: str, resolve: bool,
              ) -> tuple[Target, list[PreparedRequest]]:
    """The target (resolved once) and every request of the run, serialised once: the one
    the options describe, or one per entry of a targets file."""
    method = _method(method)
    body_bytes = _body(body, body_file)
    if isinstance(headers, Mapping):
        header_lines = [f"{k}: {v}" for k, v in headers.items()]
    else:
        header_lines = list(headers)
    parsed_headers = tuple(_parse_header(h) for h in header_lines)
    specs = []
    if targets is not None:
        from hammer.targets import load_targets

        specs = load_targets(targets, targets_format)
        if url is None:
            url = specs[0].url
    if url is None:
        raise ConfigError("no URL given")
    target, implied = make_target(url, resolve=resolve)
    all_headers = implied + parsed_headers
    if not specs:
        return target, [_prepare(target, method, all_headers, body_bytes)]
    table = []
    for spec in specs:
        try:
            t, t_implied = make_target(spec.url, resolve=False)
            if (t.scheme, t.host, t.port) != (target.scheme, target.host, target.port):
                raise ConfigError(
                    f"{t.scheme}://{t.host}:{t.port} is not {target.scheme}://"
                    f"{target.host}:{target.port}: every target of a run shares one "
                    "host and port")
            spec_headers = t_implied + parsed_headers + tuple(
                _parse_header(h) for h in spec.headers)
            table.append(_prepare(replace(t, address=target.address), _method(spec.method),
                                  spec_headers, spec.body))
        except ConfigError as exc:
            raise ConfigError(f"{spec.where}: {exc}") from None
    return target, table


def _tls(target: Target, insecure: bool, cacert: str | None, cert: str | None,
         key: str | None, sni: str | None) -> TlsOptions | None:
    if target.scheme != "https":
        if any(v for v in (insecure, cacert, cert, key, sni)):
            raise ConfigError("TLS options (--insecure, --cacert, --cert, --key, --sni) need "
                              "an https:// URL")
        return None
    for what, path in (("CA file", cacert), ("certificate", cert), ("key", key)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"cannot read {what} {path!r}: no such file")
    if key is not None and cert is None:
        raise ConfigError("--key needs --cert")
    return TlsOptions(insecure=bool(insecure), cafile=cacert, certfile=cert, keyfile=key,
                      server_name=sni)


def _prepare(target: Target, method: str, headers: tuple[tuple[str, str], ...],
             body: bytes) -> PreparedRequest:
    return PreparedRequest(
        method=method, url=target.url,
        keep_alive=serialise_request(target, method, headers, body),
        closing=serialise_request(target, method, headers, body, close=True),
    )
