"""Targets files in vegeta's two formats, so users can bring theirs.

http format (blank lines and `#` comments between targets are ignored):

    GET http://127.0.0.1:8080/path?q=1
    X-Account-ID: 8675309

    POST http://127.0.0.1:8080/things
    Content-Type: application/json
    @body.json                      (a body from a file, relative to the targets file)

json format: one object per line, with `method`, `url`, optional `header` (a map of
lists of values) and `body` (base64):

    {"method": "GET", "url": "http://127.0.0.1:8080/", "header": {"X-A": ["1"]}}
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hammer.errors import ConfigError

_REQUEST_LINE = re.compile(r"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s+(\S+)\s*$")
MAX_TARGETS = 2**32 - 1  # the core's Result.target is a uint32


@dataclass(frozen=True)
class TargetSpec:
    """One request as a targets file describes it (not yet validated or resolved)."""

    method: str
    url: str
    headers: tuple[str, ...]   # "Name: value" lines
    body: bytes
    where: str                 # "file:line", for error messages


def _read_text(path: str) -> tuple[str, Path]:
    if path == "-":
        return sys.stdin.read(), Path.cwd()
    try:
        return Path(path).read_text(encoding="utf-8"), Path(path).resolve().parent
    except OSError as exc:
        raise ConfigError(f"cannot read targets file {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"targets file {path!r} is not UTF-8 text") from None


@dataclass
class _Entry:
    """A target of the http format while its lines are read."""

    method: str
    url: str
    where: str
    headers: list[str] = field(default_factory=list)
    body: bytes = b""


def parse_http(text: str, name: str, base_dir: Path) -> list[TargetSpec]:
    specs: list[TargetSpec] = []
    current: _Entry | None = None

    def finish() -> None:
        if current is not None:
            specs.append(TargetSpec(method=current.method, url=current.url,
                                    headers=tuple(current.headers), body=current.body,
                                    where=current.where))

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{name}:{lineno}"
        if not line or line.startswith("#"):
            continue
        match = _REQUEST_LINE.match(line)
        if match and "://" in match.group(2):
            finish()
            current = _Entry(method=match.group(1), url=match.group(2), where=where)
            continue
        if current is None:
            raise ConfigError(f"{where}: expected 'METHOD URL', got {line[:60]!r}")
        if line.startswith("@"):
            body_path = base_dir / line[1:].strip()
            try:
                current.body = body_path.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"{where}: cannot read body file {str(body_path)!r}: {exc.strerror}"
                ) from None
            continue
        if ":" not in line:
            raise ConfigError(f"{where}: expected a header 'Name: value', a '@body' path or "
                              f"'METHOD URL', got {line[:60]!r}")
        current.headers.append(line)
    finish()
    return specs


def parse_json(text: str, name: str) -> list[TargetSpec]:
    specs = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{name}:{lineno}"
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: invalid JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{where}: expected a JSON object")
        method, url = obj.get("method", "GET"), obj.get("url")
        if not isinstance(method, str) or not isinstance(url, str):
            raise ConfigError(f"{where}: 'method' and 'url' must be strings")
        header = obj.get("header") or {}
        if not isinstance(header, dict):
            raise ConfigError(f"{where}: 'header' must map names to lists of values")
        headers: list[str] = []
        for key, values in header.items():
            values = values if isinstance(values, list) else [values]
            if not all(isinstance(v, str) for v in values):
                raise ConfigError(f"{where}: header {key!r} values must be strings")
            headers.extend(f"{key}: {v}" for v in values)
        body = obj.get("body") or ""
        try:
            body_bytes = base64.b64decode(body, validate=True) if body else b""
        except (binascii.Error, TypeError):
            raise ConfigError(f"{where}: 'body' must be base64") from None
        specs.append(TargetSpec(method, url, tuple(headers), body_bytes, where))
    return specs


def load_targets(path: str, fmt: str = "http") -> list[TargetSpec]:
    """Read a targets file (`-` = standard input) in vegeta's `http` or `json` format."""
    text, base_dir = _read_text(path)
    name = "<stdin>" if path == "-" else path
    if fmt == "http":
        specs = parse_http(text, name, base_dir)
    elif fmt == "json":
        specs = parse_json(text, name)
    else:
        raise ConfigError(f"unknown targets format {fmt!r} (use http or json)")
    if not specs:
        raise ConfigError(f"targets file {name!r} holds no targets")
    if len(specs) > MAX_TARGETS:
        raise ConfigError(f"targets file {name!r} holds {len(specs):,} targets "
                          f"(at most {MAX_TARGETS:,})")
    return specs
