"""Rendering of a finished run's report dictionary (the JSON contract).

This module only formats; the numbers come from ``Report.to_dict()``. The text report
is compact, aligned and at most :data:`MAX_WIDTH` characters wide; the JSON report
keeps the producer's key order and never contains NaN or infinities.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from hammer.figures import LATENCY_KEYS, LATENCY_ROWS, status_sort_key
from hammer.figures import count as _count
from hammer.figures import mapping as _mapping
from hammer.figures import ms as _ms
from hammer.figures import num as _num
from hammer.figures import rate as _rate
from hammer.figures import seconds as _seconds
from hammer.units import format_bytes, format_rate

__all__ = ["CSV_COLUMNS", "MAX_WIDTH", "render_csv", "render_json", "render_text",
           "write_csv_atomic", "write_json_atomic"]

#: The per-second series, one row a second, as `--csv` writes it.
CSV_COLUMNS = ("t_s", "target_rps", "sent", "completed", "ok", "http_error", "errors",
               "p50_ms", "p90_ms", "p99_ms", "max_ms")

#: Maximum width of a line of the text report.
MAX_WIDTH = 100

MAX_TEXT_ERROR_SAMPLES = 3  # the JSON keeps more, with whole tracebacks
TEXT_TARGET_ROWS = 20       # the per-target table of the text report, at most
_LABEL_WIDTH = 12  # "  requests    " -> 2 spaces indent + label padded to 12
_TABLE_LABEL_WIDTH = 13
_TABLE_COLUMN_WIDTH = 9


# --------------------------------------------------------------------------- helpers


def _plural(n: Any, word: str) -> str:
    return f"{_count(n)} {word}{'' if n == 1 else 's'}"


def _shorten(text: str, width: int) -> str:
    """Cut ``text`` in the middle with ``...`` so that it fits in ``width`` characters."""
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    head = (width - 3 + 1) // 2
    tail = width - 3 - head
    return text[:head] + "..." + (text[-tail:] if tail else "")


def _section(label: str, items: Iterable[str], sep: str = "  ") -> list[str]:
    """``  label       item  item ...``, wrapped at item boundaries within MAX_WIDTH."""
    indent = " " * (2 + _LABEL_WIDTH)
    first = f"  {label:<{_LABEL_WIDTH}}"
    lines: list[str] = []
    current = first
    empty = True
    for raw in items:
        item = _shorten(raw, MAX_WIDTH - len(indent))
        candidate = current + ("" if empty else sep) + item
        if not empty and len(candidate) > MAX_WIDTH:
            lines.append(current)
            current = indent + item
        else:
            current = candidate
        empty = False
    if empty:
        current += "-"
    lines.append(current.rstrip())
    return lines


def _wrapped(prefix: str, text: str) -> list[str]:
    """``prefix`` + ``text`` wrapped to MAX_WIDTH, continuation lines indented."""
    return textwrap.wrap(
        text,
        width=MAX_WIDTH,
        initial_indent=prefix,
        subsequent_indent=" " * min(len(prefix), 8),
        break_long_words=True,
        break_on_hyphens=False,
    ) or [prefix.rstrip()]


def _status_sort_key(item: tuple[str, Any]) -> tuple[int, str]:
    return status_sort_key(item[0])


CONNECTION_KINDS = ("http", "mqtt")    # kinds whose concurrency is connections


def _header(report: Mapping[str, Any]) -> list[str]:
    mode = report.get("mode")
    by_connection = report.get("kind", "http") in CONNECTION_KINDS
    rate = _mapping(report.get("rate"))
    target_rps = _num(rate.get("target_rps"))
    if mode == "closed":
        what = (f"closed loop, {_plural(report.get('connections'), 'connection')}"
                if by_connection
                else f"closed loop, {_count(report.get('connections'))} in flight")
    elif target_rps is None:
        what = f"{mode or 'open'} loop"
    else:
        what = f"{mode or 'open'} loop at {format_rate(target_rps)}"
    duration = _seconds(report.get("duration_s"))
    target = str(report.get("target", "-"))
    method = f" ({report['method']})" if report.get("method") else ""

    head = f"hammer: {what} for {duration}"
    line = f"{head} against {target}{method}"
    if len(line) <= MAX_WIDTH:
        lines = [line]
    else:  # Long URL: give it its own line, shortened in the middle if still too long.
        prefix = "  target "
        lines = [
            f"{head}{method}",
            prefix + _shorten(target, MAX_WIDTH - len(prefix)),
        ]
    concurrency = (_plural(report.get("connections"), "connection") if by_connection
                   else f"{_count(report.get('connections'))} in flight at most")
    threads = f"{_plural(report.get('threads'), 'thread')}, " if by_connection else ""

    pacing = _mapping(report.get("pacing"))
    extra = ""
    if pacing.get("mode") == "exact":
        extra = ", pacing exact"
    elif pacing.get("quantum_us"):
        extra = f", pacing quantum {_seconds(pacing['quantum_us'] / 1e6)}"
    spin = _num(report.get("spin_ms"))
    if spin:
        extra += f", polling {_seconds(spin / 1e3)} before each send"
    lines.append(
        f"  {concurrency}, {threads}"
        f"timeout {_seconds(report.get('timeout_s'))}{extra}"
    )
    return lines


def _latency_table(report: Mapping[str, Any]) -> list[str]:
    width = _TABLE_COLUMN_WIDTH
    lines = [
        f"  {'latency (ms)':<{_TABLE_LABEL_WIDTH}}"
        + "".join(f"{key:>{width}}" for key in LATENCY_KEYS)
    ]
    rows = [(label, _mapping(report.get(key))) for label, key in LATENCY_ROWS]
    e2e = _mapping(_mapping(report.get("hammer")).get("e2e"))
    if "latency_ms" in e2e:
        rows.append(("end to end", _mapping(e2e.get("latency_ms"))))
    for label, stats in rows:
        lines.append(
            f"  {label:<{_TABLE_LABEL_WIDTH}}"
            + "".join(f"{_ms(stats.get(stat)):>{width}}" for stat in LATENCY_KEYS)
        )
    return lines


# --------------------------------------------------------------------------- public


def render_text(report: Mapping[str, Any]) -> str:
    """Render ``report`` as a compact, aligned, wrk-like text report (ends with newline)."""
    counts = _mapping(report.get("counts"))
    rate = _mapping(report.get("rate"))
    data = _mapping(report.get("bytes"))
    status = _mapping(report.get("status"))
    errors = _mapping(report.get("errors"))
    saturated = [str(reason) for reason in report.get("saturated") or ()]
    notes = [str(note) for note in report.get("notes") or ()]

    lines = _header(report)
    if saturated:
        lines.extend(_wrapped("WARNING: generator saturated: ", "; ".join(saturated)))
    lines.append("")

    lines += _section(
        "requests",
        [
            f"scheduled {_count(counts.get('scheduled'))}",
            f"sent {_count(counts.get('sent'))}",
            f"completed {_count(counts.get('completed'))}",
            f"late {_count(counts.get('late'))}",
            f"unsent {_count(counts.get('unsent'))}",
            *([f"unknown {_count(counts['unknown'])}"] if counts.get("unknown") else []),
        ],
    )
    lines += _section(
        "outcome",
        [
            f"ok {_count(counts.get('ok'))}",
            # MQTT: answered, but with a failure reason code (or a refused CONNACK)
            f"{'http errors' if report.get('kind', 'http') != 'mqtt' else 'not ok'} "
            f"{_count(counts.get('http_error'))}",
            f"errors {_count(counts.get('error'))}",
        ],
    )
    target_rps = "-" if report.get("mode") == "closed" else _rate(rate.get("target_rps"))
    lines += _section(
        "rate",
        [
            f"target {target_rps}",
            f"achieved {_rate(rate.get('achieved_rps'))}",
            f"throughput {_rate(report.get('throughput_rps'))}",
        ],
    )
    lines.append("")
    lines += _latency_table(report)
    lines.append("")

    lines += _section(
        "status",
        [f"{code}: {_count(n)}" for code, n in sorted(status.items(), key=_status_sort_key)],
        sep="   ",
    )
    lines += _section(
        "errors",
        [
            f"{kind}: {_count(n)}"
            for kind, n in sorted(errors.items(), key=lambda kv: (-(_num(kv[1]) or 0), kv[0]))
        ],
        sep="   ",
    )
    sent_bytes = _num(data.get("sent"))
    received_bytes = _num(data.get("received"))
    lines += _section(
        "bytes",
        [
            f"sent {'-' if sent_bytes is None else format_bytes(int(sent_bytes))}",
            f"received {'-' if received_bytes is None else format_bytes(int(received_bytes))}",
        ],
        sep="   ",
    )
    lines += _tls_lines(report)
    lines += _slo_lines(report)
    lines += _hammer_lines(report)
    lines += _mqtt_lines(report)
    lines += _targets_table(report)
    lines += _time_series_table(report)
    lines += _parts_table(report)
    if notes:
        lines.append("")
        for note in notes:
            lines.extend(_wrapped("note: ", note))
    return "\n".join(lines) + "\n"


def _tls_lines(report: Mapping[str, Any]) -> list[str]:
    """Connection set-up, kept out of request latency: TLS handshakes and connects."""
    tls = report.get("tls")
    if not isinstance(tls, Mapping):
        return []
    handshake = _mapping(tls.get("handshake_ms"))
    connect = _mapping(report.get("connect_ms"))
    verified = "verified" if tls.get("verified") else "NOT verified (--insecure)"
    return _section("tls", [
        f"{_count(tls.get('handshakes'))} handshakes ({_count(tls.get('resumed'))} resumed)",
        f"handshake p50 {_ms(handshake.get('p50'))} ms p99 {_ms(handshake.get('p99'))} ms",
        f"connect p50 {_ms(connect.get('p50'))} ms",
        f"certificates {verified}",
    ], sep="   ")


def _slo_lines(report: Mapping[str, Any]) -> list[str]:
    """Each --slo threshold, passed or FAILED, with the figure it was judged on."""
    items = []
    for slo in report.get("slo") or ():
        slo = _mapping(slo)
        value = _num(slo.get("value"))
        unit = slo.get("unit")
        if value is None:
            shown = "no value"
        elif unit == "ms":
            shown = f"{_ms(value)} ms"
        elif unit == "ratio":
            shown = f"{value * 100:.3g}%"
        elif unit == "rps":
            shown = _rate(value)
        else:
            shown = _count(value)
        items.append(f"{slo.get('slo')}: {'passed' if slo.get('passed') else 'FAILED'} "
                     f"({shown})")
    return _section("slo", items, sep="   ") if items else []


def _hammer_lines(report: Mapping[str, Any]) -> list[str]:
    """A Python hammer's run: how hit() was called, why it stopped, the first errors."""
    hammer = _mapping(report.get("hammer"))
    if hammer.get("kind") != "python":
        return []
    lines = _section("hammer", [str(hammer.get("class", "-")), str(hammer.get("call", "-"))],
                     sep="   ")
    if report.get("stopped"):
        lines.extend(_wrapped("  stopped     ", f"by the hammer: {report['stopped']}"))
    for sample in list(report.get("error_samples") or ())[:MAX_TEXT_ERROR_SAMPLES]:
        sample = _mapping(sample)
        last = str(sample.get("traceback", "")).strip().splitlines()[-1:] or ["-"]
        lines.extend(_wrapped("  first error ", f"slot {sample.get('slot')}: {last[0]}"))
    return lines


def _mqtt_lines(report: Mapping[str, Any]) -> list[str]:
    """An MQTT run: what a message was, how it was written, when it counted as done, and
    with --e2e what the subscribers received."""
    mqtt = _mapping(report.get("hammer"))
    if mqtt.get("kind") != "mqtt":
        return []
    if mqtt.get("storm"):
        items = [f"MQTT {mqtt.get('protocol')} connection storm",
                 f"client ids {mqtt.get('client_id_prefix')}-s-SLOT"]
    else:
        items = [f"MQTT {mqtt.get('protocol')}, QoS {mqtt.get('qos')}",
                 f"{_count(mqtt.get('payload_bytes'))}-byte payload"
                 + (", retained" if mqtt.get("retain") else ""),
                 f"topic {mqtt.get('topic')}",
                 f"{_count(mqtt.get('in_flight_per_connection'))} in flight per connection",
                 _writes_text(mqtt.get("writes"))]
    lines = _section("mqtt", items, sep="   ") + _wrapped("  done at     ",
                                                       str(mqtt.get("done_at")))
    e2e = _mapping(mqtt.get("e2e"))
    if "received" in e2e:
        counts = [f"received {_count(e2e.get('unique'))}"]
        counts += [f"{label} {_count(e2e.get(key))}" for key, label, always in _E2E_COUNTS
                   if always or e2e.get(key)]
        lines += _section("end to end", counts, sep="   ")
        lines += _wrapped("  subscribed  ", f"{e2e.get('filter')} (in this process; latency "
                                            "from each message's intended time to its "
                                            "delivery)")
    return lines


# (key, label, shown when 0)
_E2E_COUNTS = (("lost", "lost", True), ("duplicates", "duplicates", True),
               ("out_of_order", "out of order", True),
               ("unacknowledged", "received but not acknowledged", False),
               ("foreign", "without hammer's stamp", False), ("untracked", "untracked", False))


def _writes_text(writes: Any) -> str:
    """How packets were written: measured packets per write, and the cap."""
    if not isinstance(writes, Mapping):
        return str(writes)
    cap = writes.get("max_packets_per_write")
    per = writes.get("packets_per_write")
    if per is None:
        return "nothing written" if cap is None else f"up to {_count(cap)} packets per write"
    cap_text = f" (at most {_count(cap)})" if cap else ""
    return f"{per:,.2f} packets per write{cap_text}"


def _targets_table(report: Mapping[str, Any]) -> list[str]:
    """Per target, when the run had several (a targets file); past TEXT_TARGET_ROWS, the
    most sent of them (the JSON and HTML reports have every row)."""
    targets = [_mapping(t) for t in report.get("targets") or []]
    if len(targets) < 2:
        return []
    lines = [""]
    if len(targets) > TEXT_TARGET_ROWS:
        lines.append(f"  the {TEXT_TARGET_ROWS} most sent of {len(targets):,} targets "
                     "(the JSON and HTML reports have every one)")
        targets = sorted(targets, key=lambda t: -(_num(t.get("sent")) or 0))
        targets = targets[:TEXT_TARGET_ROWS]
    lines.append(f"  {'target':<44} {'sent':>9} {'ok':>9} {'http err':>9} {'errors':>8}"
                 f" {'p50 ms':>8} {'p99 ms':>8}")
    for t in targets:
        latency = _mapping(t.get("latency_ms"))
        name = _shorten(f"{t.get('method', '')} {t.get('url', '')}", 44)
        lines.append(f"  {name:<44} {_count(t.get('sent')):>9} {_count(t.get('ok')):>9} "
                     f"{_count(t.get('http_error')):>9} {_count(t.get('error')):>8} "
                     f"{_ms(latency.get('p50')):>8} {_ms(latency.get('p99')):>8}")
    return lines


def _time_series_table(report: Mapping[str, Any]) -> list[str]:
    """Second by second, when the rate follows a profile (so a ramp shows), or a replay
    (target: what the original traffic had in that second of the replay)."""
    rows = report.get("time_series") or []
    rate = _mapping(report.get("rate"))
    replay = _mapping(report.get("hammer")).get("replay")
    if not rows or not (rate.get("profile") or rate.get("arrivals") == "poisson" or replay):
        return []
    lines = ["", f"  {'second':>6} {'target/s':>10} {'achieved/s':>11} {'throughput/s':>13}"
                 f" {'http err':>8} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}"]
    for row in rows:
        lines.append(f"  {row.get('t_s', 0):>6} {_rate(row.get('target_rps')):>10} "
                     f"{_rate(row.get('achieved_rps')):>11} "
                     f"{_rate(row.get('throughput_rps')):>13} "
                     f"{_count(row.get('http_error')):>8} {_count(row.get('errors')):>7} "
                     f"{_ms(row.get('p50_ms')):>8} {_ms(row.get('p99_ms')):>8}")
    duration = _num(report.get("duration_s"))
    drain = next((row.get("t_s") for row in rows if duration is not None
                  and (_num(row.get("t_s")) or 0) >= duration), None)
    if drain is not None:
        lines.append(f"  second {drain} on: the drain (responses that came after the "
                     "load phase)")
    return lines


def _parts_table(report: Mapping[str, Any]) -> list[str]:
    """A merged report's parts (shards or hosts): what each sent and how it kept up."""
    parts = report.get("parts") or []
    if not parts:
        return []
    starts = [_num(p.get("start_epoch_s")) for p in parts]
    first = min((s for s in starts if s is not None), default=None)
    lines = ["", f"  {'part':<24} {'sent':>10} {'achieved/s':>11} {'lag p99 ms':>11}"
                 f" {'start ms':>9} {'CPU s':>7}  saturated"]
    for part, start in zip(parts, starts, strict=True):
        offset = "-" if start is None or first is None else f"+{(start - first) * 1e3:.1f}"
        saturated = "; ".join(str(r) for r in part.get("saturated") or ()) or "no"
        name = str(part.get("part", ""))
        if part.get("host"):
            name += f" {part['host']}"
        lines.append(f"  {_shorten(name, 24):<24} "
                     f"{_count(part.get('sent')):>10} {_rate(part.get('achieved_rps')):>11} "
                     f"{_ms(part.get('send_lag_p99_ms')):>11} {offset:>9} "
                     f"{_cpu(part.get('cpu_s')):>7}  {saturated}")
    for part in report.get("lost_parts") or ():
        lines.append(f"  {_shorten(str(part.get('part', '')), 24):<24} {'LOST':>10}  "
                     f"{part.get('worker')}: {part.get('reason')}")
    return lines


def _cpu(value: Any) -> str:
    number = _num(value)
    return "-" if number is None else f"{number:.2f}"


def render_compare(rows: Iterable[Mapping[str, Any]], before: str, after: str) -> str:
    """Two reports side by side (compare_reports' rows): each figure, its difference and
    the change in percent."""
    lines = [f"  {'':<22} {_shorten(before, 14):>14} {_shorten(after, 14):>14} "
             f"{'diff':>12} {'change':>9}"]
    for row in rows:
        unit = row["unit"]
        cells = [_compare_cell(row.get(k), unit) for k in ("before", "after", "diff")]
        pct = row.get("change_pct")
        change = "-" if pct is None else f"{pct:+.1f}%"
        diff = _num(row.get("diff"))
        if diff is not None and diff > 0:
            cells[2] = "+" + cells[2]
        label = f"{row['figure']} ({unit})" if unit in ("ms", "%", "/s") else row["figure"]
        lines.append(f"  {label:<22} {cells[0]:>14} {cells[1]:>14} {cells[2]:>12} "
                     f"{change:>9}")
    return "\n".join(lines) + "\n"


def _compare_cell(value: Any, unit: str) -> str:
    value = _num(value)
    if value is None:
        return "-"
    if unit == "ms":
        return _ms(value)
    if unit in ("%", "/s"):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    return _count(value)


def _finite(value: Any) -> Any:
    """A JSON-safe copy of ``value``: NaN/inf floats become None, tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def render_json(report: Mapping[str, Any]) -> str:
    """Render ``report`` as indented JSON (key order kept, no NaN/inf), ending in newline."""
    return json.dumps(_finite(report), indent=2, sort_keys=False, allow_nan=False) + "\n"


def render_csv(report: Mapping[str, Any]) -> str:
    """The per-second series as CSV (a header row, then a row a second; empty cells for
    what a second does not have, such as latency with no completion)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.get("time_series") or ():
        writer.writerow(["" if row.get(k) is None else row.get(k) for k in CSV_COLUMNS])
    return out.getvalue()


def write_csv_atomic(report: Mapping[str, Any], path: str) -> None:
    """Write ``render_csv(report)`` to ``path`` atomically (as write_json_atomic)."""
    _write_atomic(render_csv(report), path, "CSV")


def write_text_atomic(text: str, path: str, what: str) -> None:
    """Write text to ``path`` atomically (``"-"``: stdout); OSError names ``what``."""
    _write_atomic(text, path, what)


def _umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_error(path: str, exc: OSError, what: str = "JSON") -> OSError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    error = OSError(f"cannot write {what} report to {path}: {reason}")
    error.errno = exc.errno
    return error


def write_json_atomic(report: Mapping[str, Any], path: str) -> None:
    """Write ``render_json(report)`` to ``path`` atomically; ``"-"`` means stdout.

    The JSON goes to a temporary file in the destination directory, is fsynced, and
    is renamed over ``path``, so readers see either the old file or the complete new
    one. On failure the temporary file is removed and an :class:`OSError` with the
    one-line message ``cannot write JSON report to PATH: <reason>`` is raised.
    """
    _write_atomic(render_json(report), path, "JSON")  # serialised before touching the disk


def _write_atomic(text: str, path: str, what: str) -> None:
    if path == "-":
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except OSError as exc:
            raise _write_error(path, exc, what) from exc
        return

    directory = os.path.dirname(os.path.abspath(path))
    temp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            mode="w",
            encoding="utf-8",
            dir=directory,
            prefix=f".{os.path.basename(path)}.",
            suffix=".tmp",
            delete=False,
        ) as temp:
            temp_name = temp.name
            temp.write(text)
            temp.flush()
            # NamedTemporaryFile creates 0600; give the report the usual permissions.
            os.fchmod(temp.fileno(), 0o666 & ~_umask())
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
        temp_name = None
    except OSError as exc:
        raise _write_error(path, exc, what) from exc
    finally:
        if temp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
