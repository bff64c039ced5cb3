"""Saved results: the histograms a JSON report carries, and what `hammer report` does
with reports: load them, merge reports of one plan (shards or hosts) exactly, compare two.

A report's `histograms` hold what percentiles are computed from: the corrected and
uncorrected latency and the send lag (3 significant digits), each second's corrected
latency (2 digits), and each target row's. Each is an HdrHistogram V2-compressed,
base64 string (ns; any HdrHistogram library decodes it) beside the exact min, max, sum
and clamped count, which the encoding does not keep. A merge adds counts bucket by bucket
into the core's histograms and takes every percentile from them, so a merged report's
figures are what one run with all the results would have reported.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from hammer.errors import ConfigError
from hammer.metrics import LAG_NOTE_START, REPORT_VERSION, lag_note

MAIN_HISTOGRAMS = ("latency", "latency_uncorrected", "send_lag")
# connection set-up histograms: their name in a report, their key in connection_times
CONNECTION_HISTOGRAMS = {"connect": "connect_state", "tls_handshake": "tls_state"}
# report fields that must be equal in reports merged into one (their plan)
PLAN_FIELDS = ("kind", "target", "method", "mode", "timeout_s", "pacing")
RATE_PLAN_FIELDS = ("profile", "arrivals")
MAX_ERROR_SAMPLES = 10


class ReportError(ConfigError):
    """A saved report that cannot be read, or reports that cannot be merged."""


class SavedReport:
    """A report known by its dict alone (a merge, or a file read back): what a caller of
    hammer.run reads of a Report."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return self.data

    @property
    def counts(self) -> Any:
        from hammer.metrics import Counts

        names = Counts.__dataclass_fields__
        return Counts(**{k: v for k, v in self.data["counts"].items() if k in names})

    @property
    def interrupted(self) -> str | None:
        value = self.data.get("interrupted")
        return str(value) if value is not None else None

    @property
    def partial(self) -> bool:
        return bool(self.data.get("partial"))

    @property
    def parts(self) -> list[dict[str, Any]]:
        return list(self.data.get("parts") or [])

    def saturation(self) -> list[str]:
        return [str(reason) for reason in self.data.get("saturated") or ()]


# ------------------------------------------------------------------ encoding

def encode_histogram(state: Mapping[str, Any], significant_figures: int) -> dict[str, Any]:
    """A core histogram's state (Histogram.state()) as a report keeps it. The core's
    counts array has HdrHistogram's layout: it is copied whole into an hdrh histogram of
    the same range and precision, which encodes it."""
    import ctypes

    from hdrh.histogram import HdrHistogram

    from hammer import _core

    h = HdrHistogram(1, _core.HIST_HIGHEST_NS, significant_figures)
    raw = state["raw"]
    if len(raw) != ctypes.sizeof(h.counts):
        raise ValueError("a histogram of another layout")
    ctypes.memmove(h.counts, raw, len(raw))
    h.total_count = state["total"]
    if state["total"]:
        h.min_value = max(int(state["min_ns"]), 1)
        h.max_value = int(state["max_ns"])
    return {"hdr": h.encode().decode("ascii"), "min_ns": state["min_ns"],
            "max_ns": state["max_ns"], "sum_ns": state["sum_ns"],
            "clamped": state["clamped"]}


def load_histogram(target: Any, saved: Mapping[str, Any]) -> None:
    """Add a saved histogram (encode_histogram's form) into a core Histogram of the same
    layout: the decoded counts array is added whole, bucket for bucket."""
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram.decode(saved["hdr"])
    target.add_counts(memoryview(h.counts).cast("B"), int(saved["min_ns"]),
                      int(saved["max_ns"]), float(saved["sum_ns"]), int(saved.get("clamped", 0)))


def add_state(target: Any, state: Mapping[str, Any]) -> None:
    """Add a core histogram's state (Histogram.state()) into a Histogram of its layout."""
    target.add_counts(memoryview(state["raw"]).cast("B"), int(state["min_ns"]),
                      int(state["max_ns"]), float(state["sum_ns"]), int(state["clamped"]))


def sum_connection_times(times: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Engines' connection_times() added into one of the same shape (summaries from the
    added histograms). Entries without histograms (a Python hammer's) add nothing."""
    from hammer import _core

    out: dict[str, Any] = {"tls_handshakes": 0, "tls_resumed": 0}
    for summary, key in (("connect_ms", "connect_state"), ("tls_ms", "tls_state")):
        h = _core.Histogram()
        for t in times:
            if t.get(key):
                add_state(h, t[key])
        out[summary], out[key] = h.summary_ms(), h.state()
    for t in times:
        out["tls_handshakes"] += int(t.get("tls_handshakes", 0))
        out["tls_resumed"] += int(t.get("tls_resumed", 0))
    return out


def report_histograms(aggregator: Any, seconds: int, n_targets: int,
                      connection_times: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `histograms` of a report, from the aggregator it was built from and its
    engine's connection times."""
    from hammer import _core

    sigfigs = _core.HIST_SIGNIFICANT_FIGURES
    out: dict[str, Any] = {
        "unit": "ns",
        "significant_figures": sigfigs,
        "second_significant_figures": _core.SECOND_HIST_SIGNIFICANT_FIGURES,
    }
    for name in MAIN_HISTOGRAMS:
        out[name] = encode_histogram(getattr(aggregator, name).state(), sigfigs)
    second_sigfigs = _core.SECOND_HIST_SIGNIFICANT_FIGURES
    states = [aggregator.second_state(i) for i in range(seconds)]
    out["seconds"] = [encode_histogram(state, second_sigfigs) if state else None
                      for state in states]
    out["targets"] = [encode_histogram(aggregator.target_latency_state(i), sigfigs)
                      for i in range(n_targets)]
    for name, key in CONNECTION_HISTOGRAMS.items():
        state = (connection_times or {}).get(key)
        if state:
            out[name] = encode_histogram(state, sigfigs)
    return out


# ------------------------------------------------------------------ loading

def load_report(path: str) -> dict[str, Any]:
    """A saved JSON report ('-': stdin), checked enough to be rendered."""
    import sys

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path} is not a hammer JSON report (not UTF-8 text)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not a hammer JSON report (line {exc.lineno}: "
                          f"{exc.msg})") from None
    if not isinstance(data, dict) or "counts" not in data or "version" not in data:
        raise ReportError(f"{path} is not a hammer JSON report (no version and counts)")
    if data["version"] != REPORT_VERSION:
        raise ReportError(f"{path} is a version {data['version']} report; this hammer "
                          f"reads version {REPORT_VERSION}")
    data.setdefault("time_series", [])
    data.setdefault("slo", [])
    return data


# ------------------------------------------------------------------ merging

def _check_mergeable(reports: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    first, first_name = reports[0], names[0]
    for report, name in zip(reports, names, strict=True):
        if not isinstance(report.get("histograms"), dict):
            raise ReportError(f"{name} has no histograms (a report of an older hammer): it "
                              "can be rendered but not merged")
        for key in PLAN_FIELDS:
            if report.get(key) != first.get(key):
                raise ReportError(f"{name} is not of the same plan as {first_name}: {key} "
                                  f"{report.get(key)!r} != {first.get(key)!r}")
        for key in RATE_PLAN_FIELDS:
            mine, theirs = report["rate"].get(key), first["rate"].get(key)
            if mine != theirs:
                raise ReportError(f"{name} is not of the same plan as {first_name}: rate "
                                  f"{key} {mine!r} != {theirs!r}")
    shards = [r.get("shard") for r in reports]
    if any(shards) and not all(shards):
        raise ReportError("some reports are shards of a plan and some are not: merge the "
                          "shards of one plan, or whole runs")
    if all(shards):
        counts = {s["n"] for s in shards if s}
        if len(counts) > 1:
            raise ReportError(f"shards of different splits: of {sorted(counts)}")
        seen: dict[int, str] = {}
        for shard, name in zip(shards, names, strict=True):
            assert shard is not None
            if shard["k"] in seen:
                raise ReportError(f"{name} and {seen[shard['k']]} are both shard "
                                  f"{shard['k']}/{shard['n']}")
            seen[shard["k"]] = name


def _merged_histogram(reports: Sequence[Mapping[str, Any]], pick: Any,
                      significant_figures: int) -> Any:
    from hammer import _core

    h = _core.Histogram(_core.HIST_HIGHEST_NS, significant_figures)
    for report in reports:
        saved = pick(report["histograms"])
        if saved:
            load_histogram(h, saved)
    return h


def _merged_connection_histograms(reports: Sequence[Mapping[str, Any]],
                                  significant_figures: int) -> dict[str, Any]:
    """The connect and TLS handshake histograms added, when every report carries them."""
    return {name: _merged_histogram(reports, lambda hs, n=name: hs[n], significant_figures)
            for name in CONNECTION_HISTOGRAMS
            if all(r["histograms"].get(name) for r in reports)}


def _sum_maps(maps: Sequence[Mapping[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for m in maps:
        total.update(m)
    return dict(total)


def _rate(count: float, duration_s: float) -> float:
    return round(count / duration_s, 3) if duration_s > 0 else 0.0


def _merge_kind(reports: Sequence[Mapping[str, Any]]) -> Any:
    """The first part's description of the kind, with the packets written (MQTT) added
    up over the parts."""
    first = reports[0].get("hammer")
    if not isinstance(first, Mapping) or not isinstance(first.get("writes"), Mapping):
        return first
    parts = [r.get("hammer", {}).get("writes") or {} for r in reports]
    writes = sum(int(p.get("writes") or 0) for p in parts)
    packets = sum(int(p.get("packets") or 0) for p in parts)
    return {**first, "writes": {**first["writes"], "writes": writes, "packets": packets,
                                "packets_per_write": round(packets / writes, 2) if writes
                                else None}}


def _merge_time_series(reports: Sequence[Mapping[str, Any]],
                       second_sigfigs: int
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any] | None]]:
    n = max((len(r["time_series"]) for r in reports), default=0)
    rows: list[dict[str, Any]] = []
    seconds_hdr: list[dict[str, Any] | None] = []
    for i in range(n):
        present = [r for r in reports if i < len(r["time_series"])]
        cells = [r["time_series"][i] for r in present]
        h = _merged_histogram(
            present, lambda hs, i=i: hs["seconds"][i] if i < len(hs["seconds"]) else None,
            second_sigfigs)
        has = h.total_count > 0
        targets = [c["target_rps"] for c in cells]
        row: dict[str, Any] = {
            "t_s": i,
            "target_rps": (round(sum(targets), 3) if all(t is not None for t in targets)
                           else None),
        }
        for key in ("achieved_rps", "throughput_rps"):
            row[key] = round(sum(c[key] for c in cells), 3)
        for key in ("sent", "completed", "ok", "errors"):
            row[key] = sum(c[key] for c in cells)
        row["http_error"] = row["completed"] - row["ok"]
        for key, pct in (("p50_ms", 50.0), ("p90_ms", 90.0), ("p99_ms", 99.0),
                         ("max_ms", 100.0)):
            row[key] = h.value_at_percentile(pct) / 1e6 if has else None
        rows.append(row)
        seconds_hdr.append(encode_histogram(h.state(), second_sigfigs) if has else None)
    return rows, seconds_hdr


def _merge_targets(reports: Sequence[Mapping[str, Any]],
                   sigfigs: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    n = len(reports[0].get("targets") or [])
    if any(len(r.get("targets") or []) != n for r in reports):
        raise ReportError("the reports break their requests down into different targets")
    rows, saved = [], []
    for i in range(n):
        cells = [r["targets"][i] for r in reports]
        if any((c["method"], c["url"]) != (cells[0]["method"], cells[0]["url"])
               for c in cells):
            raise ReportError(f"target row {i + 1} differs between the reports")
        h = _merged_histogram(reports, lambda hs, i=i: hs["targets"][i], sigfigs)
        row = {"method": cells[0]["method"], "url": cells[0]["url"]}
        for key in ("sent", "completed", "ok", "http_error", "error"):
            row[key] = sum(c[key] for c in cells)
        row["status"] = _sum_maps([c["status"] for c in cells])
        row["latency_ms"] = h.summary_ms()
        rows.append(row)
        saved.append(encode_histogram(h.state(), sigfigs))
    return rows, saved


def _part_label(report: Mapping[str, Any], name: str) -> str:
    shard = report.get("shard")
    return f"shard {shard['k']}/{shard['n']}" if shard else name


def merge_reports(reports: Sequence[Mapping[str, Any]],
                  names: Sequence[str] | None = None) -> dict[str, Any]:
    """One report from reports of the same plan (its shards, or whole runs on several
    hosts): counts and bytes added, histograms added bucket by bucket, percentiles and
    rates computed from the sums. `names` label the parts (file names)."""
    from hammer.slo import parse_slo

    if not reports:
        raise ReportError("nothing to merge")
    names = list(names or [f"report {i + 1}" for i in range(len(reports))])
    _check_mergeable(reports, names)
    first = reports[0]
    hists = first["histograms"]
    sigfigs = int(hists["significant_figures"])
    second_sigfigs = int(hists["second_significant_figures"])
    duration_s = max(float(r["duration_s"]) for r in reports)
    counts = {key: sum(int(r["counts"][key]) for r in reports) for key in first["counts"]}
    merged_hists = {name: _merged_histogram(reports, lambda hs, n=name: hs[n], sigfigs)
                    for name in MAIN_HISTOGRAMS}
    setup_hists = _merged_connection_histograms(reports, sigfigs)
    connect, handshake = setup_hists.get("connect"), setup_hists.get("tls_handshake")
    time_series, seconds_hdr = _merge_time_series(reports, second_sigfigs)
    targets, targets_saved = _merge_targets(reports, sigfigs)
    target_rates = [r["rate"]["target_rps"] for r in reports]
    tls = [r.get("tls") for r in reports]
    parts = [{
        "part": _part_label(r, name),
        "file": name,
        "duration_s": r["duration_s"],
        "scheduled": r["counts"]["scheduled"],
        "sent": r["counts"]["sent"],
        "achieved_rps": r["rate"]["achieved_rps"],
        "send_lag_p99_ms": r["send_lag_ms"].get("p99"),
        "start_epoch_s": r.get("start_epoch_s"),
        "saturated": list(r.get("saturated") or []),
        **{key: r[key] for key in ("host", "worker", "cpu_s") if key in r},
    } for r, name in zip(reports, names, strict=True)]
    starts = [p["start_epoch_s"] for p in parts if p["start_epoch_s"] is not None]
    shards = [r["shard"] for r in reports if r.get("shard")]
    notes = [f"merged from {len(reports)} reports"
             + (f": shards {', '.join(str(s['k']) for s in sorted(shards, key=lambda s: s['k']))}"
                f" of {shards[0]['n']}" if shards else "")]
    if shards and len(shards) < shards[0]["n"]:
        missing = sorted(set(range(1, shards[0]["n"] + 1)) - {s["k"] for s in shards})
        notes.append(f"incomplete: shards {', '.join(map(str, missing))} of "
                     f"{shards[0]['n']} are missing")
    if len(starts) == len(reports) and len(starts) > 1:
        notes.append(f"the parts started {(max(starts) - min(starts)) * 1e3:.1f} ms apart")
    for r in reports:
        for note in r.get("notes") or []:
            # a part's own send-lag note is judged again on the merged send lag
            if (note not in notes and not note.startswith("merged from")
                    and not note.startswith(LAG_NOTE_START)):
                notes.append(note)
    merged: dict[str, Any] = {
        "version": REPORT_VERSION,
        "target": first["target"],
        "kind": first["kind"],
        "mode": first["mode"],
        "method": first["method"],
        "duration_s": duration_s,
        "connections": sum(int(r["connections"]) for r in reports),
        "threads": sum(int(r["threads"]) for r in reports),
        "timeout_s": first["timeout_s"],
        "spin_ms": first.get("spin_ms"),
        "pacing": first.get("pacing"),
        "keepalive": first.get("keepalive"),
        "max_requests_per_conn": first.get("max_requests_per_conn"),
        "rate": {
            "target_rps": (round(sum(target_rates), 6)
                           if all(t is not None for t in target_rates) else None),
            "achieved_rps": _rate(counts["sent"], duration_s),
            "profile": first["rate"].get("profile"),
            "arrivals": first["rate"].get("arrivals"),
        },
        "throughput_rps": _rate(counts["completed"], duration_s),
        "counts": counts,
        "status": _sum_maps([r["status"] for r in reports]),
        "errors": _sum_maps([r["errors"] for r in reports]),
        "latency_ms": merged_hists["latency"].summary_ms(),
        "latency_uncorrected_ms": merged_hists["latency_uncorrected"].summary_ms(),
        "send_lag_ms": merged_hists["send_lag"].summary_ms(),
        "bytes": {k: sum(int(r["bytes"][k]) for r in reports) for k in ("sent", "received")},
        "connect_ms": connect.summary_ms() if connect is not None else None,
        "tls": None if not all(tls) else {
            "verified": all(t["verified"] for t in tls if t),
            "handshakes": sum(t["handshakes"] for t in tls if t),
            "resumed": sum(t["resumed"] for t in tls if t),
            "handshake_ms": handshake.summary_ms() if handshake is not None else None,
        },
        "targets": targets,
        "time_series": time_series,
        "interrupted": next((r["interrupted"] for r in reports if r.get("interrupted")), None),
        "stopped": next((r["stopped"] for r in reports if r.get("stopped")), None),
        "hammer": _merge_kind(reports),
        "error_samples": [s for r in reports
                          for s in r.get("error_samples") or []][:MAX_ERROR_SAMPLES],
        "saturated": [f"{p['part']}: {reason}" for p in parts for reason in p["saturated"]],
        "notes": notes,
        "shard": None,
        "start_epoch_s": min(starts) if starts else None,
        "parts": parts,
        "histograms": {
            "unit": "ns", "significant_figures": sigfigs,
            "second_significant_figures": second_sigfigs,
            **{name: encode_histogram(h.state(), sigfigs)
               for name, h in {**merged_hists, **setup_hists}.items()},
            "seconds": seconds_hdr,
            "targets": targets_saved,
        },
    }
    note = lag_note(merged["send_lag_ms"]) if merged["mode"] == "open" else None
    if note is not None:
        merged["notes"].append(note)
    slo_texts = list(dict.fromkeys(s["slo"] for r in reports for s in r.get("slo") or []))
    merged["slo"] = [parse_slo(text).check(merged) for text in slo_texts]
    return merged


def add_lost_parts(merged: dict[str, Any], lost: Sequence[Mapping[str, Any]]) -> None:
    """Mark a merge partial: parts whose report never came (a worker lost mid-run). What
    they had scheduled counts as `unknown` (sent or not, nobody can say), so the
    accounting still holds: scheduled = ok + http_error + error + unsent + unknown."""
    counts = merged["counts"]
    unknown = sum(int(p["planned"] or 0) for p in lost)
    counts["scheduled"] += unknown
    counts["unknown"] = counts.get("unknown", 0) + unknown
    merged["partial"] = True
    merged["lost_parts"] = [dict(p) for p in lost]
    for part in lost:
        planned = part["planned"]
        what = (f"its {planned:,} requests count as unknown" if planned is not None
                else "what it sent is unknown (a closed loop has no schedule)")
        merged["notes"].insert(0, f"PARTIAL: {part['part']} lost (worker {part['worker']}: "
                                  f"{part['reason']}); {what}")


# ------------------------------------------------------------------ comparing

COMPARED = (
    ("rate target", ("rate", "target_rps"), "/s"),
    ("rate achieved", ("rate", "achieved_rps"), "/s"),
    ("throughput", ("throughput_rps",), "/s"),
    ("scheduled", ("counts", "scheduled"), ""),
    ("ok", ("counts", "ok"), ""),
    ("http errors", ("counts", "http_error"), ""),
    ("errors", ("counts", "error"), ""),
    ("unsent", ("counts", "unsent"), ""),
    ("late", ("counts", "late"), ""),
    *((f"latency {p}", ("latency_ms", p), "ms")
      for p in ("min", "mean", "p50", "p90", "p99", "p99.9", "max")),
    *((f"uncorrected {p}", ("latency_uncorrected_ms", p), "ms") for p in ("p50", "p99")),
    *((f"send lag {p}", ("send_lag_ms", p), "ms") for p in ("p50", "p99")),
)


def _figure(report: Mapping[str, Any], path: Sequence[str]) -> float | None:
    value: Any = report
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, int | float) else None


def compare_reports(before: Mapping[str, Any],
                    after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each compared figure of two reports: before, after, the difference and the
    change in percent (None where a side lacks the figure or before is 0)."""
    rows = []
    error_rate = []
    for report in (before, after):
        c = report["counts"]
        error_rate.append(100.0 * (c["http_error"] + c["error"]) / c["scheduled"]
                          if c["scheduled"] else None)
    for label, path, unit in COMPARED:
        a, b = _figure(before, path), _figure(after, path)
        rows.append(_compare_row(label, unit, a, b))
    rows.insert(9, _compare_row("error rate", "%", error_rate[0], error_rate[1]))
    return rows


def _compare_row(label: str, unit: str, a: float | None, b: float | None) -> dict[str, Any]:
    diff = b - a if a is not None and b is not None else None
    pct = (100.0 * diff / a if diff is not None and a not in (None, 0)
           and math.isfinite(diff) else None)
    return {"figure": label, "unit": unit, "before": a, "after": b, "diff": diff,
            "change_pct": pct}


__all__ = ["ReportError", "SavedReport", "add_lost_parts", "add_state", "compare_reports",
           "encode_histogram", "load_histogram", "load_report", "merge_reports",
           "report_histograms", "sum_connection_times"]
