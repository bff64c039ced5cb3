"""The benchmark driver's parts (bench/run.py is its command line):

- procs: running a client pinned to a CPU, bounded, with its own rusage; CPU accounting
- build: hammer as of a git ref, bench/floor.c, wrk2 from source
- nginx: the private nginx and its stub_status
- clients: client names, command lines and output parsers
- scenarios: which clients each scenario runs, with which parameters
- runs: one run and its record; --help timing, fixed cost, calibration
- stats: per-client summaries over rounds, paired ratios
- report: the progress lines and the tables
- spacing: --spacing, the capture of open-loop runs on the loopback and its analysis
- cli: the flags and the main loop

Standard library plus hammer, and tests/servers.py (standard library only) for what the
tests do alike: free ports, finding nginx and its workers, stub_status, the test PKI.
"""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
# the tests' helpers for local servers (tests/ is not a package: its conftest does the same)
if str(BENCH.parent / "tests") not in sys.path:
    sys.path.insert(0, str(BENCH.parent / "tests"))
