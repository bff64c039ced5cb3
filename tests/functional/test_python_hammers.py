"""Python hammers, driven by the core's pacer, against the built-in server.

The server counts what it received; every test asserts exact equality with what hammer
reports, and the accounting invariant."""

from __future__ import annotations

import asyncio
import collections
import http.client
import itertools
import statistics
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

import hammer
from accounting import check_invariant
from hammer.errors import ConfigError, HammerSetupError
from hammer.hammers import Hammer, Outcome, StopRun


class MiniClient:
    """A tiny keep-alive HTTP/1.1 client on asyncio streams (GET, Content-Length)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def get(self, path: str = "/") -> int:
        if self.idle:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.opened += 1
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await reader.readexactly(length)
        self.idle.append((reader, writer))
        return status

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class GetHammer(Hammer):
    """One GET per hit against `url`."""

    def __init__(self, url: str, **options: object) -> None:
        super().__init__(**options)
        self.url = url
        self.client: MiniClient | None = None

    async def setup(self, ctx: hammer.hammers.RunContext) -> None:
        self.client = MiniClient(self.url)

    async def hit(self, slot: int) -> int:
        assert self.client is not None
        return await self.client.get()

    async def teardown(self) -> None:
        if self.client is not None:
            await self.client.close()


class SyncGetHammer(Hammer):
    """A plain def hit with a blocking http.client connection per thread."""

    def __init__(self, url: str) -> None:
        super().__init__()
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.local = threading.local()
        self.conns: list[http.client.HTTPConnection] = []

    def hit(self, slot: int) -> Outcome:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
            self.conns.append(conn)
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
        return Outcome(status=response.status, bytes_in=len(body))

    async def teardown(self) -> None:
        for conn in self.conns:
            conn.close()


def test_async_hammer_open_loop_counts_match_the_server(target_server) -> None:
    server = target_server()
    h = GetHammer(server.url)
    report = hammer.run(hammer=h, rate=200, duration="1s")
    check_invariant(report)
    c = report.counts
    assert c.scheduled == 200
    assert c.ok == c.sent == c.completed == 200
    assert report.status == {"200": 200}
    stats = server.wait_stats(requests=200)
    assert stats["responses"] == {"200": 200}
    assert report.to_dict()["kind"] == "python"
    assert report.to_dict()["hammer"]["call"] == "async hit() on the event loop"


def test_sync_hammer_runs_on_a_thread_pool(target_server) -> None:
    server = target_server(body_size="7")
    report = hammer.run(hammer=SyncGetHammer(server.url), rate=100, duration="1s",
                        connections=4)
    check_invariant(report)
    assert report.counts.ok == 100
    assert report.bytes_received == 700
    assert server.wait_stats(requests=100)["responses"] == {"200": 100}
    assert report.to_dict()["hammer"]["call"] == "plain hit() on a pool of 4 threads"


def test_closed_loop_keeps_n_hits_in_flight_and_honours_the_budget(target_server) -> None:
    server = target_server(delay="5ms")
    inflight = 0
    peak = 0

    class Counting(GetHammer):
        async def hit(self, slot: int) -> int:
            nonlocal inflight, peak
            inflight += 1
            peak = max(peak, inflight)
            try:
                return await super().hit(slot)
            finally:
                inflight -= 1

    report = hammer.run(hammer=Counting(server.url), connections=4, requests=120)
    check_invariant(report)
    assert report.config.mode == "closed"
    assert report.counts.scheduled == report.counts.ok == 120
    assert peak == 4
    assert server.wait_stats(requests=120)["requests"] == 120


def test_exceptions_are_errors_by_type_with_the_first_tracebacks() -> None:
    class Flaky(Hammer):
        async def hit(self, slot: int) -> None:
            if slot % 5 == 0:
                raise ValueError(f"bad slot {slot}")
            if slot % 7 == 0:
                raise KeyError(slot)

    report = hammer.run(hammer=Flaky(), rate=100, requests=70)
    check_invariant(report)
    value_errors = sum(1 for s in range(70) if s % 5 == 0)
    key_errors = sum(1 for s in range(70) if s % 5 and s % 7 == 0)
    assert report.errors == {"ValueError": value_errors, "KeyError": key_errors}
    assert report.counts.ok == 70 - value_errors - key_errors
    assert report.status == {"none": report.counts.ok}
    samples = report.error_samples
    assert [s["slot"] for s in samples] == [0, 5, 7, 10, 14]
    assert "ValueError: bad slot 0" in samples[0]["traceback"]
    assert "Traceback" in samples[0]["traceback"]


def test_outcomes_statuses_and_ok_policy() -> None:
    class Mixed(Hammer):
        ok_statuses = frozenset({200, 404})

        async def hit(self, slot: int) -> int | Outcome:
            kind = slot % 4
            if kind == 0:
                return 200
            if kind == 1:
                return 404   # ok by this hammer's policy
            if kind == 2:
                return Outcome(ok=False, status=200, bytes_out=3)
            return Outcome(error="rejected")

    report = hammer.run(hammer=Mixed(), rate=200, requests=40)
    check_invariant(report)
    assert report.counts.ok == 20
    assert report.counts.http_error == 10
    assert report.errors == {"rejected": 10}
    assert report.status == {"200": 20, "404": 10}
    assert report.bytes_sent == 30


def test_stop_run_ends_the_run_with_a_partial_report() -> None:
    class Stopper(Hammer):
        async def hit(self, slot: int) -> None:
            if slot == 30:
                raise StopRun("enough at 30")

    report = hammer.run(hammer=Stopper(), rate=500, duration="5s")
    check_invariant(report)
    assert report.stopped == "enough at 30"
    assert report.errors == {"StopRun": 1}
    # hits already started when slot 30 raised still finish (on a busy host, a few)
    assert 31 <= report.counts.scheduled <= 40
    assert report.counts.ok == report.counts.scheduled - 1
    assert report.duration_s < 1.0
    assert any("StopRun" in note and "enough at 30" in note for note in report.notes)


def test_a_slow_hammer_at_its_in_flight_limit_is_late_then_unsent() -> None:
    class Slow(Hammer):
        async def hit(self, slot: int) -> None:
            await asyncio.sleep(0.2)

    # 2 in flight, each 200 ms: 10 hits/s at most against 50/s asked; slots that wait
    # longer than the 300 ms timeout are never sent
    report = hammer.run(hammer=Slow(), rate=50, duration="1s", connections=2,
                        timeout="300ms")
    check_invariant(report)
    c = report.counts
    assert c.scheduled == 50
    assert c.error == 0
    assert 6 <= c.sent <= 14
    assert c.late >= c.sent - 2
    assert c.unsent == c.scheduled - c.sent
    assert any("waited for a free in-flight slot (all 2 were busy)" in n for n in report.notes)
    assert "requests never sent" in " ".join(report.saturation())


def test_hits_past_their_timeout_are_timeout_errors() -> None:
    class Hang(Hammer):
        async def hit(self, slot: int) -> None:
            if slot % 2:
                await asyncio.sleep(30)

    start = time.monotonic()
    report = hammer.run(hammer=Hang(), rate=20, requests=10, timeout="200ms")
    assert time.monotonic() - start < 5
    check_invariant(report)
    assert report.errors == {"timeout": 5}
    assert report.counts.ok == 5
    assert report.latency_ms["max"] is not None


def test_sync_hits_past_their_timeout_are_timeout_errors() -> None:
    release = threading.Event()

    class SyncHang(Hammer):
        def hit(self, slot: int) -> None:
            if slot == 1:
                release.wait(5)

    report = hammer.run(hammer=SyncHang(), rate=20, requests=4, timeout="200ms",
                        connections=2)
    release.set()
    check_invariant(report)
    assert report.errors == {"timeout": 1}
    assert report.counts.ok == 3


def _stamped_run(rate: int, duration: str,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[int], list[int], int]:
    """A run of a hammer that notes each hit's slot and the clock as it starts: the report,
    the slots, the stamps, and when slot 0 was due (read from the run's SlotTimer)."""
    from hammer import _core

    starts: list[int] = []
    slots: list[int] = []
    slot0_ns: list[int] = []

    class Stamp(Hammer):
        async def hit(self, slot: int) -> None:
            starts.append(time.monotonic_ns())
            slots.append(slot)

    class NotedTimer(_core.SlotTimer):
        def start(self, start_ns: int) -> None:
            slot0_ns.append(start_ns)
            super().start(start_ns)

    monkeypatch.setattr(_core, "SlotTimer", NotedTimer)
    report = hammer.run(hammer=Stamp(), rate=rate, duration=duration)
    check_invariant(report)
    assert report.counts.ok == len(starts) and len(slot0_ns) == 1
    return report, slots, starts, slot0_ns[0]


def _median_per_window(starts: list[int], window_ns: int) -> float:
    """The median count of hits started in each whole window (the first and last left
    out: they are partial)."""
    windows = collections.Counter((t - starts[0]) // window_ns for t in starts)
    last = max(windows)
    return statistics.median(n for w, n in windows.items() if 0 < w < last)


def test_pacing_follows_the_intended_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each hit starts at its slot's intended time (start + k/rate), not in bursts."""
    rate = 1000
    report, _, starts, _ = _stamped_run(rate, "2s", monkeypatch)
    assert len(starts) == 2000
    period_ns = 1_000_000_000 // rate
    # send lag is start minus intended time: the report says how far behind each hit was
    lag = report.send_lag_ms
    assert lag["p50"] is not None and lag["p50"] < 0.5
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert statistics.median(gaps) == pytest.approx(period_ns, rel=0.05)
    # never a burst at the start of a second: every 10 ms window holds about 10 hits
    assert _median_per_window(starts, 10_000_000) == 10
    # per-second rows: the schedule's rate, every second
    assert [row["achieved_rps"] for row in report.time_series] == [1000.0, 1000.0]


def test_slots_due_within_a_quantum_start_together_and_never_early(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Above one slot per pacing quantum (190 us by default), a timer wake starts every slot
    due by then: the hits of one wake start together, none before its intended time, and
    every millisecond still carries its share of the rate."""
    from hammer.plan import PYTHON_QUANTUM_NS

    report, slots, starts, slot0_ns = _stamped_run(20_000, "1s", monkeypatch)
    assert len(starts) == 20_000
    assert report.to_dict()["pacing"] == {"mode": "quantum",
                                          "quantum_us": PYTHON_QUANTUM_NS / 1000}
    # a hit starts at its wake or later, never before its slot (slot k is due 50 us * k
    # after slot 0): the wake serves only what is due, not what falls due in the quantum
    early = [(k, t - slot0_ns - 50_000 * k) for k, t in zip(slots, starts, strict=True)
             if t < slot0_ns + 50_000 * k]
    assert early == []
    # batches: several hits start within a few microseconds of each other (a slot is due
    # every 50 us), so most gaps are far below the period
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert statistics.median(gaps) < 50_000 // 2
    # and yet every millisecond holds its 20 hits: wakes come once per quantum, not in
    # bursts
    assert 19 <= _median_per_window(starts, 1_000_000) <= 21


def test_failing_setup_refuses_the_run_before_anything_is_scheduled() -> None:
    hits = []

    class BadSetup(Hammer):
        async def setup(self, ctx: object) -> None:
            raise RuntimeError("no credentials")

        async def hit(self, slot: int) -> None:
            hits.append(slot)

    with pytest.raises(HammerSetupError, match=r"setup of .*BadSetup failed: RuntimeError: "
                                              r"no credentials"):
        hammer.run(hammer=BadSetup(), rate=100, duration="1s")
    assert hits == []


def test_http_options_are_refused_for_a_python_hammer() -> None:
    class Noop(Hammer):
        async def hit(self, slot: int) -> None:
            return None

    with pytest.raises(ConfigError, match="--method is for the HTTP kind"):
        hammer.run(hammer=Noop(), rate=10, requests=1, method="POST")
    with pytest.raises(ConfigError, match="--threads is for the core's HTTP kind"):
        hammer.run(hammer=Noop(), rate=10, requests=1, threads=2)


def test_sigint_stops_a_python_hammer_run_gracefully() -> None:
    import os
    import signal

    class Noop(Hammer):
        async def hit(self, slot: int) -> None:
            return None

    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        report = hammer.run(hammer=Noop(), rate=100, duration="10s")
    finally:
        timer.cancel()
    check_invariant(report)
    assert report.interrupted == "SIGINT"
    assert 20 <= report.counts.scheduled <= 150
    assert report.duration_s < 3


def test_hits_that_waited_count_as_late_whatever_their_outcome() -> None:
    class SlowFail(Hammer):
        async def hit(self, slot: int) -> None:
            await asyncio.sleep(0.03)
            raise ValueError("no")

    # one in flight, 30 ms a hit, 100/s asked: every hit after the first waited
    report = hammer.run(hammer=SlowFail(), rate=100, requests=10, connections=1,
                        timeout="5s")
    check_invariant(report)
    assert report.counts.error == report.counts.sent == 10
    assert report.counts.late == 9


def test_each_hit_runs_in_a_task_and_a_context_of_its_own() -> None:
    """Every hit runs inside a Task (client libraries need one: aiohttp's timeouts call
    asyncio.current_task(); a first step run outside a Task broke them), never one that
    another hit in flight runs in (a worker's, one hit at a time), with a context of its
    own; hits done at once and hits that waited are counted alike."""
    import contextvars

    current: contextvars.ContextVar[int] = contextvars.ContextVar("current", default=-1)
    in_flight: dict[asyncio.Task[object], int] = {}

    class Mixed(Hammer):
        async def hit(self, slot: int) -> int:
            task = asyncio.current_task()
            if current.get() != -1 or task is None or task in in_flight:
                return 500                      # shared with another hit
            current.set(slot)
            if slot % 3:
                in_flight[task] = slot
                await asyncio.sleep(0.002)      # overlaps the next hits
                if in_flight.pop(task) != slot or asyncio.current_task() is not task:
                    return 500
            return 200 if current.get() == slot else 500

    report = hammer.run(hammer=Mixed(), rate=2000, requests=600, spin="1ms")
    check_invariant(report)
    assert report.status == {"200": 600}
    assert current.get() == -1                  # the driver's own context untouched


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is Python 3.11+")
def test_asyncio_timeouts_inside_hits_and_hammer_timeouts_mix() -> None:
    """A hit's own asyncio.timeout() cancels the Task it runs in; so does hammer's
    --timeout. Both land in that hit alone: the worker goes on, and later hits on it,
    with timeouts of their own that do not expire, succeed."""
    class Timeouts(Hammer):
        async def hit(self, slot: int) -> int:
            kind = slot % 3
            if kind == 0:       # its own timeout expires: TimeoutError, by type
                async with asyncio.timeout(0.005):
                    await asyncio.sleep(1)
            elif kind == 1:     # past hammer's 50 ms timeout: "timeout"
                await asyncio.sleep(1)
            async with asyncio.timeout(1):       # kind 2: a timeout that never fires
                await asyncio.sleep(0.001)
            return 200

    report = hammer.run(hammer=Timeouts(), rate=300, requests=150, connections=32,
                        timeout="50ms")
    check_invariant(report)
    assert report.errors == {"TimeoutError": 50, "timeout": 50}
    assert report.status == {"200": 50}
    assert report.counts.unsent == 0


def test_a_hit_that_cancels_its_own_task_is_cancelled_alone() -> None:
    """A hit that cancels the Task it runs in gets the CancelledError at its next await,
    as under a Task of its own; the hits after it are not touched."""
    class SelfCancel(Hammer):
        async def hit(self, slot: int) -> int:
            if slot % 4 == 0:
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
            await asyncio.sleep(0)
            await asyncio.sleep(0.001)
            return 200

    report = hammer.run(hammer=SelfCancel(), rate=400, requests=100, connections=16)
    check_invariant(report)
    assert report.errors == {"cancelled": 25}
    assert report.status == {"200": 75}


def test_a_hammer_that_cannot_keep_up_still_ends_on_time() -> None:
    """Hits that end at once but take 200 us of CPU each, asked at 20,000/s: the loop
    keeps control between batches, the load phase ends at its second (what is still due
    is unsent, as for HTTP), rather than when every slot of the plan was started."""
    class Busy(Hammer):
        async def hit(self, slot: int) -> None:
            until = time.perf_counter() + 200e-6
            while time.perf_counter() < until:
                pass

    t0 = time.monotonic()
    report = hammer.run(hammer=Busy(), rate=20000, duration="1s")
    wall_s = time.monotonic() - t0
    check_invariant(report)
    assert report.counts.scheduled == 20000
    assert report.counts.unsent > 10000       # at most ~5,000 fit in the second
    assert report.counts.error == 0
    assert wall_s < 3.0                       # 20,000 x 200 us would be 4 s of hits
    assert report.saturation()                # and the report says the generator lagged
