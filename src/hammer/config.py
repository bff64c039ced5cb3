"""Run configuration: one frozen dataclass, validated once, with the request pre-serialised.

The CLI and the Python API both build a RunConfig through make_config(); nothing
downstream re-validates.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import socket
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

from hammer.errors import ConfigError
from hammer.plan import Plan, PlanView, as_count, as_ns, make_plan

DEFAULT_OPEN_CONNECTIONS = 64
DEFAULT_CLOSED_CONNECTIONS = 10
USER_AGENT = "hammer/0.1"
_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
URL_SAFE = "/?&=%:@!$'()*+,;~-._[]"  # kept as is in a request target


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
class RunConfig(PlanView):
    """A run of the core's HTTP kind: the plan (when) and the requests (what)."""

    target: Target
    plan: Plan
    method: str = "GET"
    requests_table: tuple[PreparedRequest, ...] = ()         # every target, in order
    random_order: bool = False
    max_requests_per_conn: int = 0       # 0: no cap; 1: a new connection per request
    connect_timeout_ns: int | None = None  # None: the request timeout
    unix_socket: str | None = None
    tls: TlsOptions | None = None                     # https:// targets
    ok_statuses: frozenset[int] | None = None         # None: 2xx and 3xx are ok
    secrets: tuple[str, ...] = field(default=(), repr=False)  # redacted in every output
    # a replay: slot i sends requests_table[slot_targets[i]] (None: round-robin or random)
    slot_targets: array[int] | None = field(default=None, compare=False, repr=False)
    replay: dict[str, object] | None = field(default=None, compare=False, repr=False)
    # the per-target breakdown by group (a replay's path patterns): request -> row, and
    # each row's (method, label); None: a row per request
    target_groups: array[int] | None = field(default=None, compare=False, repr=False)
    group_labels: tuple[tuple[str, str], ...] | None = field(default=None, compare=False,
                                                             repr=False)
    slos: tuple[Any, ...] = ()                        # hammer.slo.Slo thresholds

    kind = "http"
    concurrency_unit = "connection"

    @property
    def quantum_ns(self) -> int:
        from hammer.plan import CORE_QUANTUM_NS

        return self.plan.quantum_for(CORE_QUANTUM_NS)

    @property
    def label(self) -> str:
        """What the run targets, for reports (secrets redacted): its URL, or with a targets
        file, the host they share and how many there are (each has its own row)."""
        t = self.target
        if len(self.requests_table) > 1 and self.replay is None:
            return f"{t.scheme}://{t.host_header} ({len(self.requests_table):,} targets)"
        return t.url

    @property
    def keepalive(self) -> bool:
        return self.max_requests_per_conn != 1

    def core_target(self) -> dict[str, object]:
        """Where to connect, as the core's Engine takes it (its `target`)."""
        return {
            "host": self.target.address,
            "port": self.target.port,
            "unix_path": self.unix_socket,
            "connect_timeout_ns": self.connect_timeout_ns or -1,
            "tls": self.tls.for_core(self.target) if self.tls is not None else None,
        }

    def core_kind(self) -> dict[str, dict[str, object]]:
        """The request kind's part of the core's Engine arguments (http= here)."""
        return {"http": self.core_http()}

    def core_http(self) -> dict[str, object]:
        """What to send, as the core's Engine takes it (its `http`)."""
        return {
            "requests": [(r.keep_alive, r.closing, r.is_head) for r in self.requests_table],
            "random_order": self.random_order,
            "max_per_conn": self.max_requests_per_conn,
            "ok_statuses": self.ok_statuses,
            "slot_targets": self.slot_targets,
            "target_groups": self.target_groups,
            "n_groups": len(self.group_labels) if self.group_labels is not None else None,
        }

    def setup_error(self, counters: Mapping[str, Any]) -> str | None:
        """Once the engine's connections are ready: why the run cannot start (from its
        counters), or None. The HTTP kind has no such condition."""
        return None

    def engine_figures(self, counters: Mapping[str, Any],
                       aggregator: Any) -> tuple[dict[str, Any], list[str]]:
        """What the kind measured beyond the common figures (the report shows them under
        "hammer"), and its notes, from the finished engine's counters and aggregator."""
        return {}, []

    def report_fields(self) -> dict[str, object]:
        """What the report says of this kind beyond the common fields."""
        fields: dict[str, object] = {
            "kind": "http",
            "ok_status": sorted(self.ok_statuses) if self.ok_statuses is not None
            else "2xx,3xx"}
        if self.replay is not None:
            fields["replay"] = self.replay
        return fields


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
    path = quote(parts.path or "/", safe=URL_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=URL_SAFE)
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
    pacing: str | None = None,
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
    ok_status: str | Iterable[int] | None = None,
    shard: str | tuple[int, int] | None = None,
) -> RunConfig:
    """Validate options (strings as on the command line, or numbers: seconds, req/s)
    into a RunConfig. Raises ConfigError with a one-line message."""
    plan = make_plan(rate=rate, arrivals=arrivals, duration=duration, requests=requests,
                     concurrency=connections, threads=threads, timeout=timeout, spin=spin,
                     pacing=pacing, seed=seed, shard=shard)
    n_conns = plan.concurrency
    if n_conns is None:
        default = DEFAULT_OPEN_CONNECTIONS if plan.open_loop else DEFAULT_CLOSED_CONNECTIONS
        n_conns = max(default, plan.threads)
    if n_conns < plan.threads:
        raise ConfigError(
            f"connections ({n_conns}) must be at least threads ({plan.threads}): "
            "each thread needs one")
    per_conn = as_count(max_requests_per_conn, "max-requests-per-conn") or 0
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
        plan=plan.with_concurrency(n_conns),
        method=table[0].method,
        requests_table=tuple(table),
        random_order=bool(random_order),
        max_requests_per_conn=per_conn,
        connect_timeout_ns=as_ns(connect_timeout, "connect-timeout"),
        unix_socket=unix_socket,
        tls=_tls(target, insecure, cacert, cert, key, sni),
        ok_statuses=parse_ok_statuses(ok_status),
    )


def parse_ok_statuses(value: str | Iterable[int] | None) -> frozenset[int] | None:
    """`--ok-status 200,204,3xx,404`: the statuses counted ok (None: 2xx and 3xx)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    ok: set[int] = set()
    for item in items:
        text = str(item).strip().lower()
        if len(text) == 3 and text[0] in "12345" and text[1:] == "xx":
            base = int(text[0]) * 100
            ok.update(range(base, base + 100))
        elif text.isdigit() and 100 <= int(text) <= 999:
            ok.add(int(text))
        else:
            raise ConfigError(f"invalid ok status {str(item).strip()!r} "
                              "(use codes and classes such as 200,204,3xx)")
    if not ok:
        raise ConfigError("--ok-status lists no status")
    return frozenset(ok)


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
