"""Bad input to `hammer run` and `hammer serve`: exit code 2, exactly one line on stderr
starting ``hammer: error:`` that names the problem, no traceback, and nothing sent.

Most cases go through click's CliRunner with the engine (``hammer.runner.run_cli``) and
the server loop (``hammer.server.serve_forever``) replaced by recorders, so a case that
wrongly passes validation is reported instead of sending load or serving forever. A few
cases run ``python -m hammer`` for real, to prove the process exit code and stderr end
to end; those point at a listening socket on 127.0.0.1 and check nothing connected.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from hammer import exitcodes
from hammer.cli import main
from servers import LOCALHOST, hammer_command

# Never contacted: run_cli is replaced in every CliRunner test (and port 9 is discard).
URL = "http://127.0.0.1:9/"
SUBPROCESS_TIMEOUT = 30


# --------------------------------------------------------------------------- helpers


class Recorder:
    """Stands in for run_cli / serve_forever: records the call, returns 0."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        self.calls.append((args, kwargs))
        return exitcodes.OK


@pytest.fixture(autouse=True)
def engine(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Replace the load engine: nothing a CliRunner test does can send a request."""
    recorder = Recorder()
    monkeypatch.setattr("hammer.runner.run_cli", recorder)
    return recorder


@pytest.fixture(autouse=True)
def server_loop(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Replace `hammer serve`'s loop: a wrongly accepted option cannot hang the test."""
    recorder = Recorder()
    monkeypatch.setattr("hammer.server.serve_forever", recorder)
    return recorder


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="hammer")


def assert_one_error_line(
    code: int | None, stdout: str, stderr: str, *fragments: str
) -> str:
    """Exit 2, nothing on stdout, one `hammer: error:` line naming every fragment."""
    assert code == exitcodes.USAGE, f"exit {code}; stdout={stdout!r} stderr={stderr!r}"
    assert "Traceback" not in stderr, stderr
    assert stdout == "", stdout
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {stderr!r}"
    assert stderr.endswith("\n"), stderr
    line = lines[0]
    assert line.startswith("hammer: error: "), line
    assert len(line) > len("hammer: error: ") + 5, line
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} not in {line!r}"
    return line


def assert_usage_error(result: Result, *fragments: str) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"exception {result.exception!r}; stderr={result.stderr!r}"
    )
    return assert_one_error_line(result.exit_code, result.stdout, result.stderr, *fragments)


# --------------------------------------------------------------------------- run: URL


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        ("not a url", ["invalid URL", "'not a url'"]),
        ("ftp://x/", ["scheme", "'ftp'"]),
        ("http://", ["invalid URL", "no host"]),
        ("http://127.0.0.1:99999/", ["invalid URL", "99999", "port"]),
        ("http://127.0.0.1:-1/", ["invalid URL", "port"]),
        ("http://127.0.0.1:http/", ["invalid URL", "port"]),
        ("http://[::1/", ["invalid URL", "[::1"]),
        ("127.0.0.1:8080", ["scheme", "http://127.0.0.1:8080"]),
        ("", ["invalid URL"]),
        ("gopher://127.0.0.1/", ["scheme", "'gopher'", "http:// or https://"]),
    ],
)
def test_bad_url(engine: Recorder, url: str, fragments: list[str]) -> None:
    assert_usage_error(invoke("run", url, "-n", "1"), *fragments)
    assert engine.calls == []


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["http://127.0.0.1:9/", "--insecure"], ["https://"]),
        (["https://127.0.0.1:9/", "--cacert", "/nonexistent/ca.pem"], ["CA file", "no such"]),
        (["https://127.0.0.1:9/", "--key", __file__], ["--key needs --cert"]),
        (["http://127.0.0.1:9/", "-r", "ramp:0->x@1s"], ["rate profile"]),
        (["http://127.0.0.1:9/", "-r", "1000@1s", "--arrivals", "poisson"], ["poisson"]),
        (["http://127.0.0.1:9/", "--targets", "/nonexistent/targets"], ["targets file"]),
        (["http://127.0.0.1:9/", "-H", "Connection: close"], ["--disable-keepalive"]),
        (["http://127.0.0.1:9/", "--unix-socket", "/nonexistent/s.sock"], ["unix socket"]),
    ],
)
def test_bad_tls_profile_targets_and_connection_options(engine: Recorder, args: list[str],
                                                        fragments: list[str]) -> None:
    assert_usage_error(invoke("run", *args, "-n", "1"), *fragments)
    assert engine.calls == []


def test_unresolvable_host(monkeypatch: pytest.MonkeyPatch, engine: Recorder) -> None:
    # Resolving nonexistent.invalid for real would send a DNS query off this host, so
    # the resolver's answer for it (EAI_NONAME) is simulated; everything else resolves.
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert_usage_error(
        invoke("run", "http://nonexistent.invalid/", "-n", "1"),
        "cannot resolve host", "nonexistent.invalid",
    )
    assert engine.calls == []


def test_host_that_cannot_be_encoded(engine: Recorder) -> None:
    # A 64-character DNS label fails IDNA encoding locally, before any lookup.
    host = "a" * 64 + ".example"
    assert_usage_error(invoke("run", f"http://{host}/", "-n", "1"), "cannot resolve host")
    assert engine.calls == []


# --------------------------------------------------------------------------- run: options


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["-r", "0"], ["rate", "positive"]),
        (["-r", "-5"], ["rate", "positive"]),
        (["--rate=-5"], ["rate", "positive"]),
        (["-r", "abc"], ["invalid rate", "'abc'"]),
        (["-r", ""], ["invalid rate"]),
        (["-r", "1/0s"], ["rate"]),
        (["-r", "200M"], ["rate", "above"]),
        (["-d", "0"], ["invalid duration", "'0'"]),
        (["-d", "10x"], ["invalid duration", "'10x'"]),
        (["-d", "-1s"], ["invalid duration", "negative"]),
        (["--timeout", "0"], ["timeout", "duration"]),
        (["--timeout", "soon"], ["timeout", "'soon'"]),
        (["-c", "0"], ["connections", "'0'"]),
        (["-c", "-3"], ["connections", "'-3'"]),
        (["-c", "1.5"], ["connections", "'1.5'"]),
        (["-c", "2000000"], ["connections", "2,000,000"]),
        (["-c", "2", "-t", "4"], ["connections (2)", "threads (4)"]),
        (["-t", "0"], ["threads", "'0'"]),
        (["-t", "1000"], ["threads", "1000"]),
        (["-n", "0"], ["requests", "'0'"]),
        (["-n", "lots"], ["requests", "'lots'"]),
        (["-m", "GE T"], ["method", "'GE T'"]),
        (["-m", ""], ["method"]),
        (["-H", "nocolon"], ["header", "'nocolon'"]),
        (["-H", ": value"], ["header"]),
        (["-H", "Bad Name: v"], ["header", "'Bad Name: v'"]),
        (["-H", "X: a\r\nY: b"], ["header", "'X'", "line break"]),
        (["-H", "X: a\nY: b"], ["header", "'X'", "line break"]),
        (["-H", "X: a\rb"], ["header", "'X'", "line break"]),
        (["-H", "X: a\0b"], ["header", "'X'", "NUL"]),
        (["-H", "X\r\nY: b"], ["header"]),
        (["-H", "Content-Length: 5"], ["Content-Length"]),
        (["-H", "content-length: 0"], ["content-length"]),
        (["-H", "Transfer-Encoding: chunked"], ["Transfer-Encoding"]),
        (["-H", "X: ok", "-H", "nocolon"], ["'nocolon'"]),
        (["--body", "a", "--body-file", "/dev/null"], ["--body", "--body-file"]),
    ],
)
def test_bad_run_option(engine: Recorder, args: list[str], fragments: list[str]) -> None:
    assert_usage_error(invoke("run", URL, *args), *fragments)
    assert engine.calls == []


def test_body_file_missing(tmp_path: Path, engine: Recorder) -> None:
    missing = tmp_path / "no-such-body.bin"
    assert_usage_error(
        invoke("run", URL, "-m", "POST", "--body-file", str(missing)),
        "body file", str(missing), "No such file",
    )
    assert engine.calls == []


def test_body_file_is_a_directory(tmp_path: Path, engine: Recorder) -> None:
    assert_usage_error(
        invoke("run", URL, "-m", "POST", "--body-file", str(tmp_path)),
        "body file", str(tmp_path), "directory",
    )
    assert engine.calls == []


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", URL, "--bogus"], ["--bogus", "hammer run --help"]),
        (["run", URL, "-Z"], ["-Z"]),
        (["--bogus"], ["--bogus", "hammer --help"]),
        (["frobnicate"], ["frobnicate", "hammer --help"]),
        (["run", URL, "-r"], ["-r", "argument"]),
        (["run", URL, "--json"], ["--json", "argument"]),
        (["run", URL, "extra-argument"], ["extra-argument"]),
    ],
)
def test_bad_command_line(engine: Recorder, args: list[str], fragments: list[str]) -> None:
    assert_usage_error(invoke(*args), *fragments)
    assert engine.calls == []


def test_valid_options_do_reach_the_engine(engine: Recorder) -> None:
    """Control: the recorder does see a run that passes validation (so the
    `engine.calls == []` checks above mean something)."""
    result = invoke("run", URL, "-r", "10", "-d", "1s", "-c", "2", "-t", "2", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert len(engine.calls) == 1
    (config,), kwargs = engine.calls[0]
    assert config.connections == 2
    assert config.threads == 2
    assert kwargs == {"json_path": None, "quiet": True, "csv_path": None, "hlog_path": None,
                      "html_path": None, "live_flag": None, "cluster": None}


# --------------------------------------------------------------------------- serve


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--body-size", "-1"], ["size", "'-1'", "negative"]),
        (["--body-size", "lots"], ["size", "'lots'"]),
        (["--body-size", "1.5"], ["size", "'1.5'"]),
        (["--delay", "abc"], ["duration", "'abc'"]),
        (["--delay", "-5ms"], ["duration", "'-5ms'"]),
        (["--stats-interval", "0"], ["duration", "'0'"]),
        (["--stats-interval", "often"], ["duration", "'often'"]),
        (["--port", "70000"], ["--port", "70000"]),
        (["--port", "http"], ["--port", "'http'"]),
        (["--status", "99"], ["--status", "99"]),
        (["--status", "1000"], ["--status", "1000"]),
        (["--bogus"], ["--bogus", "hammer serve --help"]),
    ],
)
def test_bad_serve_option(server_loop: Recorder, args: list[str], fragments: list[str]) -> None:
    assert_usage_error(invoke("serve", "--port", "0", *args), *fragments)
    assert server_loop.calls == []


# --------------------------------------------------------------------------- property


_value = st.text(max_size=20)


@settings(max_examples=200, deadline=None)
@given(rate=_value, duration=_value, connections=_value, timeout=_value)
def test_arbitrary_values_never_give_a_traceback(
    rate: str, duration: str, connections: str, timeout: str
) -> None:
    """Whatever text the four numeric options get, `hammer run` either accepts the run
    (exit 0 here: the engine is a stub) or refuses it with one error line (exit 2)."""
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("hammer.runner.run_cli", recorder)
        mp.setattr("hammer.server.serve_forever", Recorder())
        result = invoke(
            "run", URL, "-n", "1",
            "--rate", rate, "--duration", duration,
            "--connections", connections, "--timeout", timeout,
        )
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"exception {result.exception!r}; stderr={result.stderr!r}"
    )
    assert "Traceback" not in result.stderr
    assert result.exit_code in (exitcodes.OK, exitcodes.USAGE), result.stderr
    if result.exit_code == exitcodes.USAGE:
        assert_one_error_line(result.exit_code, result.stdout, result.stderr)
        assert recorder.calls == []
    else:
        # Exit 0 from --help is possible when a value looks like that flag.
        assert len(recorder.calls) == 1 or "Usage:" in result.stdout


# --------------------------------------------------------------------------- subprocess


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1: point a URL at it, then check nobody connected."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOCALHOST, 0))
        sock.listen(16)
        sock.setblocking(False)
        yield sock
    finally:
        sock.close()


def assert_nothing_connected(sock: socket.socket) -> None:
    try:
        conn, peer = sock.accept()
    except BlockingIOError:
        return
    conn.close()
    pytest.fail(f"something connected to the listener from {peer}")


def run_hammer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        hammer_command(*args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=SUBPROCESS_TIMEOUT, check=False,
    )


def assert_process_usage_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    return assert_one_error_line(proc.returncode, proc.stdout, proc.stderr, *fragments)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["-r", "0"], ["rate", "positive"]),
        (["-d", "10x"], ["duration", "'10x'"]),
        (["-c", "2", "-t", "4"], ["connections (2)", "threads (4)"]),
        (["-H", "X: a\r\nY: b"], ["header", "line break"]),
        (["-H", "Content-Length: 3"], ["Content-Length"]),
        (["-m", "GE T"], ["method"]),
        (["--bogus"], ["--bogus"]),
    ],
)
def test_process_run_option_errors(
    listener: socket.socket, args: list[str], fragments: list[str]
) -> None:
    port = listener.getsockname()[1]
    proc = run_hammer("run", f"http://{LOCALHOST}:{port}/", "-n", "1", "-q", *args)
    assert_process_usage_error(proc, *fragments)
    assert_nothing_connected(listener)


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        ("not a url", ["invalid URL"]),
        ("ftp://x/", ["scheme"]),
        ("ws://127.0.0.1/", ["scheme"]),
        ("http://127.0.0.1:99999/", ["port"]),
    ],
)
def test_process_bad_url(url: str, fragments: list[str]) -> None:
    assert_process_usage_error(run_hammer("run", url, "-n", "1"), *fragments)


def test_process_body_file_directory(listener: socket.socket, tmp_path: Path) -> None:
    port = listener.getsockname()[1]
    proc = run_hammer(
        "run", f"http://{LOCALHOST}:{port}/", "-n", "1", "-m", "POST",
        "--body-file", str(tmp_path),
    )
    assert_process_usage_error(proc, "body file")
    assert_nothing_connected(listener)


def test_process_unknown_command() -> None:
    assert_process_usage_error(run_hammer("frobnicate"), "frobnicate")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--body-size", "-1"], ["size", "negative"]),
        (["--delay", "abc"], ["duration", "'abc'"]),
    ],
)
def test_process_bad_serve_option(args: list[str], fragments: list[str]) -> None:
    proc = run_hammer("serve", "--host", LOCALHOST, "--port", "0", *args)
    assert_process_usage_error(proc, *fragments)


def test_process_serve_port_in_use(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    proc = run_hammer("serve", "--host", LOCALHOST, "--port", str(port))
    line = assert_process_usage_error(proc, "cannot bind", f"{LOCALHOST}:{port}")
    assert "in use" in line.lower()
    assert "listening" not in proc.stdout


# --------------------------------------------------------------------------- edge cases


def test_non_ascii_path_is_percent_encoded() -> None:
    from hammer.config import make_config

    config = make_config("http://127.0.0.1:9/\u2603?q=\u00e9", requests=1)
    assert config.requests_table[0].keep_alive.startswith(b"GET /%E2%98%83?q=%C3%A9 HTTP/1.1\r\n")


def test_non_latin1_header_value_is_a_usage_error(engine: Recorder) -> None:
    assert_usage_error(invoke("run", URL, "-n", "1", "-H", "X-Snow: \u2603"), "header")
    assert engine.calls == []


def test_tiny_rate_is_refused_or_kept_positive(engine: Recorder) -> None:
    result = invoke("run", URL, "-r", "0.0000000001", "-d", "1s", "-q")
    if result.exit_code == exitcodes.USAGE:
        assert_usage_error(result, "rate")
        return
    assert result.exit_code == 0, result.stderr
    (config,), _ = engine.calls[0]
    assert config.rate_rps > 0


def test_demo_mode_bad_option_is_one_line(engine: Recorder) -> None:
    assert_usage_error(invoke("run", "-r", "0"), "rate")
    assert engine.calls == []


def test_demo_mode_empty_rate_is_refused(engine: Recorder) -> None:
    assert_usage_error(invoke("run", "-r", "", "-n", "1"), "rate")
    assert engine.calls == []


def test_process_too_many_connections_for_nofile(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    # Lower the hard RLIMIT_NOFILE to 256 in the child so 1,000 connections cannot fit.
    code = (
        "import resource, sys; "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
        "sys.argv[0] = 'hammer'; "
        "from hammer.cli import main; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", f"http://{LOCALHOST}:{port}/", "-c", "1000",
         "-n", "1", "-q"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=SUBPROCESS_TIMEOUT, check=False,
    )
    assert_nothing_connected(listener)
    assert_process_usage_error(proc, "connections", "open files")
