"""Hammers: what a request is. The plan says when; a hammer says what.

The core's HTTP kind is built in (`http`, or go-hammer's name `HTTPHammer`). Anything
else is a Python class with an `async def hit(self, slot)` (or a plain `def hit`, run on
a thread pool), driven by the same pacer and measured by the runner:

    class Ping(hammer.Hammer):
        async def hit(self, slot):
            await do_something()        # return None (ok), a status, or an Outcome

Name one on the command line as `module:Class`, or install it under the entry-point
group `hammer.hammers` and name it by its entry-point name.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from hammer.errors import ConfigError

ENTRY_POINT_GROUP = "hammer.hammers"
BUILTIN_HTTP = ("http", "HTTPHammer")


class StopRun(Exception):
    """Raise from hit() to end the run: nothing more is scheduled, hits in flight
    finish (within their timeout) and the report, partial, says why."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one hit did, when a bare status is not enough. `ok` None: decided by the
    status (no status: ok). `error` names an error class (the hit then counts as an
    error, not a completion). Bytes add up in the report."""

    ok: bool | None = None
    status: int = 0
    error: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass(frozen=True)
class RunContext:
    """What setup() is told about the run."""

    plan: Any                     # hammer.plan.Plan
    concurrency: int              # hits in flight at most
    loop: asyncio.AbstractEventLoop
    url: str | None = None        # the URL given to `hammer run`, if any


class Hammer:
    """Base class of user-written hammers. Built from its config mapping as keyword
    arguments (`Class(**config)`); the base keeps them as `self.options`."""

    #: int results counted ok (None: 200-399, as HTTP)
    ok_statuses: ClassVar[frozenset[int] | None] = None

    def __init__(self, **options: Any) -> None:
        self.options = options

    async def setup(self, ctx: RunContext) -> None:
        """Before anything is scheduled; raising refuses the run."""

    async def hit(self, slot: int) -> Outcome | int | None:
        """One request. The runner takes every timestamp; never report latency here."""
        raise NotImplementedError

    async def teardown(self) -> None:
        """After the last hit."""


def is_http(name: str) -> bool:
    return name in BUILTIN_HTTP


def load_hammer_class(spec: str) -> type:
    """`module:Class`, or the name of an installed entry point of group hammer.hammers."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"cannot import hammer module {module_name!r}: {exc}") from None
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise ConfigError(f"module {module_name!r} has no {attr!r}")
    else:
        from importlib.metadata import entry_points  # slow to import: only when asked

        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec]
        if not found:
            installed = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
            known = ", ".join([*BUILTIN_HTTP, *installed])
            raise ConfigError(f"unknown hammer {spec!r} (use module:Class, or one of: {known})")
        try:
            obj = found[0].load()
        except Exception as exc:  # an installed plugin that fails to import
            raise ConfigError(f"cannot load hammer {spec!r}: {exc}") from None
    if not isinstance(obj, type) or not callable(getattr(obj, "hit", None)):
        raise ConfigError(f"{spec!r} is not a hammer class (a class with a hit method)")
    return obj


def make_hammer(spec: str | type, config: Mapping[str, Any] | None) -> Any:
    """An instance of the hammer class, built from its config mapping."""
    cls = load_hammer_class(spec) if isinstance(spec, str) else spec
    try:
        return cls(**dict(config or {}))
    except TypeError as exc:
        raise ConfigError(f"hammer {cls.__module__}:{cls.__qualname__}: bad config: {exc}") \
            from None


def hit_is_async(hammer: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(hammer, "hit", None))


__all__ = ["ENTRY_POINT_GROUP", "Hammer", "Outcome", "RunContext", "StopRun",
           "load_hammer_class", "make_hammer"]
