"""The control loop's wakes: it drains on a long timer, and sooner when the engine's
eventfd says a worker finished or a ring is a quarter full, or when a stop comes."""

from __future__ import annotations

import asyncio
import os
import select
import time
from typing import Any

import pytest

import hammer
from accounting import check_invariant
from hammer import _core, runner
from hammer.config import make_config


def test_engine_wakes_at_each_quarter_ring_and_at_finish(target_server: Any) -> None:
    server = target_server()
    config = make_config(server.url, connections=2, threads=2, requests=200)
    engine = runner._engine_for(config, ring_capacity=64)
    engine.start()
    deadline = time.monotonic() + 10
    while not engine.all_ready():
        assert time.monotonic() < deadline, "workers never connected"
        time.sleep(0.001)
    engine.go_at(_core.monotonic_ns() + 1_000_000)
    wakes = drained = 0
    while not engine.finished():
        readable, _, _ = select.select([engine.wake_fd], [], [], 10)
        assert readable, "no wake within 10 s"
        wakes += os.eventfd_read(engine.wake_fd)
        drained += engine.drain()
    engine.join()  # each worker writes its last wake just after it sets `finished`
    if select.select([engine.wake_fd], [], [], 0)[0]:
        wakes += os.eventfd_read(engine.wake_fd)
    drained += engine.drain()
    assert drained == 200
    assert server.wait_stats(requests=200)["requests"] == 200
    # each worker (100 results, a 64-slot ring) crosses a multiple of 16 results six
    # times (16 .. 96), then writes once more as it finishes
    assert wakes == 2 * (6 + 1)


def test_run_ends_when_the_workers_do_not_at_the_next_timed_wake(
        target_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server = target_server()
    monkeypatch.setattr(runner, "DRAIN_INTERVAL_S", 60.0)
    t0 = time.monotonic()
    report = hammer.run(server.url, connections=4, requests=40)
    elapsed_s = time.monotonic() - t0
    check_invariant(report)
    assert report.counts.ok == 40
    assert server.wait_stats(requests=40)["requests"] == 40
    assert elapsed_s < 30, elapsed_s  # would be 60 s without the finish wake


def test_stop_request_wakes_the_loop_and_the_grace_period_ends_on_time(
        target_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop arrives while every request waits on a server that answers in 30 s: the
    loop wakes at once to stop scheduling, then again when the grace period runs out to
    cancel what is in flight, not at its next timed wake a minute later."""
    server = target_server(delay="30s")
    monkeypatch.setattr(runner, "DRAIN_INTERVAL_S", 60.0)
    config = make_config(server.url, connections=3, duration="60s", timeout="60s")

    async def stop_soon() -> tuple[hammer.Report, float]:
        interrupt = runner.Interrupt()
        task = asyncio.ensure_future(runner.run_async(config, interrupt=interrupt))
        await asyncio.sleep(0.5)
        stopped_at = time.monotonic()
        interrupt.request("test-stop")
        report = await task
        return report, time.monotonic() - stopped_at

    report, after_stop_s = asyncio.run(stop_soon())
    check_invariant(report)
    assert report.interrupted == "test-stop"
    assert report.errors == {"cancelled": 3}
    assert report.counts.sent == 3
    assert runner.STOP_GRACE_S <= after_stop_s < runner.STOP_GRACE_S + 5, after_stop_s
