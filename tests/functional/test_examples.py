"""The Python hammers in examples/, against the built-in server's own counts."""

from __future__ import annotations

from pathlib import Path

import pytest

import hammer
from accounting import check_invariant

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def _examples_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_aiohttp_hammer_counts_match_the_server(target_server) -> None:
    server = target_server(body_size="5")
    report = hammer.run(server.url, hammer="aiohttp_get:AiohttpGet", rate=100, duration="1s")
    check_invariant(report)
    assert report.counts.ok == report.counts.scheduled == 100
    assert report.bytes_received == 500
    stats = server.wait_stats(requests=100)
    assert stats["responses"] == {"200": 100}


def test_login_flow_logs_in_once_then_carries_the_token(target_server) -> None:
    server = target_server()
    report = hammer.run(server.url, hammer="login_flow:LoginFlow", rate=100, duration="1s",
                        connections=8)
    check_invariant(report)
    assert report.counts.ok == 100
    stats = server.wait_stats(requests=101)
    assert stats["logins"] == 1
    assert stats["unauthorized"] == 0
    assert stats["responses"] == {"200": 101}


def test_login_flow_logs_in_again_after_a_401(target_server) -> None:
    from login_flow import LoginFlow

    server = target_server()

    class Expiring(LoginFlow):
        async def hit(self, slot: int) -> hammer.hammers.Outcome:
            if slot == 5:
                self.token = "expired"
            return await super().hit(slot)

    flow = Expiring(url=server.url)
    report = hammer.run(hammer=flow, rate=50, requests=10, connections=1)
    check_invariant(report)
    assert report.counts.ok == 10
    stats = server.wait_stats(requests=13)  # 2 logins, 10 hits, 1 refused
    assert stats["logins"] == 2
    assert stats["unauthorized"] == 1
    assert stats["responses"] == {"200": 12, "401": 1}


def test_a_failed_login_refuses_the_run(target_server) -> None:
    from login_flow import LoginFlow

    from hammer.errors import HammerSetupError

    server = target_server()

    class BadLogin(LoginFlow):
        async def login(self) -> None:
            # /auth/ without a token the server issued is answered 401
            assert self.session is not None
            async with self.session.post(server.url + "auth/login") as r:
                if r.status != 200:
                    raise RuntimeError(f"login failed: HTTP {r.status}")

    with pytest.raises(HammerSetupError, match="login failed: HTTP 401"):
        hammer.run(hammer=BadLogin(url=server.url), rate=10, requests=1)
    stats = server.wait_stats(requests=1)
    assert stats["responses"] == {"401": 1}   # the refused login, and nothing scheduled
