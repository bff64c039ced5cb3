"""Shared fixtures: the built-in target server and nginx, both on 127.0.0.1.

``hammer`` itself is imported from wherever Python finds it (the installed copy, with
its compiled core, under ``make test``); ``src`` is deliberately not put on sys.path.
Only this directory is, so tests can ``import servers``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from servers import (  # noqa: E402
    NginxServer,
    PkiFiles,
    TargetServerProcess,
    find_nginx,
    free_port,
    start_nginx,
    start_target_server,
)

# The suite is deterministic: hypothesis draws the same examples on every run (seeded
# from each test's name), so a commit that passes once passes in CI. `make fuzz` runs
# the same properties with fresh random seeds, and the atheris fuzzer, to search further.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HAMMER_HYPOTHESIS_PROFILE", "deterministic"))


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _required(binary: str | None, name: str) -> str:
    """A server binary the tests need: skip without it, but fail under CI=true (where
    .ci/run installs it)."""
    if binary is None:
        if _in_ci():
            pytest.fail(f"{name} is not installed, and CI=true requires it")
        pytest.skip(f"{name} is not installed")
    return binary


_SOCKET_CHECKED_DIRS = ("functional", "cli")


@pytest.fixture(autouse=True)
def every_core_socket_closed(request: pytest.FixtureRequest) -> Iterator[None]:
    """Functional and CLI tests: every socket the core opened during the test is closed
    by its end (uvloop's opened == closed check in tearDown)."""
    if Path(str(request.node.fspath)).parent.name not in _SOCKET_CHECKED_DIRS:
        yield
        return
    from hammer import _core

    opened_before, closed_before = _core.socket_counts()
    yield
    opened, closed = _core.socket_counts()
    assert opened - opened_before == closed - closed_before, (
        f"the core opened {opened - opened_before} sockets and closed "
        f"{closed - closed_before} during this test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that use the nginx fixture get the `nginx` marker (so `-m "not nginx"` works).
    for item in items:
        if "nginx" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.nginx)


def _stop_all(started: list[Any], what: str) -> None:
    """Stop every server a fixture started; fail the test if one exited badly on its own."""
    failures = []
    for server in started:
        already_stopped = server.returncode is not None
        rc = server.stop()
        if not already_stopped and rc != 0:
            failures.append(f"pid {server.pid} exited {rc}; stderr: {server.stderr_text()!r}")
    if failures:
        pytest.fail(f"{what} did not stop cleanly: " + "; ".join(failures))


@pytest.fixture
def target_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., TargetServerProcess]]:
    """Factory: ``target_server(status=200, body_size="0", delay="0ms", extra_args=())``
    starts ``python -m hammer serve --port 0 ...`` and returns a TargetServerProcess
    (``.url``, ``.host``, ``.port``, ``.stats()``, ``.arrivals()``, ``.reset()``,
    ``.stall(seconds)``, ``.wait_stats(**expected)``, ``.stderr_text()``, ``.stop()``).
    Every server started is stopped at teardown (SIGTERM, SIGKILL after 5 s), and must
    then exit with status 0.
    """
    started: list[TargetServerProcess] = []
    log_dir = tmp_path_factory.mktemp("target-server")

    def factory(
        status: int = 200,
        body_size: str = "0",
        delay: str = "0ms",
        extra_args: tuple[str, ...] = (),
    ) -> TargetServerProcess:
        server = start_target_server(
            log_dir, status=status, body_size=body_size, delay=delay, extra_args=extra_args
        )
        started.append(server)
        return server

    yield factory

    _stop_all(started, "target server")


@pytest.fixture
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., NginxServer]]:
    """Factory: ``nginx(workers=1, extra_locations="")`` starts nginx on a free
    127.0.0.1 port with a private config and returns an NginxServer (``.url``,
    ``.port``, ``.requests_served(wait_for=None, timeout=5.0)``, ``.access_log_lines()``,
    ``.access_log_entries()``, ``.connections_in_log()``, ``.connections_accepted()``,
    ``.stub_status()``, ``.stop()``). Skips when nginx is missing, fails under CI=true.
    """
    nginx_bin = _required(find_nginx(), "nginx")
    started: list[NginxServer] = []

    def factory(workers: int = 1, extra_locations: str = "", tls: PkiFiles | None = None,
                client_auth: bool = False) -> NginxServer:
        prefix = tmp_path_factory.mktemp("nginx")
        server = start_nginx(nginx_bin, prefix, workers=workers, extra_locations=extra_locations,
                             tls=tls, client_auth=client_auth)
        started.append(server)
        return server

    yield factory

    for server in started:
        server.stop()


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Factory: ``mosquitto(anonymous=True, max_inflight=0, tls=None)`` starts a broker on
    a free 127.0.0.1 port (tests/mqttpeer.Broker: ``.url``, ``.port``, ``.stop()``; with
    tls=(cert, key) also a TLS listener on ``.tls_port``). Skips when mosquitto is
    missing, fails under CI=true."""
    from mqttpeer import Broker, find_mosquitto

    binary = _required(find_mosquitto(), "mosquitto")
    started: list[Broker] = []

    def factory(anonymous: bool = True, max_inflight: int = 0,
                tls: tuple[str, str] | None = None) -> Broker:
        broker = Broker(binary, tmp_path_factory.mktemp("mosquitto"), anonymous=anonymous,
                        max_inflight=max_inflight, tls=tls)
        started.append(broker)
        return broker

    yield factory
    for broker in started:
        broker.stop()


@pytest.fixture
def unused_port() -> int:
    """A 127.0.0.1 port with nothing listening (connections to it are refused)."""
    return free_port()


import threading  # noqa: E402

from faultserver import FaultServer, start_fault_server  # noqa: E402


@pytest.fixture
def fault_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., FaultServer]]:
    """Factory: ``fault_server(mode, port=0, extra_args=())`` starts
    ``tests/faultserver.py --mode MODE`` (see its docstring for the modes) and returns a
    FaultServer (``.url``, ``.port``, ``.stats()``, ``.wait_stats(**expected)``,
    ``.kill()``, ``.stop()``, ``.final_stats()``, ``.stderr_text()``). Safe to call from
    another thread. Every server still running at teardown is stopped with SIGTERM and
    must exit 0 (servers the test killed are left alone).
    """
    started: list[FaultServer] = []
    log_dir = tmp_path_factory.mktemp("fault-server")
    lock = threading.Lock()

    def factory(mode: str, port: int = 0, extra_args: tuple[str, ...] = ()) -> FaultServer:
        with lock:  # log file names are numbered: one start at a time
            server = start_fault_server(log_dir, mode, port=port, extra_args=extra_args)
            started.append(server)
        return server

    yield factory

    _stop_all(started, "fault server")


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    """CAs and certificates made for the tests (see servers.PkiFiles)."""
    from servers import make_test_pki

    return make_test_pki(tmp_path_factory.mktemp("pki"))
