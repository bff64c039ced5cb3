"""A Python hammer with a well-known async HTTP client: one aiohttp GET per hit.

    hammer run http://127.0.0.1:8080/ --hammer aiohttp_get:AiohttpGet -r 500 -d 10s
    hammer run --hammer aiohttp_get:AiohttpGet --hammer-config '{"url": "http://..."}'

(run from this directory, or with it on PYTHONPATH). The core's HTTP kind is far
cheaper per request; a Python hammer is for what a request is beyond one fixed HTTP
exchange. hammer paces the hits and takes every timestamp: hit() only does the work.
"""

from __future__ import annotations

import aiohttp

from hammer.hammers import Hammer, Outcome, RunContext


class AiohttpGet(Hammer):
    def __init__(self, url: str | None = None, **options: object) -> None:
        super().__init__(**options)
        self.url = url
        self.session: aiohttp.ClientSession | None = None

    async def setup(self, ctx: RunContext) -> None:
        self.url = self.url or ctx.url
        if not self.url:
            raise ValueError("give a URL (the argument, or url in --hammer-config)")
        # as many pooled connections as hits may be in flight; no client-side timeout
        # (hammer's --timeout cancels a hit that takes too long)
        connector = aiohttp.TCPConnector(limit=ctx.concurrency)
        self.session = aiohttp.ClientSession(connector=connector,
                                             timeout=aiohttp.ClientTimeout(total=None))

    async def hit(self, slot: int) -> Outcome:
        assert self.session is not None and self.url is not None
        async with self.session.get(self.url) as response:
            body = await response.read()
            return Outcome(status=response.status, bytes_in=len(body))

    async def teardown(self) -> None:
        if self.session is not None:
            await self.session.close()
