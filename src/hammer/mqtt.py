"""The MQTT kind: `hammer run mqtt://HOST:PORT/TOPIC`, a PUBLISH per request.

The core sends it (core/mqtt.pxi): each connection opens an MQTT 3.1.1 or 5 session (CONNECT,
clean session, a unique client id), then publishes one message at a time. A QoS 1
message is done when its PUBACK arrives, a QoS 2 message when its PUBCOMP does (after
PUBREC and PUBREL); both are measured from the intended send time like an HTTP request.
A QoS 0 message has no answer: it is counted when written, and the report says so. The
plan (rate, duration, connections, threads) is the same as HTTP's.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from hammer.config import RunConfig, Target, TlsOptions, _resolve
from hammer.errors import ConfigError
from hammer.plan import MQTT_OPTIONS, is_mqtt_url, plan_from_options, plan_option_names
from hammer.units import parse_size

SCHEMES = {"mqtt": 1883, "mqtts": 8883}
DEFAULT_CONNECTIONS = 10
DEFAULT_PAYLOAD_BYTES = 64
MAX_PAYLOAD_BYTES = 256 * 1024 * 1024
MAX_TOPIC_BYTES = 65_000
MAX_INFLIGHT = 65_534
E2E_STAMP_BYTES = 24             # --e2e: magic, sender, intended time, number
DEFAULT_E2E_WAIT_NS = 5_000_000_000
SLOT = "{slot}"
VERSIONS = {"3.1.1": 4, "5": 5}
# CONNACK return codes (3.1.1: 1-5; MQTT 5 reason codes from 0x80)
CONNACK_CODES = {1: "unacceptable protocol version", 2: "identifier rejected",
                 3: "server unavailable", 4: "bad user name or password",
                 5: "not authorized", 0x80: "unspecified error", 0x85: "client id not valid",
                 0x86: "bad user name or password", 0x87: "not authorized",
                 0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned",
                 0x9F: "connection rate exceeded"}
# MQTT 5 reason codes an acknowledgement may carry (0x80 and above: failure)
REASONS = {0x10: "no matching subscribers", 0x80: "unspecified error",
           0x83: "implementation specific error", 0x87: "not authorized",
           0x90: "topic name invalid", 0x91: "packet identifier in use",
           0x97: "quota exceeded", 0x99: "payload format invalid"}


@dataclass(frozen=True)
class MqttConfig(RunConfig):
    """A run of the core's MQTT kind: the plan (when) and the PUBLISH (what)."""

    qos: int = 1
    topic: str = ""
    payload: bytes = field(default=b"", repr=False)
    retain: bool = False
    client_prefix: str = ""
    keepalive_s: int = 0
    version: str = "3.1.1"
    inflight: int = 1
    batch: int = 0                   # PUBLISH packets a write carries at most (0: all due)
    storm: bool = False              # a request is a new connection and session
    e2e_filter: str | None = None    # --e2e: the subscribers' filter (None: no --e2e)
    e2e_wait_ns: int = DEFAULT_E2E_WAIT_NS
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    kind = "mqtt"

    def status_name(self, code: str) -> str:
        """How the report names a message's outcome: the packet it was done at, with its
        reason code when it is not 0 (MQTT 5)."""
        if self.storm:
            reason = int(code)
            meaning = CONNACK_CODES.get(reason)
            return "CONNACK" if reason == 0 else (
                f"CONNACK 0x{reason:02x}" + (f" {meaning}" if meaning else ""))
        packet = {0: "written", 1: "PUBACK", 2: "PUBCOMP"}[self.qos]
        reason = int(code)
        if reason == 0:
            return packet
        meaning = REASONS.get(reason)
        return f"{packet} 0x{reason:02x}" + (f" {meaning}" if meaning else "")

    @property
    def label(self) -> str:
        return self.target.url

    @property
    def keepalive(self) -> bool:
        return True

    def core_kind(self) -> dict[str, dict[str, object]]:
        """What to send, as the core's Engine takes it (its `mqtt`)."""
        return {"mqtt": {
            "qos": self.qos,
            "retain": self.retain,
            "topic": self.topic.encode(),
            "payload": self.payload,
            "client_prefix": self.client_prefix.encode(),
            "username": self.username.encode() if self.username is not None else None,
            "password": self.password.encode() if self.password is not None else None,
            "keepalive_s": self.keepalive_s,
            "version": VERSIONS[self.version],
            "inflight": self.inflight,
            "batch": self.batch,
            "storm": self.storm,
            "ok_statuses": sorted(self.ok_statuses or ()),
            "e2e": None if self.e2e_filter is None else {
                "filter": self.e2e_filter.encode(), "linger_max_ns": self.e2e_wait_ns},
        }}

    def setup_error(self, counters: Mapping[str, Any]) -> str | None:
        """--e2e: the run starts only once every subscriber has its SUBACK."""
        subscribed = counters.get("e2e_subscribed")
        if subscribed is None or subscribed == 1:
            return None
        why = "the broker refused it" if subscribed == 2 else "no SUBACK in time"
        return f"--e2e: the subscriber could not subscribe to {self.e2e_filter!r} ({why})"

    def engine_figures(self, counters: Mapping[str, Any],
                       aggregator: Any) -> tuple[dict[str, Any], list[str]]:
        """How the packets were written, what the --e2e subscribers received, and notes
        on a broker's Receive Maximum or a subscriber lost."""
        figures: dict[str, Any] = {}
        notes = []
        if not self.storm:     # (a storm writes its CONNECTs alone: report_fields says so)
            figures["writes"] = write_figures(counters["mqtt_batch"], counters["mqtt_writes"],
                                              counters["mqtt_packets"])
        if (e2e := aggregator.e2e_summary()) is not None:
            figures["e2e"] = {"filter": self.e2e_filter, **e2e}
            if not counters.get("e2e_open_at_end"):
                notes.append("--e2e: a subscriber's session ended before the run did: what "
                             "it would have received counts as lost")
        limit = counters["mqtt_inflight_limit"]
        if limit < self.inflight:
            notes.append(f"the broker's Receive Maximum capped the messages in flight per "
                         f"connection at {limit:,} (--inflight {self.inflight:,} asked)")
        return figures, notes

    def report_fields(self) -> dict[str, object]:
        if self.storm:
            return {"kind": "mqtt", "protocol": self.version, "storm": True,
                    "client_id_prefix": self.client_prefix,
                    "done_at": "CONNACK (each request a new connection and session, "
                               "measured from its intended time through connect and "
                               "CONNECT; then DISCONNECT)",
                    "writes": "one packet per write"}
        return {
            "kind": "mqtt",
            "protocol": self.version,
            "qos": self.qos,
            "topic": self.topic,
            "payload_bytes": len(self.payload),
            "retain": self.retain,
            "client_id_prefix": self.client_prefix,
            "in_flight_per_connection": self.inflight if self.qos else 1,
            "done_at": {0: "written (QoS 0 has no answer: its latency is the send lag)",
                        1: "PUBACK", 2: "PUBCOMP"}[self.qos],
            "writes": {"max_packets_per_write": self.batch or None},
            "e2e": None if self.e2e_filter is None else {"filter": self.e2e_filter},
        }


def subscription_filter(topic: str) -> str:
    """The filter that receives every topic of a template: the topic level holding
    {slot} becomes the single-level wildcard + (other topics of that level are received
    too; without the stamp, they count as foreign)."""
    if SLOT not in topic:
        return topic
    return "/".join("+" if SLOT in level else level for level in topic.split("/"))


def write_figures(batch: int, writes: int, packets: int) -> dict[str, Any]:
    """How the run's packets were written: the cap (--batch, or what fits in the core's
    16 KiB), the writes made and the packets they carried."""
    return {"max_packets_per_write": batch, "writes": writes, "packets": packets,
            "packets_per_write": round(packets / writes, 2) if writes else None}


def _payload(payload: str | None, payload_file: str | None, size: str | int | None) -> bytes:
    given = [x for x in (payload, payload_file, size) if x is not None]
    if len(given) > 1:
        raise ConfigError("give one of --payload, --payload-file and --payload-size")
    if payload is not None:
        data = payload.encode()
    elif payload_file is not None:
        try:
            with open(payload_file, "rb") as f:
                data = f.read(MAX_PAYLOAD_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read payload file {payload_file!r}: "
                              f"{exc.strerror or exc}") from None
    else:
        try:
            n = DEFAULT_PAYLOAD_BYTES if size is None else (
                size if isinstance(size, int) else parse_size(size))
        except ValueError as exc:
            raise ConfigError(f"--payload-size: {exc}") from None
        if n < 0:
            raise ConfigError("--payload-size must be 0 or more")
        data = bytes(48 + i % 10 for i in range(min(n, MAX_PAYLOAD_BYTES + 1)))
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ConfigError("an MQTT payload is at most 256 MiB")
    return data


def make_mqtt_target(url: str) -> tuple[Target, str, str | None, str | None]:
    """The broker (resolved once), the topic, and the URL's user and password."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"invalid URL: {exc}") from None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if not host:
        raise ConfigError("invalid URL: no broker host (use mqtt://HOST:PORT/TOPIC)")
    topic = unquote(parts.path.lstrip("/"))
    if not topic:
        raise ConfigError("no topic: give it as the URL's path, mqtt://HOST:PORT/TOPIC")
    if len(topic.encode()) > MAX_TOPIC_BYTES:
        raise ConfigError("the topic is too long")
    if any(c in topic for c in "+#\0"):
        raise ConfigError(f"topic {topic!r}: a PUBLISH topic has no wildcards (+, #)")
    port = port or SCHEMES[scheme]
    shown_host = f"[{host}]" if ":" in host else host
    netloc = f"{shown_host}:{port}"
    target = Target(url=f"{scheme}://{netloc}/{parts.path.lstrip('/')}", scheme=scheme,
                    host=host, port=port, path="/" + topic, address=_resolve(host, port),
                    host_header=netloc)
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return target, topic, user, password


def make_mqtt_config(
    url: str,
    *,
    connect_timeout: str | float | int | None = None,
    qos: int | str = 1,
    payload: str | None = None,
    payload_file: str | None = None,
    payload_size: str | int | None = None,
    retain: bool = False,
    client_id_prefix: str | None = None,
    keepalive: str | int | None = None,
    mqtt_version: str = "3.1.1",
    inflight: str | int | None = None,
    batch: str | int | None = None,
    storm: bool = False,
    e2e: bool = False,
    e2e_wait: str | int | None = None,
    username: str | None = None,
    password: str | None = None,
    insecure: bool = False,
    cacert: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    sni: str | None = None,
    **plan_options: Any,
) -> MqttConfig:
    """Validate the options of an MQTT run into an MqttConfig (ConfigError: one line).
    plan_options are run()'s (rate, connections, duration, ...: plan_option_names())."""
    from hammer.config import _tls
    from hammer.plan import as_count, as_ns

    try:
        qos_n = int(qos)
    except ValueError:
        qos_n = -1
    if qos_n not in (0, 1, 2):
        raise ConfigError(f"--qos {qos!r}: 0, 1 or 2")
    plan = plan_from_options(plan_options)
    window = as_count(inflight, "inflight") or 1
    if window > MAX_INFLIGHT:
        raise ConfigError(f"--inflight {window:,}: at most {MAX_INFLIGHT:,} per connection")
    batch_n = 0 if batch is None or batch == "auto" else (as_count(batch, "batch") or 0)
    if batch_n > MAX_INFLIGHT:
        raise ConfigError(f"--batch {batch_n:,}: at most {MAX_INFLIGHT:,} packets per write")
    if storm and batch is not None:
        raise ConfigError("--storm opens a session per request: --batch does not apply")
    if e2e and storm:
        raise ConfigError("--e2e measures published messages: not with --storm")
    if e2e_wait is not None and not e2e:
        raise ConfigError("--e2e-wait needs --e2e")
    if storm and window > 1:
        raise ConfigError("--storm opens a session per request: --inflight does not apply")
    if window > 1 and qos_n == 0:
        raise ConfigError("--inflight is for QoS 1 and 2 (a QoS 0 message waits for "
                          "nothing)")
    if str(mqtt_version) not in VERSIONS:
        raise ConfigError(f"--mqtt-version {mqtt_version!r}: 3.1.1 or 5")
    if qos_n == 0 and not plan.open_loop and not storm:
        raise ConfigError("QoS 0 needs a rate (-r): nothing answers a QoS 0 message, so "
                          "there is no closed loop to keep")
    n_conns = plan.concurrency or max(DEFAULT_CONNECTIONS, plan.threads)
    if n_conns < plan.threads:
        raise ConfigError(f"connections ({n_conns}) must be at least threads "
                          f"({plan.threads}): each thread needs one")
    target, topic, url_user, url_password = make_mqtt_target(url)
    http_target = Target(url=target.url, scheme="https" if target.scheme == "mqtts" else "x",
                         host=target.host, port=target.port, path=target.path,
                         address=target.address, host_header=target.host_header)
    tls: TlsOptions | None = _tls(http_target, insecure, cacert, cert, key, sni)
    keepalive_s = 0
    if keepalive is not None:
        keepalive_ns = as_ns(keepalive, "keepalive", allow_zero=True) or 0
        keepalive_s = keepalive_ns // 1_000_000_000
        if keepalive_s > 65_535:
            raise ConfigError("--keepalive is at most 65535s (18h12m15s)")
    prefix = client_id_prefix if client_id_prefix is not None else \
        f"hammer-{os.getpid()}-{secrets.token_hex(3)}"
    if len(prefix.encode()) > 200:
        raise ConfigError("--client-id-prefix is too long (at most 200 bytes)")
    user = username if username is not None else url_user
    pw = password if password is not None else url_password
    # the URL's password is a secret even when --password overrides it
    if pw is not None and user is None:
        raise ConfigError("an MQTT password needs a user name")
    data = _payload(payload, payload_file, payload_size)
    if e2e and len(data) < E2E_STAMP_BYTES:
        raise ConfigError(f"--e2e stamps the first {E2E_STAMP_BYTES} bytes of each payload: "
                          f"the payload has {len(data)}")
    e2e_filter = None
    if e2e:
        e2e_filter = subscription_filter(topic)
        if plan.threads > 1:
            # one subscriber a thread, sharing the messages (each goes to one of them)
            e2e_filter = f"$share/{prefix}-e2e/{e2e_filter}"
    e2e_wait_ns = DEFAULT_E2E_WAIT_NS if e2e_wait is None else (
        as_ns(e2e_wait, "e2e-wait") or DEFAULT_E2E_WAIT_NS)
    method = "CONNECT" if storm else f"PUBLISH qos{qos_n}"
    return MqttConfig(
        target=target, plan=plan.with_concurrency(n_conns), method=method,
        max_requests_per_conn=1 if storm else 0,
        connect_timeout_ns=as_ns(connect_timeout, "connect-timeout"), tls=tls,
        ok_statuses=frozenset({0}) if storm else frozenset(range(0x80)),
        group_labels=((method, target.url),),
        secrets=tuple(p for p in dict.fromkeys((password, url_password)) if p),
        qos=qos_n, topic=topic, payload=data,
        retain=bool(retain), client_prefix=prefix, keepalive_s=keepalive_s,
        version=str(mqtt_version), inflight=window, batch=batch_n, storm=bool(storm),
        e2e_filter=e2e_filter, e2e_wait_ns=e2e_wait_ns,
        username=user, password=pw)




def mqtt_config_from_options(url: str, options: dict[str, Any]) -> MqttConfig:
    """The MQTT config from run()'s options (those given): HTTP-only ones are usage
    errors."""
    import inspect

    allowed = (set(inspect.signature(make_mqtt_config).parameters) - {"url", "plan_options"}
               | plan_option_names())
    extra = sorted(k for k in options if k not in allowed)
    if extra:
        raise ConfigError(f"--{extra[0].replace('_', '-')} is for HTTP, not an mqtt:// URL")
    return make_mqtt_config(url, **options)


__all__ = ["MQTT_OPTIONS", "MqttConfig", "is_mqtt_url", "make_mqtt_config",
           "mqtt_config_from_options", "subscription_filter", "write_figures"]
