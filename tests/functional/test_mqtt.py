"""The MQTT kind against a real broker (mosquitto): a subscriber counts what the broker
delivered, and every test asserts exact equality with what hammer reports.

Tests that count every message on a few connections run a request budget (requests=N)
rather than a duration: in a host stall at the end of a duration, answers wait unread, the
connections look busy, and the slots still due are rightly counted unsent."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import hammer
from accounting import check_invariant
from hammer import exitcodes
from hammer.errors import ConfigError
from hammer.reporters import render_text
from mqttpeer import CountingBroker, Subscriber, sys_counter


@pytest.mark.parametrize(("qos", "done_at"), [(0, "written"), (1, "PUBACK"), (2, "PUBCOMP")])
def test_open_loop_publishes_exactly_and_the_broker_delivers_them(
        mosquitto: Any, qos: int, done_at: str) -> None:
    broker = mosquitto()
    with Subscriber(broker.port, "bench/#") as sub:
        report = hammer.run(f"{broker.url}/bench/{{slot}}", rate=500, requests=500,
                            qos=qos, connections=4)
        check_invariant(report)
        assert report.counts.scheduled == report.counts.ok == 500
        assert report.status == {done_at: 500}
        assert sub.wait_for(500) == 500
        # the topic template: one message on each slot's topic
        assert set(sub.topics) == {f"bench/{i}" for i in range(500)}
        data = report.to_dict()
        assert data["kind"] == "mqtt" and data["method"] == f"PUBLISH qos{qos}"
        assert data["hammer"]["done_at"].startswith(done_at)
        assert data["latency_ms"]["p50"] is not None


@pytest.mark.parametrize("qos", [1, 2])
def test_closed_loop_keeps_one_message_in_flight_per_connection(mosquitto: Any,
                                                                qos: int) -> None:
    broker = mosquitto()
    with Subscriber(broker.port, "closed") as sub:
        report = hammer.run(f"{broker.url}/closed", requests=3000, connections=3, qos=qos,
                            payload_size="1KiB")
        check_invariant(report)
        assert report.counts.ok == 3000 and report.counts.error == 0
        assert sub.wait_for(3000) == 3000
        assert report.bytes_sent > 3000 * 1024


def test_a_broker_that_refuses_the_session(mosquitto: Any) -> None:
    broker = mosquitto(anonymous=False)       # no password file: every CONNECT refused
    report = hammer.run(f"{broker.url}/t", rate=50, duration="1s", qos=1, connections=2)
    check_invariant(report)
    assert report.counts.ok == 0
    assert report.errors == {"refused": report.counts.scheduled}
    assert report.counts.scheduled == 50


def test_no_broker_is_connect_refused(unused_port: int) -> None:
    report = hammer.run(f"mqtt://127.0.0.1:{unused_port}/t", rate=20, duration="0.5s")
    check_invariant(report)
    assert report.errors == {"connect_refused": report.counts.scheduled}


def test_the_password_never_appears(mosquitto: Any) -> None:
    broker = mosquitto()
    report = hammer.run(f"mqtt://someone:pa55word-xyz@127.0.0.1:{broker.port}/t",
                        rate=20, duration="0.5s")
    text = json.dumps(report.to_dict())
    assert "pa55word-xyz" not in text
    assert report.to_dict()["target"] == f"mqtt://127.0.0.1:{broker.port}/t"
    assert report.counts.ok == 10


@pytest.mark.parametrize(("args", "message"), [
    (["-c", "2", "-n", "5", "--qos", "0"], "QoS 0 needs a rate (-r)"),
    (["-r", "10", "-m", "POST"], "--method is for HTTP, not an mqtt:// URL"),
    (["-r", "10", "--payload", "a", "--payload-size", "3"], "give one of --payload"),
    (["-r", "10", "--e2e", "--payload-size", "23"],
     "--e2e stamps the first 24 bytes of each payload: the payload has 23"),
    (["-r", "10", "--e2e", "--storm"], "--e2e measures published messages: not with --storm"),
    (["-r", "10", "--e2e-wait", "2s"], "--e2e-wait needs --e2e"),
    (["-r", "10", "--batch", "0"], "batch"),
    (["-r", "10", "--e2e", "--cluster", "local:2"], "--e2e subscribes in the publishing"),
    (["-r", "10", "--batch", "2", "--storm"], "--batch does not apply"),
])
def test_mqtt_usage_errors(args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "hammer", "run", "mqtt://127.0.0.1:9/t",
                           *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == exitcodes.USAGE
    assert message in done.stderr and done.stderr.count("\n") == 1


def test_mqtt_flags_need_an_mqtt_url() -> None:
    with pytest.raises(ConfigError, match="--qos is for mqtt:// URLs"):
        hammer.run("http://127.0.0.1:9/", qos=1)
    with pytest.raises(ConfigError, match="no topic"):
        hammer.run("mqtt://127.0.0.1:9", rate=1)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mqtt_5(mosquitto: Any, qos: int) -> None:
    broker = mosquitto()
    with Subscriber(broker.port, "five") as sub:
        report = hammer.run(f"{broker.url}/five", rate=300, duration="1s", qos=qos,
                            mqtt_version="5")
        check_invariant(report)
        # mosquitto acknowledges with reason code 0 (success) when someone subscribed
        assert report.counts.ok == 300 and report.status == {
            {0: "written", 1: "PUBACK", 2: "PUBCOMP"}[qos]: 300}
        assert report.to_dict()["hammer"]["protocol"] == "5"
        assert sub.wait_for(300) == 300


def test_mqtt_5_reason_code_without_subscribers_is_still_ok(mosquitto: Any) -> None:
    broker = mosquitto()
    report = hammer.run(f"{broker.url}/nobody", rate=100, duration="0.5s", qos=1,
                        mqtt_version="5")
    check_invariant(report)
    assert report.counts.ok == 50
    assert report.status == {"PUBACK 0x10 no matching subscribers": 50}


def test_sessions_end_with_disconnect(mosquitto: Any) -> None:
    broker = mosquitto()
    report = hammer.run(f"{broker.url}/bye", rate=100, duration="0.5s", qos=1,
                        connections=3, client_id_prefix="bye")
    assert report.counts.ok == 50
    assert _clean_disconnects(broker, 3) == ["bye-0-0", "bye-0-1", "bye-0-2"]


def _clean_disconnects(broker: Any, expected: int) -> list[str]:
    """The client ids mosquitto logged as ended by a DISCONNECT ("Client X
    disconnected."; a dropped connection is "Client X closed its connection." or
    "... disconnected, ..."), once there are `expected` of them (or 2.5 s passed)."""
    import time

    log = ""
    for _ in range(50):
        log = broker.log.read_text(errors="replace")
        if log.count("disconnected.") >= expected:
            break
        time.sleep(0.05)
    return sorted(line.split("Client ")[1].split(" ")[0] for line in log.splitlines()
                  if line.endswith(" disconnected."))


@pytest.mark.parametrize("qos", [1, 2])
def test_several_messages_in_flight_per_connection(mosquitto: Any, qos: int) -> None:
    """Closed loop with --inflight 8 on 2 connections: 16 in flight, every one answered,
    counted and delivered exactly."""
    broker = mosquitto()
    with Subscriber(broker.port, "window") as sub:
        report = hammer.run(f"{broker.url}/window", requests=4000, connections=2,
                            qos=qos, inflight=8)
        check_invariant(report)
        assert report.counts.ok == 4000 and report.counts.error == 0
        assert report.to_dict()["hammer"]["in_flight_per_connection"] == 8
        assert sub.wait_for(4000) == 4000


def test_an_open_loop_with_a_window(mosquitto: Any) -> None:
    broker = mosquitto()
    with Subscriber(broker.port, "w/#") as sub:
        report = hammer.run(f"{broker.url}/w/{{slot}}", rate=2000, requests=2000, qos=1,
                            inflight=4, connections=2)
        check_invariant(report)
        assert report.counts.ok == 2000
        assert sub.wait_for(2000) == 2000
        assert set(sub.topics) == {f"w/{i}" for i in range(2000)}


def test_receive_maximum_caps_the_window(mosquitto: Any) -> None:
    broker = mosquitto(max_inflight=2)     # mosquitto sends Receive Maximum 2 (MQTT 5)
    report = hammer.run(f"{broker.url}/cap", requests=500, connections=1, qos=1,
                        inflight=16, mqtt_version="5")
    check_invariant(report)
    assert report.counts.ok == 500
    assert ("the broker's Receive Maximum capped the messages in flight per connection "
            "at 2 (--inflight 16 asked)") in report.notes


def test_a_broker_gone_mid_run_leaves_every_message_accounted_for(mosquitto: Any) -> None:
    """The broker stops while messages wait for answers: each of them ends in an error,
    none is lost from the accounting."""
    import threading

    broker = mosquitto()
    threading.Timer(0.5, broker.stop).start()
    report = hammer.run(f"{broker.url}/gone", rate=2000, duration="1.5s", qos=1,
                        inflight=8, connections=2, timeout="1s")
    check_invariant(report)
    assert report.counts.scheduled == 3000
    assert 0 < report.counts.ok < 3000
    assert report.counts.error > 0


def _connected_ids(broker: Any) -> list[str]:
    """Client ids of the sessions the broker accepted, from its log."""
    return [line.split(" as ")[1].split(" ")[0]
            for line in broker.log.read_text(errors="replace").splitlines()
            if "New client connected" in line and " as " in line]


def test_a_connection_storm(mosquitto: Any) -> None:
    """Each request a new connection and session with its own client id, done at its
    CONNACK, then DISCONNECT: the broker saw exactly as many sessions, all distinct."""
    import time

    broker = mosquitto()
    report = hammer.run(f"{broker.url}/storm", rate=300, duration="1s", storm=True,
                        connections=8, client_id_prefix="st")
    check_invariant(report)
    assert report.counts.ok == report.counts.sent == 300
    assert report.status == {"CONNACK": 300}
    assert report.to_dict()["method"] == "CONNECT"
    deadline = time.monotonic() + 5
    while len(_connected_ids(broker)) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    ids = _connected_ids(broker)
    assert sorted(ids) == sorted(f"st-s-{i}" for i in range(300))
    log = broker.log.read_text(errors="replace")
    assert log.count(" disconnected.\n") == 300


def test_a_storm_against_a_refusing_broker_counts_each_refusal(mosquitto: Any) -> None:
    broker = mosquitto(anonymous=False)
    report = hammer.run(f"{broker.url}/storm", requests=50, connections=2, storm=True)
    check_invariant(report)
    assert report.counts.completed == 50 and report.counts.ok == 0
    assert report.status == {"CONNACK 0x05 not authorized": 50}


def test_keepalive_pings_keep_an_idle_session(mosquitto: Any) -> None:
    """A message every 4 s with --keepalive 1s: mosquitto drops a session silent for
    1.5 keep-alives (seen without PINGREQ: "has exceeded timeout"), so only PINGREQs in
    between keep it (and the connection) alive."""
    broker = mosquitto()
    report = hammer.run(f"{broker.url}/slow", rate="1/4s", duration="9s", qos=1,
                        connections=1, keepalive="1s", client_id_prefix="ka")
    check_invariant(report)
    assert report.counts.ok == 3 and report.counts.error == 0
    log = broker.log.read_text(errors="replace")
    assert "has exceeded timeout" not in log
    assert log.count("New client connected") == 1       # one session the whole run


def test_requests_waiting_for_a_reconnect_survive_a_broker_restart(mosquitto: Any) -> None:
    """Sessions dropped by a broker restart are reopened for the requests that come next:
    the CONNECT goes out apart from the PUBLISH already prepared for the connection (it
    once overwrote it, and the broker saw two CONNECTs)."""
    import threading

    broker = mosquitto()
    threading.Timer(1.0, broker.restart).start()
    report = hammer.run(f"{broker.url}/restart", rate=20, duration="3s", qos=1,
                        connections=2, timeout="1s")
    check_invariant(report)
    assert report.counts.scheduled == 60
    assert report.counts.error <= 8                   # those in flight at the restart
    assert report.counts.ok >= 52
    assert "multiple CONNECT" not in broker.log.read_text(errors="replace")


def _settle(count: Any, expected: int, timeout_s: float = 10.0) -> int:
    """count() once it reaches expected (or the timeout passes)."""
    import time

    deadline = time.monotonic() + timeout_s
    while count() < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return int(count())


def test_an_open_loop_takes_its_connections_in_turn() -> None:
    """-r is spread over every connection: one that wrote goes to the back of the idle
    list (with the hottest-first list of HTTP, one connection would take nearly all)."""
    with CountingBroker() as broker:
        report = hammer.run(f"{broker.url}/t", rate=2000, requests=2000, qos=1,
                            connections=4)
        check_invariant(report)
        assert report.counts.ok == 2000
        assert _settle(lambda: broker.total, 2000) == 2000
        assert len(broker.per_connection) == 4
        assert min(broker.per_connection) >= 2000 // 4 // 2, broker.per_connection
        assert not broker.errors


def test_a_write_carries_every_packet_due_and_batch_1_writes_each_alone(
        mosquitto: Any) -> None:
    broker = mosquitto()
    with Subscriber(broker.port, "w/#") as sub:
        # 10 messages due at each 1 ms wake: they go out together on one connection
        report = hammer.run(f"{broker.url}/w/a", rate=10000, duration="1s", qos=0,
                            connections=2, pacing="1ms")
        check_invariant(report)
        writes = report.to_dict()["hammer"]["writes"]
        assert report.counts.ok == writes["packets"] == 10000
        assert writes["packets_per_write"] >= 4, writes
        assert sub.wait_for(10000) == 10000
        report = hammer.run(f"{broker.url}/w/b", rate=10000, duration="1s", qos=0,
                            connections=2, pacing="1ms", batch=1)
        check_invariant(report)
        writes = report.to_dict()["hammer"]["writes"]
        assert report.counts.ok == writes["packets"] == writes["writes"] == 10000
        assert writes["max_packets_per_write"] == 1
        assert sub.wait_for(20000) == 20000
        assert sub.topics == {"w/a": 10000, "w/b": 10000}


@pytest.mark.parametrize("qos", [0, 1])
def test_writes_a_full_socket_takes_in_part_go_on_whole(qos: int) -> None:
    """A broker that stops reading for 0.5 s: the writes go out in part and resume when
    its socket drains; it parses every byte, and counts exactly what hammer reports."""
    with CountingBroker(stall_s=0.5) as broker:
        # 20 MB/s against socket buffers of a few MB
        report = hammer.run(f"{broker.url}/t", rate=10000, requests=20000, qos=qos,
                            connections=2, payload_size="2KiB", timeout="5s",
                            **({"inflight": 64} if qos else {}))
        check_invariant(report)
        assert (report.counts.ok, report.errors) == (20000, {})
        assert report.counts.late > 0          # the blocked connections made them wait
        assert _settle(lambda: broker.total, 20000) == 20000
        assert not broker.errors


def _e2e(report: Any) -> dict[str, Any]:
    e2e: dict[str, Any] = report.to_dict()["hammer"]["e2e"]
    return e2e


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_e2e_every_message_arrives_once_and_in_order(mosquitto: Any, qos: int) -> None:
    broker = mosquitto()
    # a request budget, not a duration: a host stall that holds the 4 connections' QoS 2
    # round trips makes slots wait (late), and none is left unsent when the second ends
    report = hammer.run(f"{broker.url}/e2e/{{slot}}", rate=1000, requests=1000, qos=qos,
                        connections=4, e2e=True)
    check_invariant(report)
    e2e = _e2e(report)
    assert report.counts.ok == 1000
    assert (e2e["received"], e2e["unique"], e2e["lost"], e2e["duplicates"],
            e2e["out_of_order"], e2e["foreign"]) == (1000, 1000, 0, 0, 0, 0)
    assert e2e["filter"] == "e2e/+"
    assert 0 < e2e["latency_ms"]["min"] <= e2e["latency_ms"]["p50"] <= e2e["latency_ms"]["max"]
    text = render_text(report.to_dict())
    assert "end to end" in text and "received 1,000   lost 0" in text


def test_e2e_with_threads_shares_one_subscription_between_their_subscribers(
        mosquitto: Any) -> None:
    broker = mosquitto()
    report = hammer.run(f"{broker.url}/e2e/{{slot}}", rate=2000, requests=2000, qos=1,
                        connections=4, threads=2, e2e=True, mqtt_version="5")
    check_invariant(report)
    e2e = _e2e(report)
    assert e2e["filter"].startswith("$share/") and e2e["filter"].endswith("/e2e/+")
    assert report.counts.ok == e2e["unique"] == e2e["received"] == 2000
    assert (e2e["lost"], e2e["duplicates"], e2e["out_of_order"]) == (0, 0, 0)


def test_e2e_in_a_closed_loop(mosquitto: Any) -> None:
    broker = mosquitto()
    report = hammer.run(f"{broker.url}/e2e", connections=2, duration="1s", qos=1,
                        inflight=4, e2e=True)
    check_invariant(report)
    e2e = _e2e(report)
    assert report.counts.ok > 1000
    assert e2e["unique"] == e2e["received"] == report.counts.ok
    assert (e2e["lost"], e2e["duplicates"], e2e["out_of_order"]) == (0, 0, 0)


@pytest.mark.parametrize("fault", ["drop_every", "duplicate_every", "swap"])
def test_e2e_counts_what_the_broker_lost_duplicated_or_reordered(fault: str) -> None:
    """A broker of our own that drops or duplicates each 10th message of a connection,
    or delivers each pair of them in reverse: hammer's counts equal the faults made."""
    with CountingBroker(**({"swap": True} if fault == "swap" else {fault: 10})) as broker:
        report = hammer.run(f"{broker.url}/e2e/{{slot}}", rate=1000, requests=1000,
                            qos=1, connections=2, e2e=True)
        check_invariant(report)
        assert report.counts.ok == broker.total == 1000
        e2e = _e2e(report)
        sent = broker.per_connection[:2]       # the publishers (the subscriber came last)
        if fault == "drop_every":
            expected = {"lost": sum(n // 10 for n in sent), "duplicates": 0,
                        "out_of_order": 0}
        elif fault == "duplicate_every":
            expected = {"lost": 0, "duplicates": sum(n // 10 for n in sent),
                        "out_of_order": 0}
        else:   # a lone last message of a connection is held back until its DISCONNECT
            expected = {"lost": sum(n % 2 for n in sent), "duplicates": 0,
                        "out_of_order": sum(n // 2 for n in sent)}
        assert {k: e2e[k] for k in expected} == expected
        assert e2e["unique"] == 1000 - expected["lost"]
        assert e2e["received"] == e2e["unique"] + expected["duplicates"]
        assert not broker.errors


def test_e2e_a_refused_subscription_stops_the_run_before_it_starts() -> None:
    with CountingBroker(refuse_subscribe=True) as broker:
        out = subprocess.run([sys.executable, "-m", "hammer", "run", f"{broker.url}/t",
                              "-r", "100", "-d", "1s", "--e2e"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == exitcodes.FAILED
        assert out.stderr.strip().splitlines() == [
            "hammer: error: --e2e: the subscriber could not subscribe to 't' "
            "(the broker refused it)"]
        assert broker.total == 0


def test_the_brokers_own_counter_settles_at_hammers_count(mosquitto: Any) -> None:
    """mosquitto's $SYS count of PUBLISH received (it lags, by up to its sys_interval and
    more) settles at exactly what hammer counted sent and acknowledged."""
    broker = mosquitto()
    report = hammer.run(f"{broker.url}/sys/{{slot}}", rate=500, requests=500, qos=1,
                        connections=4)
    check_invariant(report)
    assert report.counts.ok == report.counts.sent == 500
    assert sys_counter(broker.port, "$SYS/broker/publish/messages/received", 500) == 500


def test_a_scenario_runs_an_mqtt_workload_beside_an_http_one(
        mosquitto: Any, target_server: Any, tmp_path: Any) -> None:
    broker = mosquitto()
    server = target_server()
    scenario = tmp_path / "mixed.toml"
    scenario.write_text(
        'duration = "1s"\n'
        f'[scenarios.web]\nurl = "{server.url}"\nrate = 200\n'
        f'[scenarios.iot]\nurl = "{broker.url}/iot/{{slot}}"\nrate = 300\nqos = 2\n'
        'e2e = true\nconnections = 3\n')
    with Subscriber(broker.port, "iot/#") as sub:
        done = subprocess.run([sys.executable, "-m", "hammer", "run", "--scenario",
                               str(scenario), "--json", "-", "-q"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode in (exitcodes.OK, exitcodes.SATURATED), done.stderr
        data = json.loads(done.stdout)
        web, iot = data["workloads"]["web"], data["workloads"]["iot"]
        assert (web["kind"], iot["kind"]) == ("http", "mqtt")
        assert web["counts"]["ok"] == 200 and iot["counts"]["ok"] == 300
        assert iot["status"] == {"PUBCOMP": 300}
        assert iot["hammer"]["e2e"]["unique"] == 300 and iot["hammer"]["e2e"]["lost"] == 0
        assert data["counts"]["ok"] == 500
        assert server.wait_stats(requests=200)["responses"] == {"200": 200}
        assert sub.wait_for(300) == 300


def test_mqtts_verifies_the_broker_and_publishes_through_tls(mosquitto: Any,
                                                             test_pki: Any) -> None:
    broker = mosquitto(tls=(test_pki.server_cert, test_pki.server_key))
    with Subscriber(broker.port, "tls/#") as sub:
        report = hammer.run(f"mqtts://127.0.0.1:{broker.tls_port}/tls/{{slot}}", rate=300,
                            requests=300, qos=2, connections=2, cacert=test_pki.ca,
                            e2e=True)
        check_invariant(report)
        data = report.to_dict()
        assert report.counts.ok == 300 and data["tls"]["verified"] is True
        assert data["tls"]["handshakes"] >= 3              # two publishers, a subscriber
        assert data["hammer"]["e2e"]["unique"] == 300
        assert sub.wait_for(300) == 300


def test_mqtts_against_an_untrusted_broker_sends_nothing(mosquitto: Any,
                                                         test_pki: Any) -> None:
    broker = mosquitto(tls=(test_pki.untrusted_cert, test_pki.untrusted_key))
    with Subscriber(broker.port, "#") as sub:
        report = hammer.run(f"mqtts://127.0.0.1:{broker.tls_port}/t", rate=50,
                            duration="1s", qos=1, connections=2, cacert=test_pki.ca)
        check_invariant(report)
        assert report.counts.ok == 0 and report.counts.sent == 0
        assert set(report.errors) == {"tls"}
        assert sub.wait_for(1, timeout=1) == 0


def test_e2e_a_subscriber_gone_mid_run_is_said_and_what_it_missed_is_lost(
        mosquitto: Any) -> None:
    """A broker restart ends the subscriber's session (it is not reopened): the report
    says so, the publishers go on, and what was sent after it counts as lost."""
    import threading

    broker = mosquitto()
    threading.Timer(1.0, broker.restart).start()
    report = hammer.run(f"{broker.url}/e2e", rate=20, duration="3s", qos=1,
                        connections=2, timeout="1s", e2e=True)
    check_invariant(report)
    data = report.to_dict()
    e2e = data["hammer"]["e2e"]
    assert any("subscriber's session ended" in note for note in data["notes"])
    assert report.counts.ok >= 52 and e2e["lost"] >= 30
    # every message counted ok was either delivered or lost
    assert e2e["unique"] - e2e["unacknowledged"] + e2e["lost"] == report.counts.ok


def test_a_closed_loop_window_topped_up_a_batch_at_a_time(mosquitto: Any) -> None:
    """--inflight 8 --batch 2: each connection keeps 8 in flight, written at most 2 to a
    write; every message arrives, and every session still ends with DISCONNECT."""
    broker = mosquitto()
    with Subscriber(broker.port, "win/#") as sub:
        report = hammer.run(f"{broker.url}/win/{{slot}}", connections=2, duration="1s",
                            qos=1, inflight=8, batch=2, client_id_prefix="win")
        check_invariant(report)
        writes = report.to_dict()["hammer"]["writes"]
        assert report.counts.ok > 1000
        assert 1 <= writes["packets_per_write"] <= 2 and writes["max_packets_per_write"] == 2
        assert sub.wait_for(report.counts.ok) == report.counts.ok
        assert _clean_disconnects(broker, 2) == ["win-0-0", "win-0-1"]
