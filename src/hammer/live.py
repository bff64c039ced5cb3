"""The live view: a few lines on the terminal, redrawn while a run goes.

It runs on the control thread only, at most twice a second (the runner calls it from
its drain loop): elapsed and remaining time with a progress bar, the target and the
achieved rate of the last full second, requests in flight, outcomes so far, and the last
full second's latency p50/p99. The lines are redrawn in place and cleared at the end, so
the text report that follows is what stays on screen.
"""

from __future__ import annotations

import shutil
from typing import Any, TextIO

from hammer.metrics import target_count
from hammer.units import format_count, format_rate

INTERVAL_S = 0.5          # at most two updates a second
BAR_WIDTH = 30
# ANSI: cursor up N lines, carriage return, clear the line
_UP = "\x1b[{}A"
_CLEAR = "\r\x1b[2K"


def snapshot(aggregator: Any, *, elapsed_s: float, scheduled: int, unsent: int) -> dict[str, Any]:
    """What the live view shows, read from a run's aggregator after a drain."""
    second = int(elapsed_s) - 1        # the last full second
    return {
        "elapsed_s": elapsed_s,
        "scheduled": scheduled,
        "sent": aggregator.sent,
        "completed": aggregator.completed,
        "ok": aggregator.ok,
        "http_error": aggregator.http_error,
        "errors": aggregator.errors,
        "in_flight": max(scheduled - unsent - aggregator.results, 0),
        "second": second,
        "last_second": aggregator.second_row(second) if second >= 0 else None,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms" if value < 100 else f"{value:,.0f} ms"


def _clock(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class LiveView:
    """Draws snapshots of one run (a RunConfig or a Python hammer's config) on `out`."""

    def __init__(self, config: Any, out: TextIO) -> None:
        self.config = config
        self.out = out
        self.lines_drawn = 0
        self.frames = 0

    def lines(self, snap: dict[str, Any]) -> list[str]:
        """The view of one snapshot, as lines (without colours)."""
        cfg = self.config
        plan = cfg.plan
        elapsed = float(snap["elapsed_s"])
        if plan.duration_ns is not None:
            total_s = plan.duration_ns / 1e9
            done = min(elapsed / total_s, 1.0) if total_s > 0 else 1.0
            when = f"{_clock(elapsed)} of {_clock(total_s)}, {_clock(total_s - elapsed)} left"
        else:
            budget = plan.requests or 1
            done = min(snap["scheduled"] / budget, 1.0)
            when = f"{_clock(elapsed)}, {format_count(snap['scheduled'])} of " \
                   f"{format_count(budget)} requests"
        filled = round(done * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        row = snap["last_second"]
        second = snap["second"]
        if row is not None:
            wanted = target_count(cfg, second, second + 1)
            target = "-" if wanted is None else format_rate(wanted)
            achieved = format_rate(row["sent"])
            latency = f"p50 {_ms(row['p50_ms'])}  p99 {_ms(row['p99_ms'])}"
        else:
            target = "-" if not cfg.open_loop else format_rate(
                target_count(cfg, 0, 1) or 0)
            achieved, latency = "-", "p50 -  p99 -"
        return [
            f"  [{bar}] {done * 100:3.0f}%  {when}",
            f"  rate  target {target}  achieved {achieved}   in flight "
            f"{format_count(snap['in_flight'])}   last second: {latency}",
            f"  ok {format_count(snap['ok'])}  http errors {format_count(snap['http_error'])}"
            f"  errors {format_count(snap['errors'])}  of {format_count(snap['scheduled'])} "
            "scheduled",
        ]

    def draw(self, snap: dict[str, Any]) -> None:
        width = max(shutil.get_terminal_size((100, 24)).columns - 1, 20)
        lines = [line[:width] for line in self.lines(snap)]
        parts = []
        if self.lines_drawn:
            parts.append(_UP.format(self.lines_drawn - 1) if self.lines_drawn > 1 else "")
        parts.append("\n".join(_CLEAR + line for line in lines))
        self.out.write("".join(parts))
        self.out.flush()
        self.lines_drawn = len(lines)
        self.frames += 1

    def clear(self) -> None:
        """Erase the view, leaving the cursor where it began."""
        if not self.lines_drawn:
            return
        self.out.write(_CLEAR + (_UP.format(1) + _CLEAR) * (self.lines_drawn - 1))
        self.out.flush()
        self.lines_drawn = 0


__all__ = ["INTERVAL_S", "LiveView", "snapshot"]
