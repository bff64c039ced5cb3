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
    """One load phase of a Python hammer on the running loop."""

    def __init__(self, config: HammerConfig, aggregator: Any, timer: Any,
                 loop: asyncio.AbstractEventLoop) -> None:
        plan = config.plan
        self.config = config
        self.hammer = config.hammer
        self.loop = loop
        self.agg = aggregator
        self.record = aggregator.record_one
        self.timer = timer
        self.intended = timer.intended_ns
        # a shard's local slot j is the schedule's first + j * stride
        self.slot_first, self.slot_stride = timer.first_slot, timer.slot_stride
        self.open_loop = plan.open_loop
        self.n_slots = timer.n_slots
        self.budget = plan.requests
        self.timeout_ns = plan.timeout_ns
        self.quantum_ns = config.quantum_ns
        self.limit = config.connections
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        if not config.is_async:
            self.pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=config.sync_threads, thread_name_prefix="hammer-hit")
        self.hit = self._hit_async if config.is_async else self._hit_sync
        self.error_samples: list[dict[str, Any]] = []
        # run state
        self.start_ns = 0
        self.end_ns = 0
        self.next_slot = 0
        self.scheduled = 0
        self.unsent = 0
        self.inflight = 0
        self.starved = False
        self.scheduling = False
        self.load_end_ns = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.stopped: str | None = None
        self.timed_out: set[int] = set()
        # hits in flight, in start order (so in deadline order):
        # slot -> (deadline, task, intended time)
        self.running: dict[int, tuple[int, asyncio.Task[None], int]] = {}
        self.finished: asyncio.Future[None] = loop.create_future()
        self.sweep_handle: asyncio.TimerHandle | None = None
        self.sweep_interval_s = min(max(plan.timeout_ns / 1e9 / 100, MIN_SWEEP_INTERVAL_S),
                                    MAX_SWEEP_INTERVAL_S)

    # ------------------------------------------------------------------ schedule

    def start(self, start_ns: int) -> None:
        plan = self.config.plan
        self.start_ns = start_ns
        self.end_ns = (start_ns + plan.duration_ns if plan.duration_ns is not None
                       else (1 << 63) - 1)
        self.agg.start_ns = start_ns
        self.timer.start(start_ns)
        self.scheduling = True
        self.loop.add_reader(self.timer.fileno(), self._on_timer)
        self.sweep_handle = self.loop.call_later(self.sweep_interval_s, self._sweep)
        if self.open_loop:
            self.timer.arm_at(min(self.intended(0), self.end_ns) if self.n_slots
                              else self.end_ns)
        else:
            self.timer.arm_at(start_ns)   # closed loop: the first hits start at start_ns

    def _on_timer(self) -> None:
        self.timer.clear()
        now = time.monotonic_ns()
        if not self.scheduling:
            return
        if now >= self.end_ns:
            if self.open_loop:
                self._dispatch(now)   # due before the end: still sent, if a slot is free
            self.end_load_phase(now)
            return
        if self.open_loop:
            self._dispatch(now)
        elif self.inflight == 0 and self.next_slot == 0:
            for _ in range(self.limit):
                if not self._closed_next():
                    break
            self.timer.arm_at(self.end_ns)

    def _dispatch(self, now: int) -> None:
        """Open loop: start every due slot; with none free, wait (late)."""
        intended = self.intended
        while self.scheduling and self.next_slot < self.n_slots:
            t = intended(self.next_slot)
            if t > now:
                # a timer wake at most once per quantum: the slots due by then go together
                wake = t if t - now >= self.quantum_ns else now + self.quantum_ns
                self.timer.arm_at(wake if wake < self.end_ns else self.end_ns)
                self.starved = False
                return
            if now - t >= self.timeout_ns:
                # its deadline passed while it waited for a free slot: never sent
                self.next_slot += 1
                self.scheduled += 1
                self.unsent += 1
                continue
            if self.inflight >= self.limit:
                self.starved = True
                return
            late = self.starved
            slot = self.next_slot
            self.next_slot += 1
            self.scheduled += 1
            self.inflight += 1
            self._start_hit(slot, t, late, now)
        self.starved = False
        if self.scheduling and self.next_slot >= self.n_slots:
            if self.config.plan.duration_ns is None:
                self.end_load_phase(now)
            else:
                self.timer.arm_at(self.end_ns)

    def _closed_next(self) -> bool:
        """Closed loop: start the next hit if the run still wants one."""
        if not self.scheduling:
            return False
        if self.budget is not None and self.scheduled >= self.budget:
            if self.config.plan.duration_ns is None and self.inflight == 0:
                self.end_load_phase(time.monotonic_ns())
            return False
        slot = self.next_slot
        self.next_slot += 1
        self.scheduled += 1
        self.inflight += 1
        self._start_hit(slot, 0, False, time.monotonic_ns())
        return True

    def end_load_phase(self, now: int) -> None:
        """Stop scheduling: slots already due but never started are unsent."""
        if not self.scheduling:
            return
        self.scheduling = False
        self.load_end_ns = min(now, self.end_ns)
        self.timer.disarm()
        if self.open_loop:
            while self.next_slot < self.n_slots and self.intended(self.next_slot) <= now:
                self.next_slot += 1
                self.scheduled += 1
                self.unsent += 1
        self._check_finished()

    def _check_finished(self) -> None:
        if not self.scheduling and self.inflight == 0 and not self.finished.done():
            self.finished.set_result(None)

    # ------------------------------------------------------------------ hits

    def _start_hit(self, local_slot: int, intended_ns: int, late: bool, now: int) -> None:
        slot = self.slot_first + local_slot * self.slot_stride  # the schedule's number
        task = self.loop.create_task(self.hit(slot, intended_ns, late))
        self.running[slot] = (now + self.timeout_ns, task, intended_ns or now)

    async def _hit_async(self, slot: int, intended_ns: int, late: bool) -> None:
        start = time.monotonic_ns()
        try:
            result = await self.hammer.hit(slot)
        except asyncio.CancelledError:
            self._cancelled(slot, intended_ns or start, start, late)
        except StopRun as exc:
            self._stop_run(slot, intended_ns or start, start, late, exc)
        except Exception as exc:
            self._exception(slot, intended_ns or start, start, late, exc)
        else:
            if slot in self.timed_out:  # the hammer swallowed the cancellation
                self._cancelled(slot, intended_ns or start, start, late)
            else:
                self._result(slot, intended_ns or start, start, time.monotonic_ns(), late, result)
        finally:
            self._hit_done(slot)

    async def _hit_sync(self, slot: int, intended_ns: int, late: bool) -> None:
        queued = time.monotonic_ns()
        try:
            start, done, result, exc = await self.loop.run_in_executor(
                self.pool, self._call_sync, slot)
        except asyncio.CancelledError:
            self._cancelled(slot, intended_ns or queued, queued, late)
        else:
            intended = intended_ns or start
            if isinstance(exc, StopRun):
                self._stop_run(slot, intended, start, late, exc, done)
            elif exc is not None:
                self._exception(slot, intended, start, late, exc, done)
            else:
                self._result(slot, intended, start, done, late, result)
        finally:
            self._hit_done(slot)

    def _call_sync(self, slot: int) -> tuple[int, int, Any, BaseException | None]:
        start = time.monotonic_ns()
        try:
            result = self.hammer.hit(slot)
        except Exception as exc:
            return start, time.monotonic_ns(), None, exc
        return start, time.monotonic_ns(), result, None

    def _hit_done(self, slot: int) -> None:
        del self.running[slot]
        self.inflight -= 1
        if self.scheduling:
            if self.open_loop:
                if self.starved:
                    self._dispatch(time.monotonic_ns())
            else:
                self._closed_next()
        self._check_finished()

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
        if self.open_loop and self.starved and self.scheduling:
            self._dispatch(now)   # waiting slots past their deadline become unsent
        if not self.finished.done():
            self.sweep_handle = self.loop.call_later(self.sweep_interval_s, self._sweep)

    def cancel_all(self) -> None:
        for slot, (_, task, _) in list(self.running.items()):
            self._cancel(slot, task)

    def _cancel(self, slot: int, task: asyncio.Task[None]) -> None:
        task.cancel()
        # a task cancelled before its first step never runs its body: account for it here
        task.add_done_callback(lambda _: self._never_started(slot))

    def _never_started(self, slot: int) -> None:
        entry = self.running.get(slot)
        if entry is None:
            return  # the hit ran and accounted for itself
        intended = entry[2]
        reason = "timeout" if slot in self.timed_out else "cancelled"
        self.timed_out.discard(slot)
        self.record(intended, 0, time.monotonic_ns(), 0, self._code(reason), False, None, 0)
        self._hit_done(slot)

    def close(self) -> None:
        if self.sweep_handle is not None:
            self.sweep_handle.cancel()
        self.loop.remove_reader(self.timer.fileno())
        self.timer.close()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


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
