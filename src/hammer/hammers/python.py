"""The driver of Python hammers: the core's pacer, on the event loop's thread.

Slot k is due at the same intended time as an HTTP request of the same plan. A timerfd
armed to that time (absolute CLOCK_MONOTONIC) wakes the loop; each wake starts every
slot due by then, each measured from its own intended time. The driver takes every
timestamp (the hammer never reports latency) and records into the core's Aggregator,
so reports, JSON and accounting are those of HTTP runs:

    scheduled == ok + http_error + error + unsent

At the in-flight limit, due slots wait (late) and go out as hits finish; a slot still
waiting when its timeout has passed, or when the load phase ends, is unsent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
import traceback
import types
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from hammer import live
from hammer.errors import ConfigError, HammerSetupError
from hammer.hammers import Outcome, RunContext, StopRun, hit_is_async
from hammer.plan import PYTHON_QUANTUM_NS, NotHttp, Plan, PlanView, start_ns_for

MAX_ERROR_SAMPLES = 5
MAX_DEFAULT_IN_FLIGHT = 100_000
MAX_SYNC_THREADS = 64
DEFAULT_CLOSED_IN_FLIGHT = 10
START_DELAY_NS = 10_000_000       # slot 0 is due this long after the driver starts
MIN_SWEEP_INTERVAL_S = 0.005      # timeouts are swept every 1 % of the timeout, within
MAX_SWEEP_INTERVAL_S = 0.1        # these bounds (as the core's workers do)
STOP_GRACE_S = 1.0                # after a stop signal, hits in flight get this long


@dataclass(frozen=True)
class HammerConfig(NotHttp, PlanView):
    """A run of a Python hammer: the plan (when) and the hammer instance (what)."""

    plan: Plan
    hammer: Any = field(compare=False)
    name: str                     # module:Class, for reports
    is_async: bool
    sync_threads: int = 0         # plain `def hit`: the thread pool's size
    url: str | None = None        # the URL given on the command line, if any
    secrets: tuple[str, ...] = field(default=(), repr=False)  # redacted in every output
    slos: tuple[Any, ...] = ()                                 # hammer.slo.Slo thresholds

    kind = "python"
    threads = property(lambda self: 1)     # one event loop
    spin_ns = property(lambda self: 0)     # never polls

    @property
    def quantum_ns(self) -> int:
        return self.plan.quantum_for(PYTHON_QUANTUM_NS)

    @property
    def label(self) -> str:
        return f"python:{self.name}"

    def report_fields(self) -> dict[str, object]:
        call = ("async hit() on the event loop" if self.is_async
                else f"plain hit() on a pool of {self.sync_threads} threads")
        return {"kind": "python", "class": self.name, "call": call}


def make_hammer_config(hammer: Any, plan: Plan, url: str | None = None) -> HammerConfig:
    """Check the plan fits a Python hammer and settle its in-flight limit."""
    cls = type(hammer)
    name = f"{cls.__module__}:{cls.__qualname__}"
    if not callable(getattr(hammer, "hit", None)):
        raise ConfigError(f"{name} has no hit method")
    if plan.threads != 1:
        raise ConfigError("--threads is for the core's HTTP kind: a Python hammer runs on "
                          "one event loop")
    is_async = hit_is_async(hammer)
    limit = plan.concurrency
    if limit is None:
        if plan.open_loop:
            # enough to keep the rate while every hit takes up to the timeout
            assert plan.rate_rps is not None
            wanted = float(plan.rate_rps) * plan.timeout_ns / 1e9
            limit = max(1, min(MAX_DEFAULT_IN_FLIGHT, int(wanted) + 1))
        else:
            limit = DEFAULT_CLOSED_IN_FLIGHT
    threads = 0
    if not is_async:
        threads = min(limit, MAX_SYNC_THREADS) if plan.concurrency is None else limit
        limit = threads
    return HammerConfig(plan=plan.with_concurrency(limit), hammer=hammer, name=name,
                        is_async=is_async, sync_threads=threads, url=url)


class _Driver:
    """One load phase of a Python hammer on the running loop.

    Hits run in worker tasks: a worker starts what is due through the core's HitLoop,
    which runs each hit's first step in the worker (so the hit has a current Task, and a
    context of its own) and records a hit that ends there without a Task per hit. A hit
    that waits keeps its worker until it ends, and another worker (an idle one, or a new
    one up to the in-flight limit) starts what falls due meanwhile."""

    def __init__(self, config: HammerConfig, aggregator: Any, timer: Any,
                 loop: asyncio.AbstractEventLoop) -> None:
        from hammer import _core

        plan = config.plan
        self.config = config
        self.hammer = config.hammer
        self.loop = loop
        self.agg = aggregator
        self.record = aggregator.record_one
        self.timer = timer
        self.open_loop = plan.open_loop
        self.timeout_ns = plan.timeout_ns
        self.limit = config.connections
        self.sync = not config.is_async
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        if self.sync:
            self.pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=config.sync_threads, thread_name_prefix="hammer-hit")
        self.hit_yield = _core.HIT_YIELD
        self.hits = _core.HitLoop(timer, aggregator,
                                  self._hit_on_pool if self.sync else self.hammer.hit,
                                  open_loop=plan.open_loop, limit=self.limit,
                                  budget=plan.requests, timeout_ns=plan.timeout_ns,
                                  quantum_ns=config.quantum_ns)
        self.error_samples: list[dict[str, Any]] = []
        # run state
        self.load_end_ns = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.stopped: str | None = None
        self.workers: set[asyncio.Task[None]] = set()
        # parked workers, each with its wake-up; a hit started under one and waiting
        self.idle: list[tuple[asyncio.Task[None], asyncio.Future[None]]] = []
        self.handoff: dict[asyncio.Task[None], tuple[Any, ...]] = {}
        self.timed_out: set[int] = set()
        self.cancels_sent: set[int] = set()    # slots whose worker we cancelled
        # hits waiting, in start order (so in deadline order):
        # slot -> (deadline, worker, intended time)
        self.running: dict[int, tuple[int, asyncio.Task[None], int]] = {}
        self.finished: asyncio.Future[None] = loop.create_future()
        self.sweep_handle: asyncio.TimerHandle | None = None
        self.sweep_interval_s = min(max(plan.timeout_ns / 1e9 / 100, MIN_SWEEP_INTERVAL_S),
                                    MAX_SWEEP_INTERVAL_S)

    @property
    def scheduled(self) -> int:
        return int(self.hits.scheduled)

    @property
    def unsent(self) -> int:
        return int(self.hits.unsent)

    # ------------------------------------------------------------------ schedule

    def start(self, start_ns: int) -> None:
        self.agg.start_ns = start_ns
        if self.open_loop:
            self.hits.attach(self.idle, self.loop, _enter_task, _leave_task,
                             on_step=self._on_step, on_busy=self._no_idle,
                             on_end=self.end_load_phase)
            self.loop.add_reader(self.timer.fileno(), self.hits.wake)
        else:
            self.loop.add_reader(self.timer.fileno(), self._on_timer)
        self.hits.start(start_ns, self.config.plan.duration_ns)
        self.sweep_handle = self.loop.call_later(self.sweep_interval_s, self._sweep)

    def _on_timer(self) -> None:
        """Closed loop: the first hits, and the end. (Open loop: HitLoop.wake().)"""
        self.timer.clear()
        if not self.hits.scheduling:
            return
        now = time.monotonic_ns()
        if self.hits.over(now):
            self.end_load_phase(now)
        elif not self.workers:
            for _ in range(self.limit):   # the first hits: one worker per slot
                self._spawn(parked=False)
            self.hits.arm_end()

    def _on_step(self, task: asyncio.Task[None], wake: asyncio.Future[None],
                 step: tuple[Any, ...]) -> None:
        """Open loop, from HitLoop.wake(): a first step that did not end in None or an int.
        A hit that waits goes to the parked worker it ran under."""
        if step[0] == "wait":
            self.idle.pop()
            self.handoff[task] = step
            if not wake.done():   # else the hit cancelled its Task: it learns that next
                wake.set_result(None)
        else:
            self._ended_at_once(step)

    def _no_idle(self) -> bool:
        """Open loop, from HitLoop.wake(): due slots and no parked worker. False: the due
        slots wait for a new worker to be parked on its wake-up (its first step, run
        before the loop polls again; a Task made current before its first step could not
        take a cancellation into its hit)."""
        hits = self.hits
        if len(self.workers) < self.limit:
            self._spawn(parked=True)
            self.timer.arm_at(time.monotonic_ns())
            return False
        # every worker is in a hit, so every in-flight slot is taken: run() starts nothing;
        # it arms the timer for a slot not yet due, or marks the due one as waiting for a
        # worker (late)
        if hits.inflight >= self.limit:
            hits.run()
        else:   # a worker between states: look again one quantum on
            self.timer.arm_at(time.monotonic_ns() + self.config.quantum_ns)
        if hits.starved:
            hits.arm_end()   # the end comes even if none frees up
        return True

    def _spawn(self, parked: bool) -> None:
        """A worker: parked (idle until given a hit) or, closed loop, running at once."""
        wake = self.loop.create_future() if parked else None
        task = self.loop.create_task(self._work(wake))
        self.workers.add(task)
        task.add_done_callback(self.workers.discard)
        if wake is not None:
            self.idle.append((task, wake))   # taken from the next timer wake on

    def end_load_phase(self, now: int) -> None:
        """Stop scheduling: slots already due but never started are unsent."""
        if not self.hits.scheduling:
            return
        self.load_end_ns = min(now, self.hits.end_ns)
        self.hits.end(now)
        self._check_finished()

    def _check_finished(self) -> None:
        if not self.hits.scheduling and self.hits.inflight == 0 and not self.finished.done():
            self.finished.set_result(None)

    def _after_run(self) -> None:
        """Nothing more to start now: end the load phase if it is over."""
        if self.hits.scheduling:
            now = time.monotonic_ns()
            if self.hits.over(now):
                self.end_load_phase(now)

    # ------------------------------------------------------------------ workers

    async def _work(self, wake: asyncio.Future[None] | None) -> None:
        hits, hit_yield, me = self.hits, self.hit_yield, asyncio.current_task()
        assert me is not None
        while True:
            if wake is not None:
                try:
                    await wake
                except asyncio.CancelledError:
                    taken = self.handoff.pop(me, None)
                    if taken is None:
                        return    # closed at the end of the run
                    # cancelled between its hit's first step and taking the hit over
                    _, slot, intended, start, late, coro, awaited, ctx = taken
                    await self._finish(slot, intended, start, late, coro, awaited, ctx,
                                       throw=asyncio.CancelledError())
                wake = None
            taken = self.handoff.pop(me, None)
            step = taken or hits.run()
            if step is None:
                self._after_run()
                if not hits.scheduling or not self.open_loop:
                    self._check_finished()
                    return
                wake = self.loop.create_future()
                self.idle.append((me, wake))
            elif step is hit_yield:
                await asyncio.sleep(0)
            elif step[0] == "wait":
                if taken is None and self.open_loop:
                    hits.arm_next()   # what else falls due is started from the timer
                await self._finish(*step[1:])
            else:
                self._ended_at_once(step)

    def _ended_at_once(self, step: tuple[Any, ...]) -> None:
        """A first step that returned something else than None or an int, or raised."""
        kind, slot, intended, start, done, late, value = step
        try:
            if kind == "result":
                self._result(slot, intended, start, done, late, value)
            elif isinstance(value, asyncio.CancelledError):
                self._cancelled(slot, intended, start, late)
            elif isinstance(value, StopRun):
                self._stop_run(slot, intended, start, late, value, done)
            else:
                self._exception(slot, intended, start, late, value, done)
        finally:
            self._hit_done()

    async def _finish(self, slot: int, intended: int, start: int, late: bool, coro: Any,
                      awaited: Any, ctx: Any, throw: BaseException | None = None) -> None:
        """Drive a hit that waits to its end, in this worker, and record it."""
        task = asyncio.current_task()
        assert task is not None
        self.running[slot] = (start + self.timeout_ns, task, intended)
        try:
            result = await _resume(coro, awaited, ctx, throw)
        except asyncio.CancelledError:
            self._cancelled(slot, intended, start, late)
        except StopRun as exc:
            self._stop_run(slot, intended, start, late, exc)
        except Exception as exc:
            self._exception(slot, intended, start, late, exc)
        else:
            if slot in self.timed_out:  # the hammer swallowed the cancellation
                self._cancelled(slot, intended, start, late)
            elif self.sync:
                self._sync_result(slot, intended, late, result)
            else:
                self._result(slot, intended, start, time.monotonic_ns(), late, result)
        finally:
            del self.running[slot]
            if slot in self.cancels_sent:
                self.cancels_sent.discard(slot)
                uncancel = getattr(task, "uncancel", None)   # Python 3.11+
                if uncancel is not None:
                    uncancel()     # this worker goes on with other hits
            self._hit_done()

    def _hit_done(self) -> None:
        self.hits.hit_done()
        self._check_finished()

    # ------------------------------------------------------------------ plain def hit

    async def _hit_on_pool(self, slot: int) -> tuple[int, int, Any, BaseException | None]:
        return await self.loop.run_in_executor(self.pool, self._call_sync, slot)

    def _call_sync(self, slot: int) -> tuple[int, int, Any, BaseException | None]:
        start = time.monotonic_ns()
        try:
            result = self.hammer.hit(slot)
        except Exception as exc:
            return start, time.monotonic_ns(), None, exc
        return start, time.monotonic_ns(), result, None

    def _sync_result(self, slot: int, queued: int, late: bool,
                     outcome: tuple[int, int, Any, BaseException | None]) -> None:
        start, done, result, exc = outcome
        # open loop: from the intended time; closed loop: from the call on its thread
        intended = queued if self.open_loop else start
        if isinstance(exc, StopRun):
            self._stop_run(slot, intended, start, late, exc, done)
        elif exc is not None:
            self._exception(slot, intended, start, late, exc, done)
        else:
            self._result(slot, intended, start, done, late, result)

    # ------------------------------------------------------------------ outcomes

    def _result(self, slot: int, intended: int, start: int, done: int, late: bool,
                result: Any) -> None:
        if result is None:
            self.record(intended, start, done, 0, 0, late, True, 0)
        elif type(result) is int:
            self.record(intended, start, done, result, 0, late, None, 0)
        elif isinstance(result, Outcome):
            self.bytes_in += result.bytes_in
            self.bytes_out += result.bytes_out
            if result.error:
                self.record(intended, start, done, 0, self._code(result.error), late, None, 0)
            else:
                ok = result.ok if (result.ok is not None or result.status) else True
                self.record(intended, start, done, result.status, 0, late, ok, 0)
        else:
            exc = TypeError(f"hit() returned {type(result).__name__}: return None, an int "
                            "status or a hammer.Outcome")
            self._exception(slot, intended, start, late, exc, done)

    def _code(self, name: str) -> int:
        return int(self.agg.register_error(name))   # the same code for the same name

    def _exception(self, slot: int, intended: int, start: int, late: bool,
                   exc: BaseException, done: int | None = None) -> None:
        done = done if done is not None else time.monotonic_ns()
        name = type(exc).__name__
        self.record(intended, start, done, 0, self._code(name), late, None, 0)
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append({
                "slot": slot, "error": name,
                "traceback": "".join(traceback.format_exception(exc)).rstrip()})

    def _cancelled(self, slot: int, intended: int, start: int, late: bool) -> None:
        reason = "timeout" if slot in self.timed_out else "cancelled"
        self.timed_out.discard(slot)
        self.record(intended, start, time.monotonic_ns(), 0, self._code(reason), late,
                    None, 0)

    def _stop_run(self, slot: int, intended: int, start: int, late: bool, exc: StopRun,
                  done: int | None = None) -> None:
        self.record(intended, start, done if done is not None else time.monotonic_ns(), 0,
                    self._code("StopRun"), late, None, 0)
        if self.stopped is None:
            self.stopped = exc.reason or "StopRun raised"
        self.end_load_phase(time.monotonic_ns())

    # ------------------------------------------------------------------ timeouts, stop

    def _sweep(self) -> None:
        now = time.monotonic_ns()
        expired = []
        for slot, (deadline, task, _) in self.running.items():
            if deadline > now:
                break
            if slot not in self.timed_out:
                expired.append((slot, task))
        for slot, task in expired:
            self.timed_out.add(slot)
            self._cancel(slot, task)
        if self.open_loop and self.hits.starved and self.hits.scheduling:
            self.hits.expire(now)   # waiting slots past their deadline become unsent
        if not self.finished.done():
            self.sweep_handle = self.loop.call_later(self.sweep_interval_s, self._sweep)

    def cancel_all(self) -> None:
        for slot, (_, task, _) in list(self.running.items()):
            self._cancel(slot, task)

    def _cancel(self, slot: int, task: asyncio.Task[None]) -> None:
        if slot not in self.cancels_sent:
            self.cancels_sent.add(slot)
            task.cancel()     # lands in the hit: the worker is waiting in it

    def close(self) -> None:
        if self.sweep_handle is not None:
            self.sweep_handle.cancel()
        for task in list(self.workers):
            task.cancel()     # idle workers (every hit has ended)
        self.loop.remove_reader(self.timer.fileno())
        self.timer.close()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


@types.coroutine
def _resume(coro: Any, awaited: Any, ctx: Any,
            first: BaseException | None = None) -> Generator[Any, Any, Any]:
    """Await the rest of a hit whose first step ran in HitLoop (and waits on `awaited`),
    in the worker's Task, each step in the hit's own context: what a Task would do with
    the coroutine, passed through (futures, cancellation, exceptions). `first`: thrown
    into the hit before anything else (a cancellation that came before the takeover)."""
    send, throw = coro.send, coro.throw
    if first is not None:
        try:
            awaited = ctx.run(throw, first)
        except StopIteration as end:
            return end.value
    while True:
        try:
            value = yield awaited
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                awaited = ctx.run(throw, exc)
            except StopIteration as end:
                return end.value
        else:
            try:
                awaited = ctx.run(send, value)
            except StopIteration as end:
                return end.value


async def run_python_hammer(config: HammerConfig, *, interrupt: Any,
                            progress: Any = None, start_at: float | None = None) -> Any:
    """Set the hammer up, run its load phase and return the Report."""
    from hammer import _core
    from hammer.metrics import Totals, build_report

    loop = asyncio.get_running_loop()
    hammer = config.hammer
    ctx = RunContext(plan=config.plan, concurrency=config.connections, loop=loop,
                     url=config.url)
    try:
        await hammer.setup(ctx)
    except Exception as exc:
        # teardown() still runs, so that what setup() opened before it failed is closed
        with contextlib.suppress(Exception):
            await hammer.teardown()
        raise HammerSetupError(f"setup of {config.name} failed: "
                               f"{type(exc).__name__}: {exc}") from exc
    plan = config.plan
    timer = _core.SlotTimer(**plan.pacer_args(),
                            n_slots=plan.n_slots() if plan.open_loop else 0,
                            shard_index=plan.shard_index, shard_count=plan.shard_count)
    aggregator = _core.Aggregator(1, ok_statuses=getattr(hammer, "ok_statuses", None))
    driver = _Driver(config, aggregator, timer, loop)
    def on_stop() -> None:
        loop.call_soon_threadsafe(_on_stop, driver, interrupt)

    interrupt.listeners.append(on_stop)
    start_ns = start_ns_for(start_at, time.monotonic_ns(), START_DELAY_NS)
    driver.start(start_ns)
    if interrupt.reason:  # a stop came before this load phase began
        _on_stop(driver, interrupt)
    next_progress = time.monotonic() + live.INTERVAL_S
    try:
        while not driver.finished.done():
            timeout_s = 0.25
            if progress is not None:
                timeout_s = max(0.0, min(timeout_s, next_progress - time.monotonic()))
            if interrupt.reason:
                left = interrupt.first_at + STOP_GRACE_S - time.monotonic()
                if left <= 0 or interrupt.level >= 2:
                    driver.cancel_all()
                timeout_s = max(0.0, min(timeout_s, left))
            await asyncio.wait([driver.finished], timeout=timeout_s)
            if progress is not None and time.monotonic() >= next_progress:
                next_progress += live.INTERVAL_S
                progress(live.snapshot(aggregator,
                                       elapsed_s=(time.monotonic_ns() - start_ns) / 1e9,
                                       scheduled=driver.scheduled, unsent=driver.unsent))
    finally:
        interrupt.listeners.remove(on_stop)
        driver.close()
    notes = []
    try:
        await hammer.teardown()
    except Exception as exc:
        notes.append(f"teardown of {config.name} failed: {type(exc).__name__}: {exc}")
    load_end_ns = driver.load_end_ns or time.monotonic_ns()
    totals = Totals(aggregator=aggregator, duration_s=max(load_end_ns - start_ns, 0) / 1e9,
                    scheduled=driver.scheduled, unsent=driver.unsent,
                    bytes_sent=driver.bytes_out, bytes_received=driver.bytes_in,
                    start_ns=start_ns)
    report = build_report(config, totals, interrupted=interrupt.reason)
    if "0" in report.status:  # hits that returned no status
        report.status["none"] = report.status.pop("0")
    report.stopped = driver.stopped
    report.error_samples = driver.error_samples
    if driver.stopped:
        report.notes.append(f"the hammer stopped the run (StopRun): {driver.stopped}")
    report.notes.extend(notes)
    return report


def _on_stop(driver: _Driver, interrupt: Any) -> None:
    driver.end_load_phase(time.monotonic_ns())
    if interrupt.level >= 2:
        driver.cancel_all()
