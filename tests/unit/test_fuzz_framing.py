"""A short, deterministic run of the framing fuzz target (tests/fuzz/fuzz_framing.py).

A fixed seed and a fixed number of inputs make the run the same on every machine, so it
cannot fail in CI on a commit that passed here; `make fuzz` searches with fresh seeds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).parent.parent / "fuzz"


def test_fuzz_framing_briefly(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = subprocess.run(
        [sys.executable, str(FUZZ_DIR / "fuzz_framing.py"), "-seed=1", "-runs=100000",
         "-timeout=5", "-rss_limit_mb=1024", str(corpus), str(FUZZ_DIR / "corpus")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr
