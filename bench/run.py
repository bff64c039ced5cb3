#!/usr/bin/env python3
"""Benchmark driver: hammer against its peers (wrk, wrk2, hey, ab, h2load) on nginx.

    python bench/run.py [--duration 10s] [--rounds 3] [--connections 64]
                        [--scenario NAME ...] [--client NAME ...]
                        [--wrk2 PATH | --wrk2-src DIR]
                        [--hammer-pythonpath DIR] [--baseline REF] [--json out.json]

The command line only: the driver is the package bench/hb (hb/cli.py has the flags and the
main loop; hb/__init__.py lists its parts). See bench/README.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hb.cli import main

if __name__ == "__main__":
    sys.exit(main())
