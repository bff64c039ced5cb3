"""Host limits: plans judged against mocked figures, and one real reading."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from hammer import limits
from hammer.config import ConfigError


def host(**overrides: object) -> limits.HostLimits:
    values: dict[str, object] = dict(
        nofile_soft=1024, nofile_hard=4096, port_low=32768, port_high=60999,
        tcp_tw_reuse="0", somaxconn=4096, conntrack_max=None, clocksource="tsc",
        timer_slack_ns=50_000, cpus=2,
    )
    values.update(overrides)
    return limits.HostLimits(**values)  # type: ignore[arg-type]


def fake_proc(files: dict[str, str]) -> limits.ReadFn:
    return files.get


def test_reads_proc_figures() -> None:
    h = limits.read_host_limits(fake_proc({
        "/proc/sys/net/ipv4/ip_local_port_range": "10000\t10999",
        "/proc/sys/net/ipv4/tcp_tw_reuse": "2",
        "/proc/sys/net/core/somaxconn": "128",
        "/sys/devices/system/clocksource/clocksource0/current_clocksource": "kvm-clock",
    }))
    assert (h.port_low, h.port_high, h.ephemeral_ports) == (10000, 10999, 1000)
    assert h.new_connections_per_s == pytest.approx(1000 / 60)
    assert h.tcp_tw_reuse == "2"
    assert h.somaxconn == 128
    assert h.conntrack_max is None  # absent file: no conntrack
    assert h.clocksource == "kvm-clock"


def test_missing_proc_files_are_unknown_not_errors() -> None:
    h = limits.read_host_limits(fake_proc({}))
    assert h.ephemeral_ports is None
    assert h.new_connections_per_s is None
    text = limits.render_limits(h, None, None, None)
    assert "ephemeral ports   -" in text


def test_plan_within_soft_limit() -> None:
    verdict = limits.check_plan(host(), 500)
    assert verdict.fits
    assert verdict.raise_soft_to is None
    assert verdict.files_needed == 500 + limits.FD_OVERHEAD


def test_plan_needs_soft_limit_raised() -> None:
    verdict = limits.check_plan(host(), 3000)
    assert verdict.fits
    assert verdict.raise_soft_to == 3000 + limits.FD_OVERHEAD


def test_plan_over_hard_limit_names_numbers_and_fix() -> None:
    verdict = limits.check_plan(host(), 5000)
    assert not verdict.fits
    assert "5,064 open files" in verdict.problems[0]
    assert "4,096" in verdict.problems[0]
    assert "ulimit -Hn" in verdict.problems[0]


def test_plan_over_port_range() -> None:
    verdict = limits.check_plan(host(nofile_hard=100_000, port_low=60000, port_high=60999),
                                2000)
    assert not verdict.fits
    assert "ip_local_port_range" in verdict.problems[0]


@pytest.mark.parametrize(
    ("reuse", "loopback", "warned_budget"),
    [("0", True, True), ("2", False, True), ("2", True, False), ("1", False, False)],
)
def test_churn_against_port_budget(reuse: str, loopback: bool, warned_budget: bool) -> None:
    verdict = limits.check_plan(host(tcp_tw_reuse=reuse), 10, rate_rps=1000, churn=True,
                                loopback=loopback)
    assert verdict.fits
    assert any("TIME_WAIT" in w and "471" in w for w in verdict.warnings) == warned_budget
    if not warned_budget:
        assert verdict.warnings == []


def test_churn_below_budget_is_quiet() -> None:
    verdict = limits.check_plan(host(), 10, rate_rps=100, churn=True)
    assert verdict.warnings == []


def test_ensure_nofile_raises_soft_limit_in_a_child() -> None:
    # run in a child process so this test's own limits stay as they were
    code = (
        "import resource; from hammer import limits\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "v = limits.ensure_nofile(1000)\n"
        "print(v.raise_soft_to, resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(1000 + limits.FD_OVERHEAD)] * 2


def test_ensure_nofile_refuses_over_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files here")
    with pytest.raises(ConfigError, match="hard limit"):
        limits.ensure_nofile(hard + 1)


def test_hammer_limits_real_run() -> None:
    result = subprocess.run([sys.executable, "-m", "hammer", "limits"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    out = result.stdout
    for label in ("open files", "ephemeral ports", "new conns/s", "tcp_tw_reuse",
                  "somaxconn", "conntrack max", "clocksource", "timer slack", "CPUs"):
        assert label in out
    assert f"hard {hard:,}" in out
    assert "a clock read costs" in out


def test_hammer_limits_plan_that_does_not_fit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files here")
    result = subprocess.run(
        [sys.executable, "-m", "hammer", "limits", "http://127.0.0.1:9/", "-r", "1000",
         "-c", str(hard + 1)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "does not fit" in result.stdout
    assert "ulimit -Hn" in result.stdout


def test_a_run_warns_before_churning_past_the_port_budget(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    # a host with a tiny port range and no TIME_WAIT reuse; the run itself is refused
    # by a later check (the URL has nothing listening), so only the plan is judged here
    tiny = host(nofile_hard=100_000, nofile_soft=100_000, port_low=60000, port_high=60599)
    monkeypatch.setattr(limits, "read_host_limits", lambda: tiny)
    verdict = limits.ensure_nofile(16, rate_rps=1000, churn=True, loopback=True)
    assert verdict.fits
    assert "exceeds the 10 new connections/s" in verdict.warnings[0]
