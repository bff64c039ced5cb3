"""`hammer replay`: access logs of known shape, replayed against real servers whose own
arrival counts are compared with the original timeline divided by the speed."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import hammer
from accounting import check_invariant
from hammer import exitcodes
from hammer.replay import build_timeline, replay_config
from servers import ArrivalServer, hammer_command

T0 = datetime(2026, 11, 30, 13, 55, 36, tzinfo=timezone(timedelta(hours=-7)))


def combined(when: datetime, path: str, method: str = "GET", status: int = 200) -> str:
    stamp = when.strftime("%d/%b/%Y:%H:%M:%S %z")
    return (f'192.0.2.7 - - [{stamp}] "{method} {path} HTTP/1.1" {status} 512 '
            f'"-" "curl/8.0"\n')


def write_bursty_log(path: Path) -> list[int]:
    """Second-stamped: 10, 30, 0, 0, 20 requests in five seconds. Returns the counts."""
    counts = [10, 30, 0, 0, 20]
    lines = []
    for second, n in enumerate(counts):
        for i in range(n):
            lines.append(combined(T0 + timedelta(seconds=second), f"/item/{second}/{i}",
                                  status=200 if i % 5 else 404))
    path.write_text("".join(lines))
    return counts


def arrivals_per_window(arrivals: list[int], start_ns: int, width_ns: int,
                        n: int) -> list[int]:
    out = [0] * n
    for t in arrivals:
        i = (t - start_ns) // width_ns
        if 0 <= i < n:
            out[i] += 1
    return out


def test_second_stamped_bursts_at_double_speed_arrive_as_the_original_over_two(
        tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    counts = write_bursty_log(log)
    timeline = build_timeline([str(log)], speed=2.0, spread="even")
    # each original second becomes half a second of the replay, spread evenly through it
    assert len(timeline.offsets_ns) == 60
    assert timeline.duration_s == pytest.approx(2.0 + 19 / 20 / 2, abs=1e-6)
    # a virtual CPU here is descheduled for milliseconds now and then, which can move a
    # request across a window's edge: the shape may take up to three runs to show; the
    # counts must be exact in every run
    for _ in range(3):
        with ArrivalServer() as server:
            config = replay_config(timeline, server.url, connections=16)
            report = hammer.run(config)
            deadline = time.monotonic() + 5
            while server.requests < 60 and time.monotonic() < deadline:
                time.sleep(0.01)
        check_invariant(report)
        assert report.counts.scheduled == report.counts.ok == 60
        arrivals = sorted(server.arrivals_ns)
        assert len(arrivals) == 60
        # the server's arrivals per half second are the original seconds' counts (the
        # first arrival is slot 0's, due at the start)
        seen = arrivals_per_window(arrivals, arrivals[0] - 1_000_000, 500_000_000, 5)
        assert sum(seen) == 60
        if all(abs(a - b) <= 1 for a, b in zip(seen, counts, strict=True)):
            break
    assert all(abs(a - b) <= 1 for a, b in zip(seen, counts, strict=True)), (seen, counts)
    # the report's seconds say what the original asked for in each replayed second
    rows = report.to_dict()["time_series"]
    assert [row["target_rps"] for row in rows][:2] == [40.0, 0.0]
    replay = report.to_dict()["hammer"]["replay"]
    assert replay["speed"] == 2.0
    assert replay["original_status"] == {"200": 48, "404": 12}
    assert replay["timestamps"] == "to the second"


def test_msec_stamps_keep_their_real_times(tmp_path: Path) -> None:
    log = tmp_path / "msec.log"
    base = 1_764_600_000.0
    offsets_s = [0.0, 0.1, 0.25, 0.7, 0.701, 1.5]
    log.write_text("".join(
        f'{base + o:.3f} 198.51.100.9 - - [30/Nov/2026:13:55:36 -0700] "GET /m/{i} HTTP/1.1" '
        f'200 10 "-" "x"\n' for i, o in enumerate(offsets_s)))
    timeline = build_timeline([str(log)])
    assert list(timeline.offsets_ns) == [round(o * 1e9) for o in offsets_s]
    with ArrivalServer() as server:
        report = hammer.run(replay_config(timeline, server.url, connections=4))
        deadline = time.monotonic() + 5
        while server.requests < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    check_invariant(report)
    arrivals = sorted(server.arrivals_ns)
    gaps_ms = [(t - arrivals[0]) / 1e6 for t in arrivals]
    # a virtual CPU now and then wakes milliseconds late: the times, not their jitter
    assert gaps_ms == pytest.approx([o * 1000 for o in offsets_s], abs=20.0)


def test_replay_against_nginx_sends_the_logged_paths(nginx, tmp_path: Path) -> None:
    server = nginx()
    log = tmp_path / "access.log.gz"
    paths = [f"/p/{i % 7}?q={i}" for i in range(50)]
    lines = [combined(T0 + timedelta(milliseconds=0), p) for p in paths]
    with gzip.open(log, "wt") as f:
        f.writelines(lines)
    proc = subprocess.run(hammer_command("replay", str(log), "--target", server.url,
                                         "--speed", "10", "--json", "-", "-q"),
                          capture_output=True, text=True, timeout=60)
    # 3: a stalled virtual CPU made a few sends late (the report says so): still a run
    assert proc.returncode in (exitcodes.OK, exitcodes.SATURATED), proc.stderr
    report = json.loads(proc.stdout)
    assert report["counts"]["ok"] == 50
    assert server.requests_served(wait_for=50) == 50
    sent = Counter(e.path for e in server.access_log_entries())
    assert sent == Counter(paths)


def test_json_request_time_gives_the_start(tmp_path: Path) -> None:
    log = tmp_path / "rt.jsonl"
    rows = [{"msec": 10.5, "request_time": 0.5, "method": "GET", "uri": "/slow"},
            {"msec": 10.2, "request_time": 0.0, "method": "GET", "uri": "/fast"}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    timeline = build_timeline([str(log)])
    # logged at their ends, 10.5 and 10.2: they began at 10.0 and 10.2
    assert [timeline.requests[i][1] for i in timeline.targets] == ["/slow", "/fast"]
    assert list(timeline.offsets_ns) == [0, 200_000_000]


def test_json_lines_and_unsafe_methods_are_counted(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    rows = [{"msec": 1_764_600_000.0 + i / 10, "method": m, "uri": f"/j/{i}",
             "status": 200} for i, m in enumerate(["GET", "POST", "GET", "DELETE", "GET"])]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n{\"x\": 1}\n")
    timeline = build_timeline([str(log)])
    assert len(timeline.offsets_ns) == 3
    stats = timeline.stats
    assert stats.lines == 7
    assert stats.skipped["malformed"] == 2
    assert stats.skipped["unsafe method POST (--allow-unsafe sends them)"] == 1
    assert stats.skipped["unsafe method DELETE (--allow-unsafe sends them)"] == 1
    assert stats.malformed == [f"{log}:6: not json", f'{log}:7: {{"x": 1}}']
    unsafe = build_timeline([str(log)], allow_unsafe=True)
    assert len(unsafe.offsets_ns) == 5
    assert unsafe.stats.empty_bodies == 2
    assert unsafe.stats.to_dict()["sent_with_empty_body"] == 2


def test_dry_run_says_what_the_log_holds(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write_bursty_log(log)
    with open(log, "a") as f:
        f.write(combined(T0 + timedelta(seconds=4), "/form", method="POST"))
        f.write("garbage line\n")
    proc = subprocess.run(hammer_command("replay", str(log), "--dry-run", "--speed", "2"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == exitcodes.OK, proc.stderr
    out = proc.stdout
    assert "62 read, 61 parsed, 60 to replay, 60 distinct" in out
    assert "unsafe method POST (--allow-unsafe sends them): 1" in out
    assert "malformed: 1" in out
    assert f"malformed   {log}:62: garbage line" in out
    assert "timestamps  to the second" in out
    assert "at speed 2" in out
    assert "peak second 30 requests in the original, 1 s in" in out


@pytest.mark.parametrize(("args", "message"), [
    (("nope.log", "--target", "http://127.0.0.1:9/"), "cannot read log nope.log"),
    (("LOG",), "--target URL is needed (or --dry-run)"),
    (("LOG", "--target", "http://127.0.0.1:9/", "--speed", "0"), "speed must be positive"),
])
def test_replay_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    log = tmp_path / "a.log"
    write_bursty_log(log)
    args = tuple(str(log) if a == "LOG" else a for a in args)
    proc = subprocess.run(hammer_command("replay", *args), capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == exitcodes.USAGE, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_out_of_order_lines_are_counted_and_sorted(tmp_path: Path) -> None:
    log = tmp_path / "late.log"
    base = 1_764_600_000.0
    order = [0.0, 0.3, 0.2, 0.5]        # nginx logs at completion: a slow request lands late
    log.write_text("".join(
        f'{base + o:.3f} 198.51.100.9 - - [30/Nov/2026:13:55:36 -0700] "GET /o/{i} HTTP/1.1" '
        f'200 10 "-" "x"\n' for i, o in enumerate(order)))
    timeline = build_timeline([str(log)])
    assert timeline.stats.out_of_order == 1
    assert list(timeline.offsets_ns) == [0, 200_000_000, 300_000_000, 500_000_000]
    assert [timeline.requests[i][1] for i in timeline.targets] == ["/o/0", "/o/2", "/o/1",
                                                                    "/o/3"]


def test_the_core_trace_pacer_gives_the_offsets_exactly() -> None:
    from array import array

    from hammer import _core

    trace = array("q", [0, 5, 5, 1_000, 2_000_000_000])
    assert _core.schedule_ns([0, 1, 2, 3, 4], trace=trace) == list(trace)


def test_path_patterns_fold_numbers_ids_and_queries() -> None:
    from hammer.replay import groups_of, path_pattern

    assert path_pattern("/users/123/orders/9f8e7d6c5b4a39281706f5e4d3c2b1a0?x=1") == \
        "/users/{n}/orders/{id}?..."
    assert path_pattern("/a/550e8400-e29b-41d4-a716-446655440000/b") == "/a/{id}/b"
    assert path_pattern("/static/app.js") == "/static/app.js"
    assert path_pattern("/v2/items") == "/v2/items"
    of, groups = groups_of([("GET", "/u/1"), ("GET", "/u/2"), ("POST", "/u/3"),
                            ("GET", "/about")])
    assert list(of) == [0, 0, 1, 2]
    assert groups == [("GET", "/u/{n}"), ("POST", "/u/{n}"), ("GET", "/about")]


def test_many_distinct_urls_are_reported_by_pattern(target_server, tmp_path: Path) -> None:
    server = target_server()
    log = tmp_path / "ids.log"
    base = 1_764_600_000.0
    log.write_text("".join(
        f'{base + i / 1000:.3f} 198.51.100.9 - - [30/Nov/2026:13:55:36 -0700] '
        f'"GET /{"users" if i % 2 else "items"}/{i}?page={i} HTTP/1.1" 200 10 "-" "x"\n'
        for i in range(2000)))
    timeline = build_timeline([str(log)], speed=4)
    assert len(timeline.requests) == 2000
    report = hammer.run(replay_config(timeline, server.url, connections=16))
    check_invariant(report)
    assert report.counts.ok == 2000
    rows = {row["url"]: row for row in report.targets}
    assert set(rows) == {"/items/{n}?...", "/users/{n}?..."}
    assert rows["/items/{n}?..."]["ok"] == rows["/users/{n}?..."]["ok"] == 1000
    assert server.wait_stats(requests=2000)["requests"] == 2000
    assert any(n.startswith("replay: achieved speed") for n in report.notes)


def test_filters_window_max_gap_and_loop(tmp_path: Path) -> None:
    from hammer.replay import Filters

    log = tmp_path / "f.log"
    base = 1_764_600_000.0
    rows = [(0.0, "/a/1", 200), (1.0, "/b/2", 404), (2.0, "/a/3", 500),
            (600.0, "/a/4", 200), (601.0, "/static/x.css", 200)]
    log.write_text("".join(
        f'{base + t:.3f} 198.51.100.9 - - [30/Nov/2026:13:55:36 -0700] "GET {p} HTTP/1.1" '
        f'{st} 10 "-" "x"\n' for t, p, st in rows))
    only_a = build_timeline([str(log)], filters=Filters(include=re.compile(r"^/a/")))
    assert len(only_a.offsets_ns) == 3 and only_a.stats.skipped["path not included"] == 2
    ok_only = build_timeline([str(log)], filters=Filters(statuses=frozenset({"2xx"})))
    assert len(ok_only.offsets_ns) == 3 and ok_only.stats.skipped["status filtered"] == 2
    window = build_timeline([str(log)], filters=Filters(start_s=1.0, end_s=601.0))
    assert [window.requests[i][1] for i in window.targets] == ["/b/2", "/a/3", "/a/4"]
    assert window.stats.skipped["outside the time window"] == 2
    # a 598 s idle stretch cut to 5 s
    gap = build_timeline([str(log)], max_gap_s=5.0)
    assert list(gap.offsets_ns) == [0, 1_000_000_000, 2_000_000_000, 7_000_000_000,
                                    8_000_000_000]
    assert gap.stats.removed_idle_s == pytest.approx(593.0)
    looped = build_timeline([str(log)], max_gap_s=5.0, loops=3)
    assert len(looped.offsets_ns) == 15
    assert list(looped.offsets_ns) == sorted(looped.offsets_ns)
    assert [looped.requests[i][1] for i in looped.targets][5:7] == ["/a/1", "/b/2"]


def test_a_day_compressed_keeps_its_shape(tmp_path: Path) -> None:
    """A day of traffic with a daily curve (few at night, many in the afternoon), stamped
    to the second, replayed at 43,200x: two seconds whose every 100 ms holds what the
    original's 72 minutes held."""
    log = tmp_path / "day.log"
    lines = []
    for hour in range(24):
        n = 4 + (hour if hour <= 15 else 30 - hour) * 2      # 4 at midnight, 34 at 15:00
        for i in range(n):
            when = T0 + timedelta(hours=hour, seconds=i * 3600 // n)
            lines.append(combined(when, f"/d/{hour}/{i}"))
    log.write_text("".join(lines))
    timeline = build_timeline([str(log)], speed=43_200)
    total = len(lines)
    assert len(timeline.offsets_ns) == total
    windows = 20
    width = 100_000_000
    expected = [0] * windows
    for t in timeline.offsets_ns:
        expected[min(t // width, windows - 1)] += 1
    for _ in range(3):   # the shape may take up to three runs on a noisy VM (see above)
        with ArrivalServer() as server:
            report = hammer.run(replay_config(timeline, server.url, connections=16))
            deadline = time.monotonic() + 5
            while server.requests < total and time.monotonic() < deadline:
                time.sleep(0.01)
        check_invariant(report)
        assert report.counts.ok == total
        arrivals = sorted(server.arrivals_ns)
        assert len(arrivals) == total
        seen = arrivals_per_window(arrivals, arrivals[0] - 1_000_000, width, windows)
        assert sum(seen) == total
        if all(abs(a - b) <= 1 for a, b in zip(seen, expected, strict=True)):
            break
    assert all(abs(a - b) <= 1 for a, b in zip(seen, expected, strict=True)), (seen, expected)


def test_json_paths_that_cannot_be_a_request_target_are_malformed(tmp_path: Path) -> None:
    log = tmp_path / "odd.jsonl"
    rows = [{"msec": 1.0, "method": "GET", "uri": "/ok"},
            {"msec": 1.1, "method": "GET", "uri": "/a b"},
            {"msec": 1.2, "method": "GET", "uri": "/x\r\nHost: evil"},
            {"msec": 1.3, "method": "G T", "uri": "/m"},
            {"msec": 1.4, "method": "GET", "uri": "/caf\u00e9"}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    timeline = build_timeline([str(log)])
    assert timeline.stats.skipped["malformed"] == 3
    assert [p for _, p in timeline.requests] == ["/ok", "/caf\u00e9"]
    config = replay_config(timeline, "http://127.0.0.1:9/")
    assert config.requests_table[1].keep_alive.startswith(b"GET /caf%C3%A9 HTTP/1.1\r\n")


def test_keep_host_sends_the_logged_host(tmp_path: Path) -> None:
    log = tmp_path / "vhosts.log"
    log.write_text(
        json.dumps({"msec": 1.0, "method": "GET", "uri": "/a", "host": "shop.example"})
        + "\n"
        + 'blog.example:443 192.0.2.7 - - [30/Nov/2026:13:55:36 -0700] "GET /a HTTP/1.1" '
          '200 5 "-" "x"\n')
    kept = build_timeline([str(log)], keep_host=True)
    assert kept.hosts == ["shop.example", "blog.example:443"]
    config = replay_config(kept, "http://127.0.0.1:9/")
    first, second = (r.keep_alive for r in config.requests_table)
    assert b"\r\nHost: shop.example\r\n" in first
    assert b"\r\nHost: blog.example:443\r\n" in second
    plain = replay_config(build_timeline([str(log)]), "http://127.0.0.1:9/")
    assert len(plain.requests_table) == 1   # the same request, whatever its host
    assert b"\r\nHost: 127.0.0.1:9\r\n" in plain.requests_table[0].keep_alive


def test_body_dir_gives_unsafe_requests_their_bodies(target_server, tmp_path: Path) -> None:
    server = target_server()
    bodies = tmp_path / "bodies"
    (bodies / "POST" / "api").mkdir(parents=True)
    (bodies / "POST" / "api" / "orders").write_bytes(b'{"item": 42}')
    log = tmp_path / "w.jsonl"
    rows = [{"msec": 1.0 + i / 100, "method": m, "uri": u}
            for i, (m, u) in enumerate([("POST", "/api/orders?x=1"), ("POST", "/api/cart"),
                                        ("GET", "/api/orders"), ("POST", "/api/orders")])]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = subprocess.run(hammer_command("replay", str(log), "--target", server.url,
                                         "--allow-unsafe", "--body-dir", str(bodies),
                                         "--json", "-", "-q"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode in (exitcodes.OK, exitcodes.SATURATED), proc.stderr
    report = json.loads(proc.stdout)
    assert report["counts"]["ok"] == 4
    replay = report["hammer"]["replay"]
    assert replay["sent_with_body_from_body_dir"] == 2
    assert replay["sent_with_empty_body"] == 1
    stats = server.wait_stats(requests=4)
    assert stats["bytes_received"] == report["bytes"]["sent"]
    table = replay_config(build_timeline([str(log)], allow_unsafe=True), server.url,
                          body_dir=str(bodies)).requests_table
    orders = [r.keep_alive for r in table if r.method == "POST" and b"/api/orders" in
              r.keep_alive]
    assert orders and all(r.endswith(b'Content-Length: 12\r\n\r\n{"item": 42}')
                          for r in orders)
    cart = next(r.keep_alive for r in table if b"/api/cart" in r.keep_alive)
    assert cart.endswith(b"Content-Length: 0\r\n\r\n")
    proc = subprocess.run(hammer_command("replay", str(log), "--target", server.url,
                                         "--body-dir", str(tmp_path / "nope")),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == exitcodes.USAGE
    assert "--body-dir" in proc.stderr and "no such directory" in proc.stderr


def test_url_credentials_and_headers_reach_every_replayed_request(tmp_path: Path) -> None:
    import base64

    log = tmp_path / "c.log"
    write_bursty_log(log)
    config = replay_config(build_timeline([str(log)]), "http://u:p4ss@127.0.0.1:9/",
                           headers=("X-Replay: 1",))
    basic = "Basic " + base64.b64encode(b"u:p4ss").decode()
    assert all(f"\r\nAuthorization: {basic}\r\n".encode() in r.keep_alive
               and b"\r\nX-Replay: 1\r\n" in r.keep_alive for r in config.requests_table)
    assert config.target.url == "http://127.0.0.1:9/"
