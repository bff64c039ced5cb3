"""The README's promises that code can check: CI runs its test command word for word, and
its exit-code table lists every code hammer uses."""

from __future__ import annotations

import re
from pathlib import Path

from hammer import exitcodes

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _sh_blocks() -> list[str]:
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", README, re.S)]


def test_ci_runs_the_readme_test_command() -> None:
    install_and_run, install_and_test = _sh_blocks()[:2]
    assert install_and_run.endswith("pip install . && hammer run")
    assert install_and_test.endswith("make test")
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_and_test in ci_lines


def test_exit_code_table_lists_every_code() -> None:
    table = README[README.index("### Exit codes"):]
    table = table[:table.index("\n\n###")]
    listed = {int(code) for code in re.findall(r"^\| (\d+)(?: / (\d+))? \|", table, re.M)
              for code in code if code}
    codes = {value for name, value in vars(exitcodes).items() if name.isupper()}
    assert listed == codes
