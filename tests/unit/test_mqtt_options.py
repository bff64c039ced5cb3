"""The MQTT kind's options: the --e2e subscription filter, the stamp's room, --batch."""

from __future__ import annotations

import pytest

from hammer.errors import ConfigError
from hammer.mqtt import make_mqtt_config, subscription_filter, write_figures


@pytest.mark.parametrize(("topic", "expected"), [
    ("t", "t"),
    ("bench/{slot}", "bench/+"),
    ("{slot}", "+"),
    ("a/{slot}/b", "a/+/b"),
    ("site/dev-{slot}/temp", "site/+/temp"),   # the whole level: others count as foreign
])
def test_subscription_filter_covers_every_topic_of_the_template(topic: str,
                                                                  expected: str) -> None:
    assert subscription_filter(topic) == expected


def test_e2e_with_threads_shares_the_subscription() -> None:
    config = make_mqtt_config("mqtt://127.0.0.1:1883/a/{slot}", rate=10, e2e=True,
                              threads=2, connections=2, client_id_prefix="p")
    assert config.e2e_filter == "$share/p-e2e/a/+"
    assert make_mqtt_config("mqtt://127.0.0.1:1883/a", rate=10, e2e=True).e2e_filter == "a"
    assert make_mqtt_config("mqtt://127.0.0.1:1883/a", rate=10).e2e_filter is None


def test_e2e_needs_room_for_its_stamp() -> None:
    make_mqtt_config("mqtt://127.0.0.1:1883/a", rate=10, e2e=True, payload="x" * 24)
    with pytest.raises(ConfigError, match="the payload has 23"):
        make_mqtt_config("mqtt://127.0.0.1:1883/a", rate=10, e2e=True, payload="x" * 23)


def test_batch() -> None:
    assert make_mqtt_config("mqtt://127.0.0.1:1883/a", rate=10).batch == 0
    assert make_mqtt_config("mqtt://127.0.0.1:1883/a", rate=10, batch="auto").batch == 0
    assert make_mqtt_config("mqtt://127.0.0.1:1883/a", rate=10, batch=4).batch == 4
    with pytest.raises(ConfigError):
        make_mqtt_config("mqtt://127.0.0.1:1883/a", rate=10, batch=0)


def test_write_figures() -> None:
    assert write_figures(170, 4, 10) == {"max_packets_per_write": 170, "writes": 4,
                                         "packets": 10, "packets_per_write": 2.5}
    assert write_figures(1, 0, 0)["packets_per_write"] is None
