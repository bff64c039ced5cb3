"""The control plane: configure the engine, start it, drain it, stop it, report.

Runs on uvloop. Nothing here runs per request: the workers run without the GIL and
this loop wakes to move results into the aggregator every DRAIN_INTERVAL_S, or sooner
when the engine's eventfd says a worker finished or a result ring is a quarter full, or
a stop signal came.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from hammer import exitcodes, live
from hammer.config import RunConfig, make_config
from hammer.errors import ConfigError, HammerSetupError
from hammer.hammers.python import HammerConfig
from hammer.metrics import Report, Totals, build_report
from hammer.plan import plan_from_options, plan_option_names, start_ns_for, usable_cpus

# Each wake of this loop costs 150-400 us of CPU on the VMs we measure on (Python with
# cold caches, mostly), taken from a worker when they share a CPU: at 20k req/s, waking
# every 250 ms rather than 50 ms cut this thread's CPU from 7.9-8.4 to 4.5-5.3 ms per
# second of run. Rings hold RING_CAPACITY results and the engine wakes the loop at each
# quarter, so no interval can overfill them; finishing and stop signals wake it too.
DRAIN_INTERVAL_S = 0.25
RING_CAPACITY = 1 << 17          # results per worker ring (4 MiB of 32-byte results)
START_DELAY_NS = 10_000_000      # slot 0 is due this long after the workers are released
STOP_GRACE_S = 1.0               # after a stop signal, in-flight requests get this long
PROGRESS_INTERVAL_S = live.INTERVAL_S   # progress callbacks (the live view) this often
READY_EXTRA_S = 5.0              # beyond the timeout, how long opening connections may take

ProgressFn = Callable[[dict[str, Any]], None]


class Interrupt:
    """Stop requests from signals (or a caller): the first stops scheduling, the second
    (or the grace running out) cancels what is still in flight."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.level = 0
        self.first_at = 0.0
        self.listeners: list[Callable[[], None]] = []   # each running load phase's waker

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.first_at = time.monotonic()
        self.level = min(self.level + 1, 2)
        for listener in list(self.listeners):
            listener()


class _Waker:
    """Lets the control loop sleep until a timeout, the engine's eventfd, or a stop
    request, whichever comes first."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wake_fd: int) -> None:
        self._loop = loop
        self._fd = wake_fd
        self._waiter: asyncio.Future[None] | None = None
        loop.add_reader(wake_fd, self._on_fd)

    def close(self) -> None:
        self._loop.remove_reader(self._fd)

    def _on_fd(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._fd)
        self.wake()

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def sleep(self, timeout_s: float) -> None:
        self._waiter = self._loop.create_future()
        timer = self._loop.call_later(max(timeout_s, 0.0), self.wake)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None


def _engine_for(config: RunConfig, *, ring_capacity: int = RING_CAPACITY) -> Any:
    from hammer import _core

    plan = config.plan
    # SCHED_BATCH when threads share CPUs (the engine applies it to closed loop only)
    schedule = plan.core_schedule(connections=config.connections,
                                  batch_sched=plan.threads > usable_cpus())
    return _core.Engine(schedule=schedule, target=config.core_target(),
                        ring_capacity=ring_capacity, **config.core_kind())


async def run_async(config: RunConfig, *, progress: ProgressFn | None = None,
                    interrupt: Interrupt | None = None,
                    start_at: float | None = None) -> Report:
    """Run one load phase on the running event loop and return its report."""
    from hammer import _core
    from hammer.limits import ensure_nofile

    loopback = config.unix_socket is not None or config.target.is_loopback
    plan = ensure_nofile(config.connections,
                         float(config.rate_rps) if config.rate_rps is not None else None,
                         churn=config.max_requests_per_conn == 1, loopback=loopback)
    for warning in plan.warnings:
        print(f"hammer: warning: {warning}", file=sys.stderr)
    interrupt = interrupt or Interrupt()
    try:
        engine = _engine_for(config)
    except ValueError as exc:  # e.g. a CA file or key OpenSSL cannot load
        raise ConfigError(str(exc)) from None
    engine.start()
    ready_deadline = time.monotonic() + config.timeout_ns / 1e9 + READY_EXTRA_S
    while not engine.all_ready():
        if interrupt.level or time.monotonic() > ready_deadline:
            engine.stop(2)
            break
        await asyncio.sleep(0.001)
    setup_error = config.setup_error(engine.counters())
    if setup_error is not None and not interrupt.level:
        engine.stop(2)
        engine.go_at(_core.monotonic_ns())   # released, they see the stop and end
        await asyncio.get_running_loop().run_in_executor(None, engine.join)
        raise HammerSetupError(setup_error)
    go_ns = _core.monotonic_ns()
    start_ns = start_ns_for(start_at, go_ns, START_DELAY_NS)
    engine.go_at(start_ns)
    stop_level_sent = 0
    next_progress = time.monotonic() + PROGRESS_INTERVAL_S
    waker = _Waker(asyncio.get_running_loop(), engine.wake_fd)
    interrupt.listeners.append(waker.wake)
    try:
        while not engine.finished():
            now = time.monotonic()
            timeout_s = DRAIN_INTERVAL_S
            if progress is not None:
                timeout_s = min(timeout_s, next_progress - now)
            if interrupt.reason and stop_level_sent < 2:
                timeout_s = min(timeout_s, interrupt.first_at + STOP_GRACE_S - now)
            await waker.sleep(timeout_s)
            engine.drain()
            level = interrupt.level
            if interrupt.reason and time.monotonic() - interrupt.first_at >= STOP_GRACE_S:
                level = 2
            if level > stop_level_sent:
                engine.stop(level)
                stop_level_sent = level
            if progress is not None and time.monotonic() >= next_progress:
                next_progress += PROGRESS_INTERVAL_S
                counters = engine.counters()
                progress(live.snapshot(engine.aggregator,
                                       elapsed_s=(_core.monotonic_ns() - start_ns) / 1e9,
                                       scheduled=counters["scheduled"],
                                       unsent=counters["unsent"]))
    finally:
        interrupt.listeners.remove(waker.wake)
        waker.close()
    await asyncio.get_running_loop().run_in_executor(None, engine.join)
    engine.drain()
    load_end_ns = engine.counters()["load_end_ns"] or _core.monotonic_ns()
    duration_s = max(load_end_ns - start_ns, 0) / 1e9
    report = build_report(config, Totals.from_engine(engine, duration_s),
                          interrupted=interrupt.reason)
    if config.tls is not None and config.tls.insecure:
        report.notes.append("TLS certificates were NOT verified (--insecure)")
    report.notes.extend(plan.warnings)
    if batch := engine.batch_sched_workers():
        report.notes.append(f"{config.threads} worker threads share {usable_cpus()} CPU(s): "
                            f"{batch} ran as SCHED_BATCH, so that a wake-up of one does not "
                            "preempt another mid-batch")
    if go_ns > start_ns:
        report.notes.append(f"ready {(go_ns - start_ns) / 1e6:,.1f} ms after the agreed start "
                            "instant: the slots due by then went out late")
    figures, notes = config.engine_figures(engine.counters(), engine.aggregator)
    report.kind_figures.update(figures)
    report.notes.extend(notes)
    if plan.raise_soft_to is not None:
        report.notes.append(f"open-files soft limit raised to {plan.raise_soft_to:,} "
                            f"for {config.connections:,} connections")
    return report


def _install_signals(loop: asyncio.AbstractEventLoop, interrupt: Interrupt) -> list[int]:
    if threading.current_thread() is not threading.main_thread():
        return []
    installed: list[int] = []
    for signum, name in ((signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")):
        loop.add_signal_handler(signum, interrupt.request, name)
        installed.append(signum)
    return installed


async def _run_with_signals(config: RunConfig | HammerConfig, progress: ProgressFn | None,
                            interrupt: Interrupt, start_at: float | None = None) -> Report:
    loop = asyncio.get_running_loop()
    installed = _install_signals(loop, interrupt)
    try:
        if isinstance(config, HammerConfig):
            from hammer.hammers.python import run_python_hammer

            report: Report = await run_python_hammer(config, interrupt=interrupt,
                                                     progress=progress, start_at=start_at)
            return report
        return await run_async(config, progress=progress, interrupt=interrupt,
                               start_at=start_at)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


PLAN_OPTIONS = plan_option_names()      # run() options that make a plan


def configure(url: str | None = None, *, hammer: Any = None,
              hammer_config: Mapping[str, Any] | None = None,
              **options: Any) -> RunConfig | HammerConfig:
    """Options (as make_config takes them) into the config of one run: the core's HTTP
    kind unless `hammer` names another (a Hammer instance or class, `module:Class`, or
    an installed entry point)."""
    from hammer.hammers import is_http, make_hammer
    from hammer.plan import MQTT_OPTIONS, is_mqtt_url
    from hammer.slo import parse_slos

    secrets = tuple(options.pop("secrets", ()))
    slos = parse_slos(options.pop("slo", None))
    if hammer is None and is_mqtt_url(url):
        from hammer.mqtt import mqtt_config_from_options

        assert url is not None
        mqtt = mqtt_config_from_options(url, options)
        return dataclasses.replace(mqtt, slos=slos, secrets=secrets + mqtt.secrets)
    mqtt_only = sorted(k for k in options if k in MQTT_OPTIONS)
    if mqtt_only:
        raise ConfigError(f"--{mqtt_only[0].replace('_', '-')} is for mqtt:// URLs")
    if hammer is None or (isinstance(hammer, str) and is_http(hammer)):
        if hammer_config is not None:
            raise ConfigError("--hammer-config is for Python hammers; the HTTP kind takes "
                              "its options as flags")
        return dataclasses.replace(make_config(url, **options), secrets=secrets, slos=slos)
    from hammer.hammers.python import make_hammer_config

    extra = sorted(k for k in options if k not in PLAN_OPTIONS)
    if extra:
        flag = "--" + extra[0].replace("_", "-")
        raise ConfigError(f"{flag} is for the HTTP kind, not a Python hammer")
    plan = plan_from_options(options)
    if isinstance(hammer, str | type):
        instance = make_hammer(hammer, hammer_config)
    else:
        if hammer_config is not None:
            raise ConfigError("hammer_config is for a hammer given by name or class")
        instance = hammer
    return dataclasses.replace(make_hammer_config(instance, plan, url=url), secrets=secrets,
                               slos=slos)


def run(config: RunConfig | HammerConfig | str | None = None, /, *,
        progress: ProgressFn | None = None, hammer: Any = None,
        hammer_config: Mapping[str, Any] | None = None, cluster: Any = None,
        start_at: float | None = None, **options: Any) -> Any:
    """Run a load test and return its Report. The Python API and the CLI's `hammer run`.

        report = hammer.run("http://127.0.0.1:8080/", rate=1000, duration="5s")
        report = hammer.run(hammer.make_config(url, connections=64, duration=10))
        report = hammer.run(hammer=MyHammer(), rate=1000, duration="5s")

    Options are those of make_config(). `hammer` runs a Python hammer instead of the
    core's HTTP kind. SIGINT/SIGTERM stop the run gracefully and the partial report is
    returned (report.interrupted names the signal). `start_at` (seconds since the epoch)
    starts the load phase at that instant rather than at once.

    `cluster` runs the plan sharded over a Dask cluster, a shard per worker, and returns
    the merged report (hammer.results.SavedReport): a dask.distributed Client, or
    "local:N", "tls://HOST:PORT" (certificates from Dask's config), or a ClusterSpec.
    """
    import uvloop

    if cluster is not None:
        if isinstance(config, RunConfig | HammerConfig):
            raise ConfigError("with cluster=, pass the run's options, not a config: each "
                              "worker makes its shard's config from them")
        if options.get("e2e"):
            raise ConfigError("--e2e subscribes in the publishing process: not with "
                              "--cluster (each shard's subscriber would get every shard's "
                              "messages)")
        from hammer.distributed import run_cluster_report

        url = config if config is not None else options.pop("url", None)
        return run_cluster_report(cluster, url=url, hammer=hammer,
                                  hammer_config=hammer_config, **options)

    if not isinstance(config, RunConfig | HammerConfig):
        url = config if config is not None else options.pop("url", None)
        config = configure(url, hammer=hammer, hammer_config=hammer_config, **options)
    interrupt = Interrupt()
    return uvloop.run(_run_with_signals(config, progress, interrupt, start_at))


def exit_code_for(interrupted: str | None, saturated: bool, slo_failed: bool = False,
                  partial: bool = False) -> int:
    if interrupted == "SIGINT":
        return exitcodes.INTERRUPTED
    if interrupted == "SIGTERM":
        return exitcodes.TERMINATED
    if partial:       # a part of a sharded run was lost
        return exitcodes.FAILED
    if slo_failed:
        return exitcodes.SLO_FAILED
    return exitcodes.SATURATED if saturated else exitcodes.OK


def live_view_wanted(live_flag: bool | None, quiet: bool, *paths: str | None) -> bool:
    """The live view: asked for (--live / --no-live), else on a terminal unless -q or
    an output goes to stdout."""
    if live_flag is not None:
        return live_flag
    return not quiet and "-" not in paths and sys.stderr.isatty()


def run_cli(config: RunConfig | HammerConfig, *, json_path: str | None, quiet: bool,
            csv_path: str | None = None, hlog_path: str | None = None,
            html_path: str | None = None, live_flag: bool | None = None,
            cluster: tuple[Any, dict[str, Any]] | None = None) -> int:
    """`hammer run`: run, print the text report, write JSON and CSV; return the exit
    code. An output that cannot be written is one line on stderr; the others are still
    written."""
    from hammer.hlog import write_hlog
    from hammer.reporters import render_text, write_csv_atomic, write_json_atomic

    def write_html(data: dict[str, Any], path: str) -> None:
        from hammer.html import write_html_atomic

        write_html_atomic(data, path)

    view = None
    if cluster is None and live_view_wanted(live_flag, quiet, json_path, csv_path, hlog_path,
                                            html_path):
        view = live.LiveView(config, sys.stderr)
    try:
        if cluster is not None:
            from hammer.distributed import ClusterError

            spec, options = cluster
            try:
                report = run(cluster=spec, **options)
            except ClusterError as exc:
                print(f"hammer: error: {exc}", file=sys.stderr)
                return exitcodes.FAILED
        else:
            report = run(config, progress=view.draw if view is not None else None)
    except HammerSetupError as exc:
        print(f"hammer: error: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    except OSError as exc:
        print(f"hammer: error: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    finally:
        if view is not None:
            view.clear()
    data = report.to_dict()
    code = exit_code_for(report.interrupted, bool(data["saturated"]),
                         any(not s["passed"] for s in data["slo"]), bool(data.get("partial")))
    if not quiet:
        text_out = (sys.stderr if "-" in (json_path, csv_path, hlog_path, html_path)
                    else sys.stdout)
        text_out.write(render_text(data))
        text_out.flush()
    outputs: list[tuple[str | None, Callable[[], None]]] = [
        (json_path, lambda: write_json_atomic(data, json_path or "-")),
        (csv_path, lambda: write_csv_atomic(data, csv_path or "-")),
        (hlog_path, lambda: write_hlog(data, hlog_path or "-")),
        (html_path, lambda: write_html(data, html_path or "-")),
    ]
    for path, write in outputs:
        if path is None:
            continue
        try:
            write()
        except OSError as exc:
            print(f"hammer: error: {exc}", file=sys.stderr)
            code = exitcodes.FAILED
    return code
