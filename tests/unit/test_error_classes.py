"""Error class names cannot drift: ERROR_NAMES follows the core's enum (ErrorClass) code
by code, and README.md's table lists exactly those names."""

from __future__ import annotations

import re
from pathlib import Path

from hammer import _core

README = Path(__file__).resolve().parents[2] / "README.md"


def test_error_names_follow_the_enum() -> None:
    members = {m.value: name for name, m in _core.ErrorClass.__members__.items()}
    assert _core.ERROR_NAMES[0] is None and members[0] == "ERR_NONE"
    count = _core.ErrorClass.ERR_COUNT.value
    assert len(_core.ERROR_NAMES) == count
    for code in range(1, count):
        assert members[code] == "ERR_" + _core.ERROR_NAMES[code].upper()


def test_readme_lists_every_error_class() -> None:
    text = README.read_text()
    section = text.split("### Error classes", 1)[1].split("\n#", 1)[0]
    listed: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            listed += re.findall(r"`([a-z_]+)`", line.split("|")[1])
    assert listed == list(_core.ERROR_NAMES[1:])
