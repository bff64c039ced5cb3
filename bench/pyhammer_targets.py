"""The Python hammers that bench/pyhammers.py runs (`--hammer pyhammer_targets:Class`).

bench/ is put on PYTHONPATH by the driver. Each class takes an optional `window_file`
option: when given, setup() and teardown() note the process's CPU time (getrusage,
all threads) and the monotonic clock, and teardown() writes them as JSON to that path,
so the driver can tell the load phase's CPU from the start-up and report cost. The
calls are counted by the runner (the report's counts), not here.

    Noop        async hit() that does nothing (returns None: ok)
    AiohttpGet  one GET per hit with aiohttp: one ClientSession made in setup() (a
                TCPConnector with `limit` connections, default: the run's hits in
                flight), closed in teardown(); the body is read, the status returned
"""

from __future__ import annotations

import json
import resource
import time
from typing import Any

from hammer.hammers import Hammer


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class _Windowed(Hammer):
    """Notes CPU time and the clock at setup() and teardown() (option `window_file`)."""

    def __init__(self, window_file: str | None = None, **options: Any) -> None:
        super().__init__(window_file=window_file, **options)
        self.window_file = window_file
        self.window: dict[str, float] = {}

    async def setup(self, ctx: Any) -> None:
        self.window = {"t0": time.monotonic(), "cpu0": _cpu_s()}

    async def teardown(self) -> None:
        self.window.update(t1=time.monotonic(), cpu1=_cpu_s())
        if self.window_file:
            with open(self.window_file, "w") as f:
                json.dump(self.window, f)


class Noop(_Windowed):
    """A hit that does nothing: the cost of the machinery around it."""

    async def hit(self, slot: int) -> None:
        return None


class AiohttpGet(_Windowed):
    """GET `url` once per hit with aiohttp (the body read), returning the status."""

    def __init__(self, url: str = "", limit: int = 0, window_file: str | None = None,
                 **options: Any) -> None:
        super().__init__(window_file=window_file, url=url, limit=limit, **options)
        self.url = url
        self.limit = limit
        self.session: Any = None

    async def setup(self, ctx: Any) -> None:
        import aiohttp

        self.url = self.url or ctx.url
        if not self.url:
            raise ValueError("AiohttpGet needs a url (its config, or the run's URL)")
        connector = aiohttp.TCPConnector(limit=self.limit or ctx.concurrency)
        self.session = aiohttp.ClientSession(connector=connector)
        await super().setup(ctx)

    async def hit(self, slot: int) -> int:
        async with self.session.get(self.url) as resp:
            await resp.read()
            return int(resp.status)

    async def teardown(self) -> None:
        await super().teardown()
        if self.session is not None:
            await self.session.close()
