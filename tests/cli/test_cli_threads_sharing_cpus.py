"""More worker threads than CPUs: in closed loop the workers run as SCHED_BATCH (a
wake-up of one does not preempt another mid-batch), and the report says so; in open loop
they keep the default policy, since a send's wake-up must not wait. The policy of each
thread is read from outside while the run goes on, on a process limited to one CPU."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from hammer import exitcodes
from servers import hammer_command


def _policies(pid: int) -> list[int]:
    """The scheduling policy of each thread of pid (sched_getscheduler takes a TID)."""
    policies = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            policies.append(os.sched_getscheduler(int(task.name)))
        except OSError:
            continue  # the thread ended meanwhile
    return policies


def _run_on_one_cpu(*args: str, ok_codes: tuple[int, ...] = (exitcodes.OK,)
                    ) -> tuple[dict[str, Any], int]:
    """Run hammer on one CPU; returns its JSON report and the most threads seen at once
    with SCHED_BATCH while it ran."""
    cpu = min(os.sched_getaffinity(0))
    proc = subprocess.Popen(
        hammer_command(*args, "--json", "-", "-q"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    most_batch = 0
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        most_batch = max(most_batch, _policies(proc.pid).count(os.SCHED_BATCH))
        time.sleep(0.05)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode in ok_codes, err
    return json.loads(out), most_batch


def test_closed_loop_workers_sharing_a_cpu_run_as_sched_batch(target_server: Any) -> None:
    server = target_server()
    report, most_batch = _run_on_one_cpu("run", server.url, "-c", "4", "-t", "2", "-d", "1s")
    assert most_batch == 2
    assert [n for n in report["notes"] if "SCHED_BATCH" in n] == [
        "2 worker threads share 1 CPU(s): 2 ran as SCHED_BATCH, so that a wake-up of one "
        "does not preempt another mid-batch"]
    assert report["counts"]["ok"] == report["counts"]["sent"] > 0
    assert server.wait_stats(requests=report["counts"]["sent"])["requests"] == \
        report["counts"]["sent"]


def test_one_worker_or_open_loop_keeps_the_default_policy(target_server: Any) -> None:
    server = target_server()
    # open loop on one shared CPU may miss its schedule by a millisecond (exit 3, saturated)
    for args, ok_codes in ((("-t", "1", "-d", "1s"), (exitcodes.OK,)),
                           (("-t", "2", "-r", "200", "-d", "1s"),
                            (exitcodes.OK, exitcodes.SATURATED))):
        report, most_batch = _run_on_one_cpu("run", server.url, "-c", "4", *args,
                                             ok_codes=ok_codes)
        assert most_batch == 0, args
        assert not [n for n in report["notes"] if "SCHED_BATCH" in n], args
        assert report["counts"]["ok"] == report["counts"]["sent"] > 0
