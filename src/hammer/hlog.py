"""`--hlog PATH`: an HdrHistogram interval log of a run, one V2-compressed histogram of
corrected latency per second (tag `corrected`), in the standard log format that
HistogramLogAnalyzer, hdrh's HistogramLogReader and other tools read. Values are ns;
the interval max is in ms, as the format's convention has it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from hammer.reporters import write_text_atomic

LOG_FORMAT_VERSION = "1.3"
TAG = "corrected"


def render_hlog(report: Mapping[str, Any]) -> str:
    """The interval log of a report (a run's to_dict(), or a merge of several): each
    second's histogram as the report keeps it (histograms.seconds), already V2-encoded."""
    from hammer import __version__

    start_epoch_s = report.get("start_epoch_s") or time.time()
    lines = [f"#[Logged with hammer {__version__}]",
             f"#[Histogram log format version {LOG_FORMAT_VERSION}]",
             f"#[StartTime: {start_epoch_s:.3f} (seconds since epoch), "
             f"{datetime.fromtimestamp(start_epoch_s, timezone.utc).isoformat(' ')}]",
             '"StartTimestamp","Interval_Length","Interval_Max",'
             '"Interval_Compressed_Histogram"']
    seconds = (report.get("histograms") or {}).get("seconds") or []
    for i, second in enumerate(seconds):
        if not second:
            continue
        lines.append(f"Tag={TAG},{i:.3f},1.000,{second['max_ns'] / 1e6:.3f},{second['hdr']}")
    return "\n".join(lines) + "\n"


def write_hlog(report: Mapping[str, Any], path: str) -> None:
    write_text_atomic(render_hlog(report), path, "hlog")


__all__ = ["render_hlog", "write_hlog"]
