"""`hammer run --hammer ...` and `--scenario FILE` through the command line, against the
built-in target server, whose counts must equal the report's."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hammer import exitcodes
from servers import hammer_command

TIMEOUT = 60

HAMMER_MODULE = '''
import asyncio
from urllib.parse import urlsplit

from hammer.hammers import Hammer, StopRun


class Get(Hammer):
    """One GET per hit, on a keep-alive connection per hit in flight."""

    def __init__(self, url=None, path="/"):
        super().__init__()
        self.url, self.path, self.idle = url, path, []

    async def setup(self, ctx):
        self.url = self.url or ctx.url
        if self.url is None:
            raise ValueError("no url: give one in --hammer-config or as the argument")

    async def hit(self, slot):
        if self.idle:
            reader, writer = self.idle.pop()
        else:
            parts = urlsplit(self.url)
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.write(f"GET {self.path} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n".encode())
        head = await reader.readuntil(b"\\r\\n\\r\\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\\r\\n")[0])
        await reader.readexactly(length)
        self.idle.append((reader, writer))
        return int(head.split(b" ")[1])

    async def teardown(self):
        for _, writer in self.idle:
            writer.close()


class Stop(Hammer):
    async def hit(self, slot):
        if slot == 9:
            raise StopRun("ten is enough")


class Secretive(Hammer):
    def __init__(self, token):
        super().__init__()
        self.token = token

    async def hit(self, slot):
        raise RuntimeError(f"refused token {self.token}")
'''


@pytest.fixture
def hammer_dir(tmp_path: Path) -> Path:
    (tmp_path / "myhammers.py").write_text(textwrap.dedent(HAMMER_MODULE))
    return tmp_path


def hammer(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    if cwd is not None:
        full_env["PYTHONPATH"] = str(cwd)
    full_env.update(env or {})
    return subprocess.run(hammer_command(*args), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False, cwd=cwd, env=full_env)


def report_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode in (exitcodes.OK, exitcodes.SATURATED), proc.stderr
    assert "Traceback" not in proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    counts = report["counts"]
    assert counts["scheduled"] == (counts["ok"] + counts["http_error"] + counts["error"]
                                   + counts["unsent"])
    return report


def usage_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == exitcodes.USAGE, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("hammer: error: ")
    return lines[0]


# --------------------------------------------------------------------------- --hammer


def test_python_hammer_from_the_command_line(target_server, hammer_dir: Path) -> None:
    server = target_server(body_size="3")
    proc = hammer("run", "--hammer", "myhammers:Get", "--hammer-config",
                  json.dumps({"url": server.url}), "-r", "50", "-d", "1s", "--json", "-", "-q",
                  cwd=hammer_dir)
    report = report_of(proc)
    assert report["kind"] == "python"
    assert report["target"] == "python:myhammers:Get"
    assert report["counts"]["ok"] == report["counts"]["scheduled"] == 50
    assert server.wait_stats(requests=50)["responses"] == {"200": 50}


def test_hammer_config_from_a_file_and_the_url_argument(target_server, hammer_dir: Path) -> None:
    server = target_server(status=404)
    (hammer_dir / "cfg.json").write_text(json.dumps({"path": "/x"}))
    proc = hammer("run", server.url, "--hammer", "myhammers:Get", "--hammer-config",
                  "@cfg.json", "-c", "2", "-n", "30", "--json", "-", "-q", cwd=hammer_dir)
    report = report_of(proc)
    assert report["mode"] == "closed"
    assert report["status"] == {"404": 30}
    assert report["counts"]["http_error"] == 30
    assert server.wait_stats(requests=30)["requests"] == 30


def test_installed_hammer_by_entry_point_name(target_server, hammer_dir: Path) -> None:
    server = target_server()
    dist = hammer_dir / "myhammers-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myhammers\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hammer.hammers]\nget = myhammers:Get\n")
    proc = hammer("run", server.url, "--hammer", "get", "-n", "5", "-c", "1", "--json", "-",
                  "-q", cwd=hammer_dir)
    assert report_of(proc)["counts"]["ok"] == 5
    line = usage_error(hammer("run", "--hammer", "nope", "-n", "1", cwd=hammer_dir))
    # the installed ones in name order: this test's, and hammer's own no-op hammer
    assert ("unknown hammer 'nope' (use module:Class, or one of: http, HTTPHammer, get, noop)"
            in line)


def test_stop_run_exits_zero_with_the_reason(hammer_dir: Path) -> None:
    proc = hammer("run", "--hammer", "myhammers:Stop", "-r", "100", "-d", "5s", cwd=hammer_dir)
    assert proc.returncode == exitcodes.OK, proc.stderr
    assert "stopped     by the hammer: ten is enough" in proc.stdout
    assert "scheduled 10" in proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("--hammer", "nomodule:X"), "cannot import hammer module 'nomodule'"),
    (("--hammer", "myhammers:Missing"), "module 'myhammers' has no 'Missing'"),
    (("--hammer", "myhammers:Get", "--hammer-config", "{nope"),
     "--hammer-config: invalid JSON at line 1 column 2"),
    (("--hammer", "myhammers:Get", "--hammer-config", "[1]"),
     "--hammer-config: a JSON object is needed, not list"),
    (("--hammer", "myhammers:Get", "--hammer-config", '{"colour": 1}'),
     "hammer myhammers:Get: bad config: "),
    (("--hammer", "myhammers:Get", "-m", "POST"), "--method is for the HTTP kind"),
    (("--hammer-config", "{}",), "--hammer-config is for Python hammers"),
    (("--ok-status", "2xx,abc"), "invalid ok status 'abc'"),
])
def test_hammer_usage_errors(hammer_dir: Path, args: tuple[str, ...], message: str) -> None:
    line = usage_error(hammer("run", "http://127.0.0.1:9/", "-n", "1", *args, cwd=hammer_dir))
    assert message in line


def test_failing_setup_is_one_line_and_exit_1(target_server, hammer_dir: Path) -> None:
    server = target_server()
    proc = hammer("run", "--hammer", "myhammers:Get", "-n", "3", cwd=hammer_dir)
    assert proc.returncode == exitcodes.FAILED
    assert proc.stderr.strip() == ("hammer: error: setup of myhammers:Get failed: ValueError: "
                                   "no url: give one in --hammer-config or as the argument")
    assert server.stats()["requests"] == 0


def test_ok_status_makes_a_404_ok(target_server) -> None:
    server = target_server(status=404)
    proc = hammer("run", server.url, "-n", "20", "-c", "2", "--ok-status", "200,404",
                  "--json", "-", "-q")
    report = report_of(proc)
    assert report["counts"]["ok"] == 20
    assert report["counts"]["http_error"] == 0
    assert report["hammer"]["ok_status"] == [200, 404]
    assert server.wait_stats(requests=20)["responses"] == {"404": 20}


# --------------------------------------------------------------------------- --scenario


def test_go_hammer_scenario_runs_unchanged(target_server, tmp_path: Path) -> None:
    server = target_server()
    scenario = {"duration": 1, "tps": 20, "hammer": "HTTPHammer",
                "hammerConfig": {"method": "GET", "endpoint": server.url,
                                 "payload": "Hello World",
                                 "headers": {"content-type": "application/json"}}}
    path = tmp_path / "go-hammer.json"
    path.write_text(json.dumps(scenario))
    report = report_of(hammer("run", "--scenario", str(path), "--json", "-", "-q"))
    assert report["kind"] == "http"
    assert report["rate"]["target_rps"] == 20
    assert report["duration_s"] == 1.0
    assert report["counts"]["ok"] == report["counts"]["scheduled"] == 20
    stats = server.wait_stats(requests=20)
    assert stats["requests"] == 20
    # each request carries the 11-byte payload: the server received it
    assert report["bytes"]["sent"] == stats["bytes_received"]
    assert stats["bytes_received"] > 20 * len("Hello World")


def test_toml_scenario_with_hammer_options_and_command_line_overrides(
        target_server, tmp_path: Path) -> None:
    server = target_server()
    path = tmp_path / "run.toml"
    path.write_text(textwrap.dedent(f"""
        url = "{server.url}"
        rate = "40/s"
        duration = "2s"
        connections = 3
        max-requests-per-conn = 5
        header = ["X-Test: yes"]
    """))
    # -d on the command line overrides the file's duration
    report = report_of(hammer("run", "--scenario", str(path), "-d", "1s", "--json", "-", "-q"))
    assert report["duration_s"] == 1.0
    assert report["connections"] == 3
    assert report["max_requests_per_conn"] == 5
    assert report["counts"]["ok"] == 40
    stats = server.wait_stats(requests=40)
    assert stats["connections_opened"] == 8   # 40 requests, 5 per connection


def test_python_hammer_scenario(target_server, hammer_dir: Path) -> None:
    server = target_server()
    path = hammer_dir / "py.json"
    path.write_text(json.dumps({"duration": 1, "tps": 30, "hammer": "myhammers:Get",
                                "hammerConfig": {"url": server.url}}))
    report = report_of(hammer("run", "--scenario", str(path), "--json", "-", "-q",
                              cwd=hammer_dir))
    assert report["kind"] == "python"
    assert report["counts"]["ok"] == 30
    assert server.wait_stats(requests=30)["requests"] == 30


def test_environment_secrets_are_redacted_everywhere(target_server, hammer_dir: Path) -> None:
    server = target_server()
    path = hammer_dir / "secret.json"
    path.write_text(json.dumps({
        "url": server.url + "?key=${API_KEY}", "requests": 3, "connections": 1,
        "header": ["Cookie: session=${API_KEY}"]}))
    secret = "s3cr3t-value-42"
    proc = hammer("run", "--scenario", str(path), "--json", "-", cwd=hammer_dir,
                  env={"API_KEY": secret})
    report = report_of(proc)
    assert report["counts"]["ok"] == 3
    assert secret not in proc.stdout + proc.stderr
    assert report["target"].endswith("?key=<redacted>")
    # a Python hammer whose errors carry the secret: redacted in the text and the JSON
    path.write_text(json.dumps({"hammer": "myhammers:Secretive", "requests": 2, "tps": 100,
                                "hammer-config": {"token": "${API_KEY}"}}))
    proc = hammer("run", "--scenario", str(path), "--json", "-", cwd=hammer_dir,
                  env={"API_KEY": secret})
    report = report_of(proc)
    assert report["errors"] == {"RuntimeError": 2}
    assert secret not in proc.stdout + proc.stderr
    assert "refused token <redacted>" in report["error_samples"][0]["traceback"]


@pytest.mark.parametrize(("content", "name", "message"), [
    ('{"duration": 1, "tsp": 5}', "a.json", "a.json: unknown key 'tsp' (did you mean 'tps'?)"),
    ('{"rate": 5, "conections": 2}', "a.json",
     "a.json: unknown key 'conections' (did you mean 'connections'?)"),
    ('{"hammerConfig": {"endpont": "http://127.0.0.1:9/"}}', "a.json",
     "a.json: unknown key 'hammerConfig.endpont' (did you mean 'endpoint'?)"),
    ('{\n  "duration": 1,\n  "tps": 5,,\n}', "a.json", "a.json: line 3 column 12: invalid JSON"),
    ('rate = 5\nduration = = 2\n', "a.toml", "a.toml: invalid TOML: "),
    ('rate = 5\n', "a.toml", "no URL given"),
    ('{"url": "http://127.0.0.1:9/${NO_SUCH_VAR_X}"}', "a.json",
     "environment variable NO_SUCH_VAR_X is not set"),
    ('[1, 2]', "a.json", "a.json: a scenario is a JSON object"),
])
def test_scenario_errors_name_the_file_and_key(tmp_path: Path, content: str, name: str,
                                               message: str) -> None:
    (tmp_path / name).write_text(content)
    line = usage_error(hammer("run", "--scenario", name, cwd=tmp_path))
    assert message in line


def test_missing_scenario_file(tmp_path: Path) -> None:
    line = usage_error(hammer("run", "--scenario", "nope.json", cwd=tmp_path))
    assert "cannot read scenario nope.json: No such file or directory" in line


def test_several_workloads_run_together_reported_apart_and_in_total(
        target_server, hammer_dir: Path) -> None:
    http_server = target_server()
    py_server = target_server(status=404)
    path = hammer_dir / "multi.toml"
    path.write_text(textwrap.dedent(f"""
        duration = "1s"
        [scenarios.browse]
        url = "{http_server.url}"
        rate = 40
        [scenarios.python]
        hammer = "myhammers:Get"
        hammer-config = {{ url = "{py_server.url}" }}
        rate = 20
        start = "300ms"
    """))
    proc = hammer("run", "--scenario", str(path), "--json", "-", cwd=hammer_dir)
    assert proc.returncode in (exitcodes.OK, exitcodes.SATURATED), proc.stderr
    report = json.loads(proc.stdout)
    browse, python = report["workloads"]["browse"], report["workloads"]["python"]
    assert browse["kind"] == "http" and python["kind"] == "python"
    assert browse["counts"]["ok"] == 40
    assert python["counts"]["http_error"] == 20
    assert report["kind"] == "scenario"
    assert report["counts"]["scheduled"] == 60
    assert report["counts"]["ok"] == 40
    assert report["counts"]["http_error"] == 20
    assert report["status"] == {"200": 40, "404": 20}
    assert report["rate"]["target_rps"] == 60
    # the python workload started 300 ms later: the whole run spans 1.3 s
    assert report["duration_s"] == pytest.approx(1.3, abs=0.05)
    assert report["hammer"]["workloads"]["python"]["start_s"] == 0.3
    # connection set-up adds too: the core's connects (a Python hammer's are its own)
    assert report["connect_ms"] == browse["connect_ms"] and browse["connect_ms"]["p50"]
    assert python["connect_ms"] is None
    assert http_server.wait_stats(requests=40)["responses"] == {"200": 40}
    assert py_server.wait_stats(requests=20)["responses"] == {"404": 20}
    # the text report shows each workload, then the total
    assert "== workload browse ==" in proc.stderr
    assert "== total of every workload ==" in proc.stderr


def test_merged_latency_is_the_sum_of_the_workloads_histograms() -> None:
    """The total adds histograms (hdr_add): its counts are the workloads' counts."""
    import asyncio

    from hammer.hammers import Hammer
    from hammer.hammers.python import make_hammer_config
    from hammer.plan import make_plan
    from hammer.workloads import Workload, run_workloads

    class Slow(Hammer):
        def __init__(self, delay: float) -> None:
            super().__init__()
            self.delay = delay

        async def hit(self, slot: int) -> None:
            await asyncio.sleep(self.delay)

    workloads = [
        Workload("fast", 0, make_hammer_config(Slow(0.001), make_plan(rate=50, requests=25))),
        Workload("slow", 0, make_hammer_config(Slow(0.02), make_plan(rate=50, requests=25))),
    ]
    result = run_workloads(workloads, "test")
    fast, slow = result.reports["fast"].totals, result.reports["slow"].totals
    total = result.total.totals
    assert total is not None and fast is not None and slow is not None
    assert total.aggregator.latency.total_count == 50
    assert total.aggregator.latency.max == max(fast.aggregator.latency.max,
                                                slow.aggregator.latency.max)
    assert total.aggregator.latency.min == min(fast.aggregator.latency.min,
                                                slow.aggregator.latency.min)
    assert result.total.latency_ms["min"] < 5 < 15 <= result.total.latency_ms["max"]


def test_slo_thresholds_pass_fail_and_gate_the_exit_code(target_server, tmp_path: Path) -> None:
    server = target_server()
    proc = hammer("run", server.url, "-r", "100", "-n", "50", "--slo", "p99<10s",
                  "--slo", "error_rate<1%", "--slo", "achieved_rate>=90%", "--json", "-")
    report = report_of(proc)
    assert [s["passed"] for s in report["slo"]] == [True, True, True]
    assert "slo         p99<10s: passed" in proc.stderr
    proc = hammer("run", server.url, "-n", "20", "-c", "2", "--slo", "p50<1ns", "--json",
                  str(tmp_path / "r.json"))
    assert proc.returncode == exitcodes.SLO_FAILED, proc.stderr
    assert "p50<1ns: FAILED" in proc.stdout
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["slo"][0]["passed"] is False and saved["slo"][0]["value"] > 0
    # a threshold on a figure that does not exist: refused before anything is sent
    before = server.stats()["requests"]
    line = usage_error(hammer("run", server.url, "-n", "5", "--slo", "p42<1s"))
    assert "no figure 'p42' in the report" in line
    assert server.stats()["requests"] == before


def test_slo_in_a_scenario_file(target_server, tmp_path: Path) -> None:
    server = target_server(status=500)
    path = tmp_path / "gate.toml"
    path.write_text(f'url = "{server.url}"\nrequests = 10\nconnections = 1\n'
                    'slo = ["error_rate<1%"]\n')
    proc = hammer("run", "--scenario", str(path), "--json", "-", "-q")
    assert proc.returncode == exitcodes.SLO_FAILED, proc.stderr
    report = json.loads(proc.stdout)
    assert report["slo"] == [{"slo": "error_rate<1%", "figure": "error_rate", "value": 1.0,
                              "threshold": 0.01, "unit": "ratio", "passed": False}]


def test_csv_gives_the_per_second_series(target_server, tmp_path: Path) -> None:
    import csv

    server = target_server()
    out = tmp_path / "series.csv"
    proc = hammer("run", server.url, "-r", "200", "-d", "2s", "--csv", str(out), "--json", "-",
                  "-q")
    report = report_of(proc)
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert list(rows[0]) == ["t_s", "target_rps", "sent", "completed", "ok", "http_error",
                             "errors", "p50_ms", "p90_ms", "p99_ms", "max_ms"]
    assert sum(int(r["ok"]) for r in rows) == report["counts"]["ok"]
    # a response later than the load phase (a host stall) is counted in a drain second
    drain = rows[2:]
    assert all(int(r["sent"]) == float(r["target_rps"]) == 0 for r in drain)
    rows = rows[:2]
    assert [r["t_s"] for r in rows] == ["0", "1"]
    assert sum(int(r["sent"]) for r in rows) == report["counts"]["sent"] == 400
    assert all(float(r["target_rps"]) == 200.0 for r in rows)
    assert all(float(r["p50_ms"]) <= float(r["p90_ms"]) <= float(r["p99_ms"])
               <= float(r["max_ms"]) for r in rows)
    assert server.wait_stats(requests=400)["requests"] == 400


def test_csv_seconds_count_http_errors_apart(target_server, tmp_path: Path) -> None:
    import csv

    server = target_server(status=503)
    out = tmp_path / "series.csv"
    report = report_of(hammer("run", server.url, "-r", "150", "-d", "2s", "--csv", str(out),
                              "--json", "-", "-q"))
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert server.wait_stats(requests=300)["responses"] == {"503": 300}
    assert sum(int(r["http_error"]) for r in rows) == report["counts"]["http_error"] == 300
    assert sum(int(r["ok"]) + int(r["errors"]) for r in rows) == 0


def test_an_output_that_cannot_be_written_leaves_the_others(target_server,
                                                            tmp_path: Path) -> None:
    server = target_server()
    good = tmp_path / "r.json"
    proc = hammer("run", server.url, "-n", "5", "-c", "1", "--json", str(good), "--csv",
                  str(tmp_path / "missing" / "s.csv"), "-q")
    assert proc.returncode == exitcodes.FAILED
    assert proc.stderr.strip().startswith("hammer: error: cannot write CSV report to ")
    assert json.loads(good.read_text())["counts"]["ok"] == 5


def test_hlog_is_read_by_hdrh_and_two_logs_merge(target_server, tmp_path: Path) -> None:
    from hdrh.histogram import HdrHistogram
    from hdrh.log import HistogramLogReader

    from hammer import _core

    server = target_server()
    logs, reports = [], []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.hlog"
        proc = hammer("run", server.url, "-r", "300", "-d", "2s", "--hlog", str(path),
                      "--json", "-", "-q")
        reports.append(report_of(proc))
        logs.append(path)
    text = logs[0].read_text()
    assert text.startswith("#[Logged with hammer ")
    assert "#[Histogram log format version 1.3]" in text and "#[StartTime: " in text
    merged = HdrHistogram(1, _core.HIST_HIGHEST_NS, 2)
    for path, report in zip(logs, reports, strict=True):
        reader = HistogramLogReader(str(path), HdrHistogram(1, _core.HIST_HIGHEST_NS, 2))
        intervals = []
        while (h := reader.get_next_interval_histogram()) is not None:
            intervals.append(h)
            merged.add(h)
        reader.close()
        # a histogram a second, together every completion of the run (3 seconds: a
        # response came after the load phase)
        assert len(intervals) == len(report["time_series"]) in (2, 3)
        assert sum(h.get_total_count() for h in intervals) == report["counts"]["completed"]
        # the same corrected latency as the report, within the per-second histograms'
        # two significant digits
        worst = max(h.get_max_value() for h in intervals) / 1e6
        assert worst == pytest.approx(report["latency_ms"]["max"], rel=0.02)
    assert merged.get_total_count() == sum(r["counts"]["completed"] for r in reports) == 1200
