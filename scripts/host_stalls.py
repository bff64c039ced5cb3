"""Run a command on a host that stalls: a real-time spinner on each CPU takes it for
SPIN every EVERY (each drawn from 0.5x-1.5x), as a busy VM host's steal does. Timing
assumptions in the tests show up here in one run rather than in one CI run of twenty.

    python3 scripts/host_stalls.py [--spin 25ms] [--every 400ms] -- COMMAND...

SCHED_FIFO needs root (or CAP_SYS_NICE). Exits with the command's exit code.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time


def _seconds(text: str) -> float:
    for suffix, scale in (("ms", 1e-3), ("us", 1e-6), ("s", 1.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def _spin_forever(cpu: int, spin_s: float, every_s: float) -> None:
    os.sched_setaffinity(0, {cpu})
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    rng = random.Random(cpu)
    while True:
        time.sleep(every_s * rng.uniform(0.5, 1.5))
        end = time.perf_counter() + spin_s * rng.uniform(0.5, 1.5)
        while time.perf_counter() < end:
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spin", default="25ms", help="mean length of a stall")
    parser.add_argument("--every", default="400ms", help="mean time between stalls")
    parser.add_argument("--spinner", type=int, help=argparse.SUPPRESS)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    spin_s, every_s = _seconds(args.spin), _seconds(args.every)
    if args.spinner is not None:
        _spin_forever(args.spinner, spin_s, every_s)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except PermissionError:
        print("host_stalls: SCHED_FIFO is not permitted here (needs root or CAP_SYS_NICE)",
              file=sys.stderr)
        return 2
    spinners = [subprocess.Popen([sys.executable, __file__, "--spin", args.spin,
                                  "--every", args.every, "--spinner", str(cpu)])
                for cpu in sorted(os.sched_getaffinity(0))]
    try:
        return subprocess.call(command)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


if __name__ == "__main__":
    sys.exit(main())
