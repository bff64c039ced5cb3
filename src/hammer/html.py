"""`--html PATH`: a finished run's report as one self-contained, offline HTML file.

The page has the summary tables the text report has, and four charts drawn here as
inline SVG: latency over time (p50, p99 and max each second), target versus achieved
rate and throughput each second, the percentile spectrum on the log ``1/(1-p)`` axis of
HdrHistogram plots, and the status and error counts. Nothing is loaded from anywhere:
no script, no font, no image, no URL; a Content-Security-Policy forbids every fetch.

Only the report dictionary's values are shown (the caller has redacted it), and every
string from it is escaped. Absent figures (a closed loop's target rate, the latency of
a run with no completion, an empty per-second series) show as ``-`` or "no data".
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hammer.figures import LATENCY_KEYS as _LATENCY_KEYS
from hammer.figures import LATENCY_ROWS as _LATENCY_ROWS
from hammer.figures import count as _count
from hammer.figures import mapping as _mapping
from hammer.figures import ms as _ms
from hammer.figures import num as _num
from hammer.figures import rate as _rate
from hammer.figures import seconds as _seconds
from hammer.figures import status_sort_key as _status_sort_key
from hammer.units import format_bytes, format_rate

__all__ = ["render_html", "write_html_atomic"]

# report["histograms"] keys (base64 V2-compressed HdrHistograms, ns) -> spectrum series
_HISTOGRAM_SERIES: tuple[tuple[str, str, str], ...] = (
    # (histograms key, summary key, legend)
    ("latency", "latency_ms", "corrected"),
    ("latency_uncorrected", "latency_uncorrected_ms", "uncorrected"),
    ("send_lag", "send_lag_ms", "send lag"),
)
_PERCENTILE_KEY = re.compile(r"^p(\d+(?:\.\d+)?)$")
_SPECTRUM_STEPS_PER_DECADE = 10
_SPECTRUM_MAX_DECADES = 7            # 99.99999%
_MARKERS_UP_TO = 90                  # points per series drawn with hover markers

# Colours (light theme) by series.
_BLUE = "#2563eb"
_ORANGE = "#ea580c"
_RED = "#b91c1c"
_GREEN = "#15803d"
_GREY = "#64748b"
_PURPLE = "#7c3aed"
_PALE = "#cbd5e1"                    # a wide band under the lines (the target rate)

# Chart geometry (SVG user units; the SVG scales to the page width).
_WIDTH = 1100
_HEIGHT = 300
_MARGIN_LEFT = 72
_MARGIN_RIGHT = 44
_MARGIN_TOP = 40
_MARGIN_BOTTOM = 52
_CHAR_WIDTH = 7.0                    # estimate at 12 px, for legend and label layout


# --------------------------------------------------------------------------- values


def _e(value: Any) -> str:
    """``value`` as text, escaped for HTML content and attribute values."""
    return html.escape(str(value), quote=True)






def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()








def _bytes(value: Any) -> str:
    number = _num(value)
    return "-" if number is None else format_bytes(int(number))




def _share(part: Any, whole: Any) -> str:
    """``part`` as a percentage of ``whole`` (empty when either is missing or whole is 0)."""
    p, w = _num(part), _num(whole)
    if p is None or not w:
        return ""
    share = 100 * p / w
    if share == 0 or share == 100:
        return f"{share:.0f}%"
    return f"{share:.3g}%" if share >= 0.01 else "<0.01%"




# --------------------------------------------------------------------------- axes


@dataclass(frozen=True)
class _Scale:
    """A linear map from a data interval onto a pixel interval."""

    lo: float
    hi: float
    px_lo: float
    px_hi: float

    def __call__(self, value: float) -> float:
        if self.hi == self.lo:
            return (self.px_lo + self.px_hi) / 2
        return self.px_lo + (value - self.lo) / (self.hi - self.lo) * (self.px_hi - self.px_lo)


def _nice_step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about ``count`` ticks."""
    raw = span / max(count, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1.0, 2.0, 2.5, 5.0):
        if raw <= multiple * magnitude * (1 + 1e-9):
            return multiple * magnitude
    return 10 * magnitude


def _decimals(step: float) -> int:
    """Decimals needed to show multiples of ``step`` exactly (up to 6)."""
    for decimals in range(7):
        if abs(step * 10**decimals - round(step * 10**decimals)) < 1e-6:
            return decimals
    return 6


def _tick_label(value: float, step: float, top: float) -> str:
    if top >= 100_000:
        return f"{value / 1000:,.{_decimals(step / 1000)}f}k"
    return f"{value:,.{_decimals(step)}f}"


def _zero_based_ticks(highest: float, count: int = 5) -> tuple[float, list[tuple[float, str]]]:
    """The axis top (a round number >= ``highest``) and its labelled ticks from 0."""
    highest = highest if highest > 0 else 1.0
    step = _nice_step(highest, count)
    steps = max(1, math.ceil(highest / step - 1e-9))
    top = steps * step
    return top, [(i * step, _tick_label(i * step, step, top)) for i in range(steps + 1)]


def _time_ticks(duration: float) -> list[tuple[float, str]]:
    step = max(1.0, _nice_step(duration, 10))
    ticks = []
    value = 0.0
    while value <= duration + 1e-9:
        ticks.append((value, f"{value:,.{_decimals(step)}f}"))
        value += step
    return ticks


def _percentile_label(decade: int) -> str:
    """The percentile at ``decade`` on the 1/(1-p) axis: 0%, 90%, 99%, 99.9% ..."""
    if decade <= 0:
        return "0%"
    return f"{100 - 10.0 ** (2 - decade):.{max(0, decade - 2)}f}%"


def _spectrum_x(percentile: float) -> float:
    """Position of ``percentile`` (0..100) on the log axis: log10(1 / (1 - p))."""
    remaining = 1 - percentile / 100
    return math.log10(1 / remaining) if remaining > 0 else float(_SPECTRUM_MAX_DECADES)


# --------------------------------------------------------------------------- SVG charts


@dataclass
class _Series:
    key: str                                  # data-series attribute
    label: str                                # legend text
    colour: str
    points: list[tuple[float, float | None]]  # (x, y); y None: a gap
    dash: str = ""
    width: float = 2.0
    hover: Sequence[str] = ()                 # marker tooltips, one per point

    def drawn(self) -> int:
        return sum(1 for _, y in self.points if y is not None)


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def _svg_open(chart: str, title: str, height: int, extra: str = "") -> list[str]:
    return [
        f'<svg data-chart="{_e(chart)}" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="{_e(title)}" preserveAspectRatio="xMidYMid meet"{extra}>',
        f"<title>{_e(title)}</title>",
    ]


def _no_data_svg(chart: str, title: str, message: str) -> str:
    height = 120
    parts = _svg_open(chart, title, height, ' data-points="0"')
    parts.append(f'<rect class="frame" x="1" y="1" width="{_WIDTH - 2}" height="{height - 2}"/>')
    parts.append(f'<text class="empty" x="{_WIDTH / 2}" y="{height / 2 + 5}" '
                 f'text-anchor="middle">{_e(message)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(series: Sequence[_Series], right: float) -> list[str]:
    """One row of legend entries, right-aligned above the plot."""
    widths = [34 + len(s.label) * _CHAR_WIDTH + 18 for s in series]
    x = right - sum(widths)
    parts = ['<g class="legend">']
    for entry, width in zip(series, widths, strict=True):
        dash = f' stroke-dasharray="{entry.dash}"' if entry.dash else ""
        parts.append(
            f'<line x1="{_fmt(x)}" y1="18" x2="{_fmt(x + 26)}" y2="18" stroke="{entry.colour}" '
            f'stroke-width="{entry.width + 0.5}"{dash}/>'
            f'<text x="{_fmt(x + 32)}" y="22">{_e(entry.label)}</text>')
        x += width
    parts.append("</g>")
    return parts


def _axes(x_scale: _Scale, y_scale: _Scale, x_ticks: Iterable[tuple[float, str]],
          y_ticks: Iterable[tuple[float, str]], x_title: str, y_title: str) -> list[str]:
    """Grid lines, the two axes, tick labels and axis titles."""
    left, right = x_scale.px_lo, x_scale.px_hi
    bottom, top = y_scale.px_lo, y_scale.px_hi
    parts = ['<g class="grid">']
    for value, _ in y_ticks:
        y = y_scale(value)
        parts.append(f'<line x1="{_fmt(left)}" y1="{_fmt(y)}" x2="{_fmt(right)}" '
                     f'y2="{_fmt(y)}"/>')
    parts.append("</g>")
    parts.append('<g class="axis">')
    parts.append(f'<line x1="{_fmt(left)}" y1="{_fmt(bottom)}" x2="{_fmt(right)}" '
                 f'y2="{_fmt(bottom)}"/>')
    parts.append(f'<line x1="{_fmt(left)}" y1="{_fmt(bottom)}" x2="{_fmt(left)}" '
                 f'y2="{_fmt(top)}"/>')
    for value, label in y_ticks:
        y = y_scale(value)
        parts.append(f'<text x="{_fmt(left - 8)}" y="{_fmt(y + 4)}" '
                     f'text-anchor="end">{_e(label)}</text>')
    for value, label in x_ticks:
        x = x_scale(value)
        parts.append(f'<line x1="{_fmt(x)}" y1="{_fmt(bottom)}" x2="{_fmt(x)}" '
                     f'y2="{_fmt(bottom + 5)}"/>')
        parts.append(f'<text x="{_fmt(x)}" y="{_fmt(bottom + 19)}" '
                     f'text-anchor="middle">{_e(label)}</text>')
    parts.append(f'<text class="axis-title" x="{_fmt((left + right) / 2)}" '
                 f'y="{_fmt(bottom + 42)}" text-anchor="middle">{_e(x_title)}</text>')
    parts.append(f'<text class="axis-title" x="16" y="{_fmt((top + bottom) / 2)}" '
                 f'text-anchor="middle" transform="rotate(-90 16 {_fmt((top + bottom) / 2)})">'
                 f"{_e(y_title)}</text>")
    parts.append("</g>")
    return parts


def _segments(points: Sequence[tuple[float, float | None]],
              ) -> list[list[tuple[float, float]]]:
    """Runs of consecutive points that have a value (a None breaks the line)."""
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for x, y in points:
        if y is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((x, y))
    if current:
        runs.append(current)
    return runs


def _series_svg(entry: _Series, x_scale: _Scale, y_scale: _Scale) -> list[str]:
    dash = f' stroke-dasharray="{entry.dash}"' if entry.dash else ""
    parts = [f'<g class="series" data-series="{_e(entry.key)}" '
             f'data-points="{entry.drawn()}" stroke="{entry.colour}" fill="{entry.colour}">']
    for run in _segments(entry.points):
        coords = " ".join(f"{_fmt(x_scale(x))},{_fmt(y_scale(y))}" for x, y in run)
        parts.append(f'<polyline points="{coords}" fill="none" '
                     f'stroke-width="{entry.width}"{dash}/>')
    if entry.drawn() <= _MARKERS_UP_TO:
        hover = list(entry.hover)
        for i, (x, y) in enumerate(entry.points):
            if y is None:
                continue
            tip = f"<title>{_e(hover[i])}</title>" if i < len(hover) else ""
            parts.append(f'<circle cx="{_fmt(x_scale(x))}" cy="{_fmt(y_scale(y))}" '
                         f'r="2.6" stroke="none">{tip}</circle>')
    parts.append("</g>")
    return parts


def _line_chart(*, chart: str, title: str, series: Sequence[_Series], x_lo: float,
                x_hi: float, x_ticks: Sequence[tuple[float, str]], x_title: str,
                y_title: str, topmost_first: bool = False) -> str:
    """A line chart from 0 up on the y axis; series without a point are left out. Later
    series are drawn over earlier ones (``topmost_first``: the first over the others)."""
    shown = [s for s in series if s.drawn()]
    if not shown:
        return _no_data_svg(chart, title, "no data")
    highest = max(y for s in shown for _, y in s.points if y is not None)
    y_top, y_ticks = _zero_based_ticks(highest)
    plot_right = _WIDTH - _MARGIN_RIGHT
    x_scale = _Scale(x_lo, x_hi, _MARGIN_LEFT, plot_right)
    y_scale = _Scale(0.0, y_top, _HEIGHT - _MARGIN_BOTTOM, _MARGIN_TOP)
    total = sum(s.drawn() for s in shown)
    parts = _svg_open(chart, title, _HEIGHT, f' data-points="{total}"')
    parts += _axes(x_scale, y_scale, x_ticks, y_ticks, x_title, y_title)
    for entry in reversed(shown) if topmost_first else shown:
        parts += _series_svg(entry, x_scale, y_scale)
    parts += _legend(shown, plot_right)
    parts.append("</svg>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- over time


def _time_rows(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [_mapping(row) for row in _sequence(report.get("time_series"))
            if _num(_mapping(row).get("t_s")) is not None]


def _time_domain(report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> float:
    """The x axis end in seconds: the load phase, or past the last row's second."""
    last = max((_num(row.get("t_s")) or 0.0) for row in rows) if rows else 0.0
    duration = _num(report.get("duration_s")) or 0.0
    return duration if duration > last else last + 1


def _second_middle(t_s: float, end: float) -> float:
    """Where a second's row is drawn: the middle of [t, t+1), or of a shorter last one."""
    return t_s + max(min(1.0, end - t_s), 0.0) / 2


def _time_series_chart(report: Mapping[str, Any], *, chart: str, title: str,
                       columns: Sequence[tuple[str, str, str, str, float]], y_title: str,
                       unit: str) -> str:
    """Per-second columns (key, legend, colour, dash, width) of time_series as lines."""
    rows = _time_rows(report)
    if not rows:
        return _no_data_svg(chart, title, "no per-second data in this report")
    end = _time_domain(report, rows)
    series = []
    for key, label, colour, dash, width in columns:
        points: list[tuple[float, float | None]] = []
        hover = []
        for row in rows:
            t = _num(row.get("t_s")) or 0.0
            value = _num(row.get(key))
            points.append((_second_middle(t, end), value))
            shown = _ms(value) + " ms" if unit == "ms" else _rate(value)
            hover.append(f"second {t:g}: {label} {shown}")
        series.append(_Series(key=key, label=label, colour=colour, points=points, dash=dash,
                              width=width, hover=hover))
    return _line_chart(chart=chart, title=title, series=series, x_lo=0.0, x_hi=end,
                       x_ticks=_time_ticks(end), x_title="time since the start (s)",
                       y_title=y_title)


def _latency_chart(report: Mapping[str, Any]) -> str:
    return _time_series_chart(
        report, chart="latency-over-time", title="Latency over time (corrected, per second)",
        columns=(("p50_ms", "p50", _BLUE, "", 2.0), ("p99_ms", "p99", _ORANGE, "", 2.0),
                 ("max_ms", "max", _RED, "5 4", 1.6)),
        y_title="latency (ms)", unit="ms")


def _rate_chart(report: Mapping[str, Any]) -> str:
    return _time_series_chart(
        report, chart="rate", title="Target versus achieved rate, and throughput",
        columns=(("target_rps", "target", _PALE, "", 7.0),
                 ("achieved_rps", "achieved", _BLUE, "", 2.2),
                 ("throughput_rps", "throughput", _GREEN, "6 4", 2.0)),
        y_title="requests per second", unit="rps")


# --------------------------------------------------------------------------- spectrum


def _decode_histogram(encoded: Any) -> Any | None:
    """An hdrh HdrHistogram from a base64 V2-compressed string, or None (absent, bad)."""
    if not isinstance(encoded, str | bytes) or not encoded:
        return None
    try:
        from hdrh.histogram import HdrHistogram

        histogram = HdrHistogram.decode(encoded)
    except Exception:  # a damaged or foreign payload: fall back to the summary
        return None
    return histogram if histogram.get_total_count() > 0 else None


def _spectrum_from_histogram(histogram: Any) -> list[tuple[float, float]]:
    """(position on the 1/(1-p) axis, ms) every tenth of a decade, up to the maximum."""
    count = histogram.get_total_count()
    highest_ms = histogram.get_max_value() / 1e6
    last_step = min(math.ceil(_SPECTRUM_STEPS_PER_DECADE * math.log10(max(count, 1))),
                    _SPECTRUM_STEPS_PER_DECADE * _SPECTRUM_MAX_DECADES)
    points = []
    for step in range(last_step + 1):
        x = step / _SPECTRUM_STEPS_PER_DECADE
        percentile = 100 * (1 - 10.0 ** -x)
        value_ms = min(histogram.get_value_at_percentile(percentile) / 1e6, highest_ms)
        points.append((x, value_ms))
    if points:
        points[-1] = (points[-1][0], highest_ms)
    return points


def _spectrum_from_summary(stats: Mapping[str, Any],
                           samples: float | None) -> list[tuple[float, float]]:
    """The summary's min, percentiles and max on the 1/(1-p) axis (the max is placed
    where the last sample is: 1/(1-p) = the number of samples)."""
    points: list[tuple[float, float]] = []
    low = _num(stats.get("min"))
    if low is not None:
        points.append((0.0, low))
    percentiles = []
    for key, value in stats.items():
        match = _PERCENTILE_KEY.match(str(key))
        number = _num(value)
        if match and number is not None and float(match.group(1)) < 100:
            percentiles.append((_spectrum_x(float(match.group(1))), number))
    points += sorted(percentiles)
    high = _num(stats.get("max"))
    if high is not None:
        last_x = points[-1][0] if points else 0.0
        where = math.log10(samples) if samples and samples > 1 else last_x + 1
        points.append((max(where, last_x), high))
    return points


def _spectrum_series(report: Mapping[str, Any]) -> tuple[list[_Series], bool]:
    """The spectrum's series, and whether they come from full histograms."""
    histograms = _mapping(report.get("histograms"))
    counts = _mapping(report.get("counts"))
    colours = {"latency": (_BLUE, "", 2.2), "latency_uncorrected": (_ORANGE, "", 2.0),
               "send_lag": (_GREY, "3 3", 1.6)}
    series = []
    from_histograms = False
    for hist_key, summary_key, label in _HISTOGRAM_SERIES:
        histogram = _decode_histogram(histograms.get(hist_key))
        if histogram is not None:
            points = _spectrum_from_histogram(histogram)
            from_histograms = True
        else:
            samples = _num(counts.get("sent" if hist_key == "send_lag" else "completed"))
            points = _spectrum_from_summary(_mapping(report.get(summary_key)), samples)
        colour, dash, width = colours[hist_key]
        hover = [f"{label}: {_ms(y)} ms at {_percentile_text(x)}" for x, y in points]
        series.append(_Series(key=hist_key, label=label, colour=colour,
                              points=[(x, y) for x, y in points], dash=dash, width=width,
                              hover=hover))
    return series, from_histograms


def _percentile_text(x: float) -> str:
    """The percentile at position ``x`` of the 1/(1-p) axis, as text (99.9%)."""
    if abs(x - round(x)) < 1e-9:
        return _percentile_label(round(x))
    return f"{100 * (1 - 10.0 ** -x):.{max(0, math.ceil(x) - 1)}f}%"


def _spectrum_chart(report: Mapping[str, Any]) -> tuple[str, bool]:
    series, from_histograms = _spectrum_series(report)
    title = "Latency by percentile (log scale of 1/(1-p))"
    drawn = [s for s in series if s.drawn()]
    if not drawn:
        return _no_data_svg("spectrum", title, "no latency: no request completed"), False
    last = max(x for s in drawn for x, _ in s.points)
    decades = max(2, math.ceil(last - 1e-9))
    ticks = [(float(d), _percentile_label(d)) for d in range(decades + 1)]
    svg = _line_chart(chart="spectrum", title=title, series=series, x_lo=0.0,
                      x_hi=float(decades), x_ticks=ticks, x_title="percentile",
                      y_title="latency (ms)", topmost_first=True)
    return svg, from_histograms


# --------------------------------------------------------------------------- outcomes


def _status_colour(code: str) -> str:
    return {"1": _GREY, "2": _GREEN, "3": "#0f766e", "4": "#d97706", "5": _RED}.get(
        code[:1] if code.isdigit() else "", _GREY)


def _outcome_rows(report: Mapping[str, Any]) -> list[tuple[str, str, float, str]]:
    """(kind, label, count, colour): each status, each error class, requests never sent."""
    rows: list[tuple[str, str, float, str]] = []
    status = _mapping(report.get("status"))
    for code in sorted((str(c) for c in status), key=_status_sort_key):
        number = _num(status.get(code))
        if number is not None:
            rows.append(("status", f"HTTP {code}", number, _status_colour(code)))
    errors = _mapping(report.get("errors"))
    for kind, value in sorted(errors.items(), key=lambda kv: (-(_num(kv[1]) or 0), str(kv[0]))):
        number = _num(value)
        if number is not None:
            rows.append(("error", str(kind), number, _PURPLE))
    unsent = _num(_mapping(report.get("counts")).get("unsent"))
    if unsent:
        rows.append(("unsent", "never sent", unsent, _GREY))
    return rows


def _outcomes_chart(report: Mapping[str, Any]) -> str:
    """Horizontal bars: each status code, each error class and the unsent requests, with
    their count and share of the scheduled requests."""
    title = "Status codes and errors"
    rows = _outcome_rows(report)
    if not rows:
        return _no_data_svg("outcomes", title, "no request was made")
    scheduled = _num(_mapping(report.get("counts")).get("scheduled"))
    bar_height, gap, top = 24, 10, 12
    label_width = min(260.0, max(90.0, max(len(label) for _, label, _, _ in rows)
                                 * _CHAR_WIDTH + 24))
    left = label_width + 16
    right = _WIDTH - 190
    height = top + len(rows) * (bar_height + gap) + 8
    highest = max(count for _, _, count, _ in rows) or 1.0
    parts = _svg_open("outcomes", title, height, f' data-points="{len(rows)}"')
    for i, (kind, label, count, colour) in enumerate(rows):
        y = top + i * (bar_height + gap)
        width = max(2.0, (right - left) * count / highest) if count else 0.0
        share = _share(count, scheduled)
        parts.append(
            f'<g class="bar" data-outcome="{_e(kind)}">'
            f'<text x="{_fmt(left - 12)}" y="{_fmt(y + bar_height / 2 + 4)}" '
            f'text-anchor="end">{_e(label)}</text>'
            f'<rect x="{_fmt(left)}" y="{y}" width="{_fmt(width)}" height="{bar_height}" '
            f'rx="3" fill="{colour}"><title>{_e(label)}: {_e(_count(count))}</title></rect>'
            f'<text class="value" x="{_fmt(left + width + 8)}" '
            f'y="{_fmt(y + bar_height / 2 + 4)}">{_e(_count(count))}'
            + (f' <tspan class="muted">({_e(share)})</tspan>' if share else "")
            + "</text></g>")
    parts.append(f'<line class="baseline" x1="{_fmt(left)}" y1="{top - 4}" x2="{_fmt(left)}" '
                 f'y2="{height - 6}"/>')
    parts.append("</svg>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- tables


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric_from: int = 1,
           css: str = "") -> str:
    """An HTML table; cells are escaped here. Columns from ``numeric_from`` align right."""
    cls = f' class="{_e(css)}"' if css else ""
    head = "".join(
        f'<th{" class=num" if i >= numeric_from else ""}>{_e(h)}</th>'
        for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = "".join(
            f'<td{" class=num" if i >= numeric_from else ""}>{_e(cell)}</td>'
            for i, cell in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return (f"<table{cls}><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _key_values(rows: Iterable[tuple[str, str]], css: str = "kv") -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="{_e(css)}"><tbody>{body}</tbody></table>'


def _mode_text(report: Mapping[str, Any]) -> str:
    mode = report.get("mode")
    rate = _mapping(report.get("rate"))
    if mode == "closed":
        return "closed loop"
    text = f"{mode or 'open'} loop"
    target = _num(rate.get("target_rps"))
    if rate.get("profile"):
        text += f", rate profile {rate['profile']}"
    elif target is not None:
        text += f" at {format_rate(target)}"
    if rate.get("arrivals"):
        text += f", {rate['arrivals']} arrivals"
    return text


def _concurrency_text(report: Mapping[str, Any]) -> str:
    n = report.get("connections")
    if report.get("kind", "http") == "http":
        return f"{_count(n)} connection{'' if n == 1 else 's'}"
    return f"{_count(n)} in flight at most"


def _pacing_text(report: Mapping[str, Any]) -> str:
    pacing = _mapping(report.get("pacing"))
    if not pacing:
        return "-"
    if pacing.get("mode") == "exact":
        text = "exact (a wake per request)"
    elif _num(pacing.get("quantum_us")):
        text = f"quantum {_seconds(pacing['quantum_us'] / 1e6)}"
    else:
        text = str(pacing.get("mode", "-"))
    spin = _num(report.get("spin_ms"))
    if spin:
        text += f", polling {_seconds(spin / 1e3)} before each send"
    return text


def _run_table(report: Mapping[str, Any]) -> str:
    hammer = _mapping(report.get("hammer"))
    rows = [("target", str(report.get("target", "-")))]
    if report.get("method"):
        rows.append(("method", str(report["method"])))
    mode = report.get("mode") or "open"
    rows.append(("mode", f"{mode} loop"))
    rate = _mapping(report.get("rate"))
    if rate.get("profile"):
        rows.append(("rate profile", str(rate["profile"])))
    if rate.get("arrivals"):
        rows.append(("arrivals", str(rate["arrivals"])))
    rows.append(("duration", _seconds(report.get("duration_s"))))
    rows.append(("concurrency", _concurrency_text(report)))
    if report.get("kind", "http") == "http":
        rows.append(("threads", _count(report.get("threads"))))
    rows.append(("timeout", _seconds(report.get("timeout_s"))))
    if report.get("mode") != "closed":
        rows.append(("pacing", _pacing_text(report)))
    if report.get("keepalive") is False:
        rows.append(("keep-alive", "off (a connection per request)"))
    if _num(report.get("max_requests_per_conn")):
        rows.append(("requests per connection", _count(report["max_requests_per_conn"])))
    if hammer.get("ok_status"):
        rows.append(("ok statuses", str(hammer["ok_status"])))
    if hammer.get("kind") == "python":
        rows.append(("hammer", f"{hammer.get('class', '-')} ({hammer.get('call', '-')})"))
    if report.get("interrupted"):
        rows.append(("interrupted", str(report["interrupted"])))
    if report.get("stopped"):
        rows.append(("stopped by the hammer", str(report["stopped"])))
    return _key_values(rows)


def _requests_table(report: Mapping[str, Any]) -> str:
    counts = _mapping(report.get("counts"))
    scheduled = counts.get("scheduled")
    rows = [(label, _count(counts.get(key)), _share(counts.get(key), scheduled))
            for label, key in (("scheduled", "scheduled"), ("sent", "sent"),
                               ("completed", "completed"), ("ok", "ok"),
                               ("HTTP errors", "http_error"), ("errors", "error"),
                               ("unsent", "unsent"), ("late", "late"))]
    return _table(("requests", "count", "of scheduled"), rows)


def _rate_table(report: Mapping[str, Any]) -> str:
    rate = _mapping(report.get("rate"))
    data = _mapping(report.get("bytes"))
    target = "-" if report.get("mode") == "closed" else _rate(rate.get("target_rps"))
    return _key_values([
        ("target rate", target),
        ("achieved rate", _rate(rate.get("achieved_rps"))),
        ("throughput", _rate(report.get("throughput_rps"))),
        ("bytes sent", _bytes(data.get("sent"))),
        ("bytes received", _bytes(data.get("received"))),
    ])


def _latency_table(report: Mapping[str, Any]) -> str:
    groups = [(label, _mapping(report.get(key))) for label, key in _LATENCY_ROWS]
    for label, stats in (("connect", _mapping(report.get("connect_ms"))),
                         ("TLS handshake",
                          _mapping(_mapping(report.get("tls")).get("handshake_ms")))):
        if any(_num(value) is not None for value in stats.values()):
            groups.append((label, stats))
    keys = list(_LATENCY_KEYS)
    for _, stats in groups:
        keys += [str(k) for k in stats if str(k) not in keys]
    rows = [[label] + [_ms(stats.get(k)) for k in keys] for label, stats in groups]
    return _table(["latency (ms)", *keys], rows, css="latency")


def _slo_value(value: Any, unit: Any) -> str:
    number = _num(value)
    if number is None:
        return "no value"
    if unit == "ms":
        return f"{_ms(number)} ms"
    if unit == "ratio":
        return f"{number * 100:.3g}%"
    if unit == "rps":
        return _rate(number)
    return _count(number)


def _slo_section(report: Mapping[str, Any]) -> str:
    slos = [_mapping(s) for s in _sequence(report.get("slo"))]
    if not slos:
        return ""
    rows = []
    for slo in slos:
        verdict = "passed" if slo.get("passed") else "FAILED"
        css = "pass" if slo.get("passed") else "fail"
        rows.append(
            f"<tr><td><code>{_e(slo.get('slo', '-'))}</code></td>"
            f"<td>{_e(slo.get('figure', '-'))}</td>"
            f"<td class=num>{_e(_slo_value(slo.get('value'), slo.get('unit')))}</td>"
            f"<td class=num>{_e(_slo_value(slo.get('threshold'), slo.get('unit')))}</td>"
            f'<td><span class="badge {css}">{verdict}</span></td></tr>')
    return ('<section><h2>SLOs</h2><table class="slo"><thead><tr><th>SLO</th><th>figure</th>'
            "<th class=num>value</th><th class=num>threshold</th><th>result</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></section>")


def _targets_section(report: Mapping[str, Any]) -> str:
    targets = [_mapping(t) for t in _sequence(report.get("targets"))]
    if len(targets) < 2:
        return ""
    rows = [(f"{t.get('method', '')} {t.get('url', '')}".strip(), _count(t.get("sent")),
             _count(t.get("ok")), _count(t.get("http_error")), _count(t.get("error")),
             _ms(_mapping(t.get("latency_ms")).get("p50")),
             _ms(_mapping(t.get("latency_ms")).get("p99")))
            for t in targets]
    return ("<section><h2>Targets</h2>"
            + _table(("target", "sent", "ok", "HTTP errors", "errors", "p50 ms", "p99 ms"),
                     rows, css="targets")
            + "</section>")


def _per_second_section(report: Mapping[str, Any]) -> str:
    rows = _time_rows(report)
    if not rows:
        return ""
    body = [(f"{_num(r.get('t_s')) or 0:g}", _rate(r.get("target_rps")),
             _rate(r.get("achieved_rps")), _rate(r.get("throughput_rps")), _count(r.get("sent")),
             _count(r.get("completed")), _count(r.get("ok")), _count(r.get("http_error")),
             _count(r.get("errors")),
             _ms(r.get("p50_ms")), _ms(r.get("p90_ms")), _ms(r.get("p99_ms")),
             _ms(r.get("max_ms")))
            for r in rows]
    table = _table(("second", "target/s", "achieved/s", "throughput/s", "sent", "completed",
                    "ok", "http errors", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"), body,
                   css="per-second")
    return (f"<section><details><summary>Second by second ({len(rows)} rows)</summary>"
            f"{table}</details></section>")


def _hammer_section(report: Mapping[str, Any]) -> str:
    samples = [_mapping(s) for s in _sequence(report.get("error_samples"))]
    if not samples:
        return ""
    items = []
    for sample in samples:
        last = str(sample.get("traceback", "")).strip().splitlines()[-1:]
        head = f"slot {sample.get('slot', '-')}: {last[0] if last else sample.get('error', '-')}"
        items.append(f"<details><summary>{_e(head)}</summary>"
                     f"<pre>{_e(sample.get('traceback', ''))}</pre></details>")
    return f"<section><h2>First errors</h2>{''.join(items)}</section>"


# --------------------------------------------------------------------------- page


def _headline(report: Mapping[str, Any]) -> str:
    """Key figures as tiles: rate, throughput, p99, errors."""
    counts = _mapping(report.get("counts"))
    rate = _mapping(report.get("rate"))
    latency = _mapping(report.get("latency_ms"))
    target = _num(rate.get("target_rps"))
    achieved_note = (f"of {format_rate(target)} target"
                     if target is not None and report.get("mode") != "closed" else "closed loop")
    failures = (_num(counts.get("http_error")) or 0) + (_num(counts.get("error")) or 0)
    tiles = [
        ("achieved rate", _rate(rate.get("achieved_rps")), achieved_note),
        ("throughput", _rate(report.get("throughput_rps")), "completed per second"),
        ("p99 latency", f"{_ms(latency.get('p99'))} ms"
         if _num(latency.get("p99")) is not None else "-", "corrected"),
        ("ok", _count(counts.get("ok")),
         f"{_share(counts.get('ok'), counts.get('scheduled')) or '-'} of scheduled"),
        ("failed", _count(failures),
         f"{_count(counts.get('http_error'))} HTTP, {_count(counts.get('error'))} other"),
    ]
    return '<div class="tiles">' + "".join(
        f'<div class="tile"><div class="tile-label">{_e(label)}</div>'
        f'<div class="tile-value">{_e(value)}</div><div class="tile-note">{_e(note)}</div></div>'
        for label, value, note in tiles) + "</div>"


def _verdicts(report: Mapping[str, Any]) -> str:
    saturated = [str(r) for r in _sequence(report.get("saturated"))]
    slos = [_mapping(s) for s in _sequence(report.get("slo"))]
    parts = []
    if saturated:
        parts.append('<div class="banner warn" data-verdict="saturated"><strong>Generator '
                     f"saturated:</strong> {_e('; '.join(saturated))}. The figures measure "
                     "the generator as much as the target.</div>")
    else:
        parts.append('<div class="banner ok" data-verdict="kept-up"><strong>Generator kept '
                     "up:</strong> no sign of saturation.</div>")
    if slos:
        failed = sum(1 for s in slos if not s.get("passed"))
        css = "fail" if failed else "ok"
        text = (f"{failed} of {len(slos)} SLOs FAILED" if failed
                else f"all {len(slos)} SLOs passed")
        parts.append(f'<div class="banner {css}" data-verdict="slo">'
                     f"<strong>{_e(text)}</strong></div>")
    return "".join(parts)


def _notes(report: Mapping[str, Any]) -> str:
    notes = [str(n) for n in _sequence(report.get("notes"))]
    if not notes:
        return ""
    return ("<section><h2>Notes</h2><ul class=notes>"
            + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul></section>")


def _chart_section(title: str, svg: str, caption: str = "") -> str:
    note = f'<p class="caption">{_e(caption)}</p>' if caption else ""
    return f'<section class="chart"><h2>{_e(title)}</h2>{svg}{note}</section>'


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f5f7fa; color: #1e293b;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
  "Noto Sans", "Liberation Sans", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 40px; }
header h1 { font-size: 22px; margin: 0 0 4px; font-weight: 650; letter-spacing: -0.01em; }
header .target { font: 13px/1.4 ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo,
  Consolas, monospace; color: #334155; overflow-wrap: anywhere; }
header .sub { color: #475569; margin-top: 2px; }
h2 { font-size: 15px; font-weight: 650; margin: 0 0 10px; color: #0f172a; }
section { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 16px 18px;
  margin: 14px 0; }
.grid2 { display: grid; grid-template-columns: 1.25fr 1fr 1fr; gap: 14px; }
.grid2 > section { margin: 0; }
.tiles { display: grid; grid-template-columns: repeat(5, 1fr); gap: 12px; margin: 18px 0 12px; }
.tile { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 10px 14px; }
.tile-label { color: #64748b; font-size: 12px; text-transform: uppercase;
  letter-spacing: 0.04em; }
.tile-value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums;
  margin: 2px 0; }
.tile-note { color: #64748b; font-size: 12px; }
.banner { border-radius: 8px; padding: 9px 14px; margin: 10px 0; border: 1px solid; }
.banner.ok { background: #f0fdf4; border-color: #bbf7d0; color: #14532d; }
.banner.warn { background: #fffbeb; border-color: #fde68a; color: #78350f; }
.banner.fail { background: #fef2f2; border-color: #fecaca; color: #7f1d1d; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid #eef2f6; text-align: left;
  vertical-align: top; }
thead th { color: #475569; font-weight: 600; font-size: 12px; border-bottom-color: #cbd5e1; }
table.kv th { color: #475569; font-weight: 500; width: 38%; white-space: nowrap; }
table.kv td { overflow-wrap: anywhere; }
.num { text-align: right; white-space: nowrap; }
tbody tr:last-child th, tbody tr:last-child td { border-bottom: none; }
code, pre { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas,
  monospace; font-size: 12.5px; }
pre { background: #f8fafc; border: 1px solid #e2e8f0; border-radius: 6px; padding: 10px;
  overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; }
.badge.pass { background: #dcfce7; color: #166534; }
.badge.fail { background: #fee2e2; color: #991b1b; }
svg { display: block; width: 100%; height: auto; font-size: 12px; }
svg text { fill: #475569; }
svg .grid line { stroke: #e5e9f0; stroke-width: 1; }
svg .axis line { stroke: #94a3b8; stroke-width: 1; }
svg .axis-title { fill: #334155; font-size: 12.5px; }
svg .legend text { fill: #1e293b; }
svg .empty { fill: #94a3b8; font-size: 14px; }
svg .frame { fill: #fafbfc; stroke: #e2e8f0; }
svg .baseline { stroke: #94a3b8; }
svg .bar text { fill: #1e293b; }
svg .bar text.value { font-variant-numeric: tabular-nums; }
svg .muted { fill: #64748b; }
.caption { color: #64748b; font-size: 12.5px; margin: 6px 0 0; }
.notes { margin: 0; padding-left: 18px; }
details summary { cursor: pointer; color: #334155; font-weight: 600; }
details table { margin-top: 8px; }
footer { color: #94a3b8; font-size: 12px; text-align: center; margin-top: 18px; }
@media (max-width: 900px) { .grid2, .tiles { grid-template-columns: 1fr; } }
"""

# Nothing may be loaded: no script, no font, no image, no frame, no connection.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'"


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page (no network access needed to view it)."""
    target = str(report.get("target", "-"))
    method = report.get("method")
    subtitle = (f"{_mode_text(report)} for {_seconds(report.get('duration_s'))}, "
                f"{_concurrency_text(report)}")
    spectrum_svg, from_histograms = _spectrum_chart(report)
    spectrum_caption = (
        "From the run's full latency histograms (HdrHistogram), a point every tenth of a "
        "decade up to the maximum. Corrected latency counts from each request's intended "
        "send time; uncorrected from the moment it was sent."
        if from_histograms else
        "From the summary percentiles only (this report carries no histograms): min, "
        "p50, p90, p99, p99.9 and max. Corrected latency counts from each request's "
        "intended send time; uncorrected from the moment it was sent.")
    body = [
        "<header>",
        "<h1>hammer load test report</h1>",
        f'<div class="target">{_e(method) + " " if method else ""}{_e(target)}</div>',
        f'<div class="sub">{_e(subtitle)}</div>',
        "</header>",
        _headline(report),
        _verdicts(report),
        '<div class="grid2">',
        f"<section><h2>Run</h2>{_run_table(report)}</section>",
        f"<section><h2>Requests</h2>{_requests_table(report)}</section>",
        f"<section><h2>Rate and data</h2>{_rate_table(report)}</section>",
        "</div>",
        f"<section><h2>Latency</h2>{_latency_table(report)}</section>",
        _slo_section(report),
        _chart_section("Latency over time", _latency_chart(report),
                       "Corrected latency of the requests completed in each second."),
        _chart_section("Request rate", _rate_chart(report),
                       "Target: what the schedule asked for; achieved: requests sent; "
                       "throughput: responses completed, each second."),
        _chart_section("Latency percentile spectrum", spectrum_svg, spectrum_caption),
        _chart_section("Outcomes", _outcomes_chart(report),
                       "Shares are of the scheduled requests."),
        _targets_section(report),
        _hammer_section(report),
        _notes(report),
        _per_second_section(report),
        f"<footer>hammer report format version {_e(report.get('version', '-'))}</footer>",
    ]
    title = f"hammer: {target}"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body><main>",
        *(part for part in body if part),
        "</main></body>",
        "</html>",
        "",
    ])


def write_html_atomic(report: Mapping[str, Any], path: str) -> None:
    """Write ``render_html(report)`` to ``path`` atomically (``"-"``: stdout); an
    OSError says ``cannot write HTML report to PATH: <reason>``."""
    from hammer.reporters import write_text_atomic

    write_text_atomic(render_html(report), path, "HTML")
