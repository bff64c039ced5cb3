"""A two-step flow as a Python hammer: log in once, then every hit carries the token.

Against the built-in server (`hammer serve`), whose POST /login issues bearer tokens and
which answers 401 under /auth/ to a request without a token it issued:

    hammer serve --port 8080 &
    hammer run http://127.0.0.1:8080/ --hammer login_flow:LoginFlow -r 200 -d 10s

setup() logs in before anything is scheduled: a failed login refuses the run with a
clear message. A hit answered 401 logs in again once (the token expired) and counts as
the status of the retried request; the login itself is not a hit of the schedule.
"""

from __future__ import annotations

from urllib.parse import urljoin

import aiohttp

from hammer.hammers import Hammer, Outcome, RunContext


class LoginFlow(Hammer):
    def __init__(self, url: str | None = None, path: str = "/auth/items",
                 user: str = "demo", password: str = "demo") -> None:
        super().__init__()
        self.url, self.path = url, path
        self.credentials = {"user": user, "password": password}
        self.session: aiohttp.ClientSession | None = None
        self.token = ""
        self.logins = 0

    async def setup(self, ctx: RunContext) -> None:
        self.url = self.url or ctx.url
        if not self.url:
            raise ValueError("give a URL (the argument, or url in --hammer-config)")
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=ctx.concurrency),
            timeout=aiohttp.ClientTimeout(total=None))
        await self.login()

    async def login(self) -> None:
        assert self.session is not None and self.url is not None
        async with self.session.post(urljoin(self.url, "/login"),
                                     json=self.credentials) as response:
            if response.status != 200:
                raise RuntimeError(f"login failed: HTTP {response.status}")
            self.token = (await response.json())["token"]
            self.logins += 1

    async def get(self) -> tuple[int, int]:
        """GET the path with the token: (status, body bytes)."""
        assert self.session is not None and self.url is not None
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.session.get(urljoin(self.url, self.path), headers=headers) as response:
            return response.status, len(await response.read())

    async def hit(self, slot: int) -> Outcome:
        status, size = await self.get()
        if status == 401:
            await self.login()
            status, size = await self.get()
        return Outcome(status=status, bytes_in=size)

    async def teardown(self) -> None:
        if self.session is not None:
            await self.session.close()
