"""A hammer that does nothing: what the generator itself costs per hit (pacing, timing,
accounting), with no protocol and no server. `--hammer noop`."""

from __future__ import annotations

from hammer.hammers import Hammer


class NoopHammer(Hammer):
    """Each hit returns at once, ok."""

    async def hit(self, slot: int) -> None:
        return None


__all__ = ["NoopHammer"]
