"""The accounting every test of a run checks: every request in exactly one bucket."""

from __future__ import annotations

from hammer.metrics import Report


def check_invariant(report: Report) -> None:
    c = report.counts
    assert c.scheduled == c.ok + c.http_error + c.error + c.unsent
    assert c.completed == c.ok + c.http_error
    assert c.error == sum(report.errors.values())
    assert c.completed == sum(report.status.values())
    assert not [note for note in report.notes if "mismatch" in note]
