"""`--hlog PATH`: an HdrHistogram interval log of a run, one V2-compressed histogram of
corrected latency per second (tag `corrected`), in the standard log format that
HistogramLogAnalyzer, hdrh's HistogramLogReader and other tools read. Values are ns;
the interval max is in ms, as the format's convention has it."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any

from hammer.reporters import write_text_atomic

LOG_FORMAT_VERSION = "1.3"
TAG = "corrected"
SECOND_SIGFIGS = 2          # the core's per-second histograms


def render_hlog(report: Any) -> str:
    """The interval log of a finished run's report (built from totals)."""
    from hdrh.histogram import HdrHistogram

    from hammer import __version__, _core

    totals = report.totals
    agg = totals.aggregator
    # the run's second 0 on the wall clock (the log's StartTime)
    start_epoch_s = time.time() - (time.monotonic_ns() - totals.start_ns) / 1e9
    lines = [f"#[Logged with hammer {__version__}]",
             f"#[Histogram log format version {LOG_FORMAT_VERSION}]",
             f"#[StartTime: {start_epoch_s:.3f} (seconds since epoch), "
             f"{datetime.fromtimestamp(start_epoch_s, timezone.utc).isoformat(' ')}]",
             '"StartTimestamp","Interval_Length","Interval_Max",'
             '"Interval_Compressed_Histogram"']
    for i in range(max(math.ceil(report.duration_s - 1e-3), 0)):
        counts = agg.second_counts(i)
        if not counts:
            continue
        h = HdrHistogram(1, _core.HIST_HIGHEST_NS, SECOND_SIGFIGS)
        for value, count in counts:
            h.record_value(max(value, 1), count)
        payload = h.encode().decode("ascii")
        lines.append(f"Tag={TAG},{i:.3f},1.000,{h.get_max_value() / 1e6:.3f},{payload}")
    return "\n".join(lines) + "\n"


def write_hlog(report: Any, path: str) -> None:
    write_text_atomic(render_hlog(report), path, "hlog")


__all__ = ["render_hlog", "write_hlog"]
