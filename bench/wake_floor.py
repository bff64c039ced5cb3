"""The floor under an open-loop Python hammer's pacing: what waking the event loop costs
on this host, with nothing else done.

The driver of Python hammers sleeps in uvloop until a timerfd fires, at most once per
pacing quantum, and starts every slot due by then. This script does the wakes alone:
the same SlotTimer on the same loop, re-armed one quantum ahead at each wake, for the
given time, and prints one JSON line: wakes, wakes per second, and the CPU (user + sys,
this process's, from getrusage) per wake. bench/pyhammers.py runs it pinned beside the
hammers and states what the wakes alone cost per hit at each rate.

    python bench/wake_floor.py --quantum-us 250 --duration 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

import uvloop

from hammer import _core


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def wakes(quantum_ns: int, duration_s: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    timer = _core.SlotTimer()
    done: asyncio.Future[None] = loop.create_future()
    count = 0
    end_ns = time.monotonic_ns() + int(duration_s * 1e9)

    def on_timer() -> None:
        nonlocal count
        timer.clear()
        count += 1
        now = time.monotonic_ns()
        if now >= end_ns:
            done.set_result(None)
        else:
            timer.arm_at(now + quantum_ns)

    loop.add_reader(timer.fileno(), on_timer)
    cpu0, t0 = _cpu_s(), time.monotonic()
    timer.arm_at(time.monotonic_ns() + quantum_ns)
    await done
    cpu, wall = _cpu_s() - cpu0, time.monotonic() - t0
    loop.remove_reader(timer.fileno())
    timer.close()
    return {"quantum_us": quantum_ns / 1e3, "wakes": count, "wakes_per_s": count / wall,
            "cpu_s": cpu, "cpu_us_per_wake": cpu / count * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quantum-us", type=float, default=250.0)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds (default 3)")
    args = ap.parse_args()
    uvloop.install()
    print(json.dumps(asyncio.run(wakes(int(args.quantum_us * 1e3), args.duration))))


if __name__ == "__main__":
    main()
