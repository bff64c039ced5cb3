"""The SPSC result ring: order, wrap-around, full, and two threads without the GIL."""

import threading

import pytest

from hammer import _core


def test_fifo_and_wraparound() -> None:
    ring = _core.ResultRing(8)
    expected: list[int] = []
    n = 0
    for _ in range(50):  # many laps around 8 slots
        for _ in range(5):
            assert ring.push(n)
            expected.append(n)
            n += 1
        assert ring.pop(3) == expected[:3]
        assert ring.pop(2) == expected[3:5]
        del expected[:5]
    assert ring.pop() == []


def test_full_refuses_and_recovers() -> None:
    ring = _core.ResultRing(4)
    assert all(ring.push(i) for i in range(4))
    assert not ring.push(99)
    assert ring.pop(1) == [0]
    assert ring.push(4)
    assert ring.pop() == [1, 2, 3, 4]
    assert ring.pop() == []


def test_capacity_must_be_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        _core.ResultRing(6)


def test_two_threads_no_loss_no_reorder() -> None:
    ring = _core.ResultRing(1024)
    count = 2_000_000
    result: dict[str, object] = {}

    def consume() -> None:
        result["seen"], result["in_order"] = ring.consume_nogil(count)

    consumer = threading.Thread(target=consume)
    consumer.start()
    ring.produce_nogil(count)  # spins while full: 1,024 slots for 2M results
    consumer.join(timeout=60)
    assert not consumer.is_alive()
    assert result == {"seen": count, "in_order": True}
