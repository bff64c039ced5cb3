"""Scenario files: a run (or several workloads run together) described in JSON or TOML.

go-hammer's own files run unchanged:

    {"duration": 60, "tps": 1, "hammer": "HTTPHammer",
     "hammerConfig": {"method": "GET", "endpoint": "http://127.0.0.1:8080/",
                      "payload": "Hello World", "headers": {"content-type": "application/json"}}}

Beyond that, every `hammer run` option by its long name ("rate", "connections",
"max-requests-per-conn", "header", ...), "url", "hammer" (http, HTTPHammer or
module:Class) and "hammer-config" (a Python hammer's options). Several workloads run
concurrently under "scenarios" (a table of name -> workload, each with an optional
"start" offset), keys outside it being defaults for every workload. String values may
use ${NAME} for an environment variable; such values are secrets, redacted in every
output.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hammer import units
from hammer.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

GO_HAMMER_KEYS = {"duration": "duration", "tps": "rate", "hammer": "hammer",
                  "hammerConfig": "hammer_config"}
GO_HAMMER_HTTP_KEYS = {"endpoint": "url", "method": "method", "payload": "body",
                       "headers": "headers"}
EXTRA_KEYS = {"url": "url", "hammer-config": "hammer_config", "start": "start"}
# options of `hammer run` that describe the invocation, not a workload
NOT_IN_FILES = {"scenario", "json_path", "csv_path", "hlog_path", "quiet"}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MIN_SECRET_CHARS = 4


@dataclass
class Workload:
    """One workload of a scenario: options as `hammer.run()` takes them."""

    name: str
    options: dict[str, Any]
    start_ns: int = 0
    secrets: list[str] = field(default_factory=list)

    def run_options(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """This workload's options with command-line flags over them, for run()."""
        options = {**self.options, **overrides}
        if self.secrets:
            options["secrets"] = tuple(self.secrets)
        return options


def option_names() -> dict[str, str]:
    """Every `hammer run` option: long name (without dashes) -> parameter name."""
    from hammer.cli import run as run_command

    names = {}
    for param in run_command.params:
        if param.name is None or param.name in NOT_IN_FILES or param.name == "url":
            continue
        for opt in getattr(param, "opts", ()):
            if opt.startswith("--"):
                names[opt[2:]] = param.name
    return names


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read scenario {path}: {exc.strerror}") from None
    toml = path.endswith(".toml")
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if toml else json.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno} column {exc.colno}: invalid JSON: "
                          f"{exc.msg}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a scenario is a JSON object (or a TOML table)")
    return data


def _interpolate(value: Any, where: str, secrets: list[str]) -> Any:
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            secret = os.environ[name]
            if len(secret) >= MIN_SECRET_CHARS:
                secrets.append(secret)
            return secret
        return _ENV.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: _interpolate(v, f"{where}.{k}", secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, where, secrets) for v in value]
    return value


def _unknown(path: str, key: str, valid: Iterable[str]) -> ConfigError:
    near = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ConfigError(f"{path}: unknown key {key!r}{hint}")


def _workload_options(path: str, data: Mapping[str, Any], names: dict[str, str],
                      secrets: list[str], where: str) -> dict[str, Any]:
    """A workload's keys (go-hammer's and hammer's) as run() options."""
    options: dict[str, Any] = {}
    valid = [*names, *GO_HAMMER_KEYS, *EXTRA_KEYS]
    for key, raw in data.items():
        value = _interpolate(raw, f"{path}: {where}{key}", secrets)
        if key in GO_HAMMER_KEYS:
            name = GO_HAMMER_KEYS[key]
        elif key in EXTRA_KEYS:
            name = EXTRA_KEYS[key]
        elif key in names:
            name = names[key]
        else:
            raise _unknown(path, f"{where}{key}", valid)
        if name == "headers" and isinstance(value, str):
            value = [value]
        options[name] = value
    hammer = options.get("hammer")
    config = options.get("hammer_config")
    if config is not None and not isinstance(config, Mapping):
        raise ConfigError(f"{path}: {where}hammerConfig must be an object")
    if config is not None and hammer in (None, "http", "HTTPHammer"):
        # go-hammer's HTTP options become the HTTP kind's own
        options.pop("hammer_config")
        for key, value in config.items():
            if key not in GO_HAMMER_HTTP_KEYS:
                raise _unknown(path, f"{where}hammerConfig.{key}", GO_HAMMER_HTTP_KEYS)
            options[GO_HAMMER_HTTP_KEYS[key]] = value
    if hammer == "HTTPHammer":
        options["hammer"] = "http"
    return options


def load_scenarios(path: str) -> list[Workload]:
    """The workloads of a scenario file (one unless it has a "scenarios" table)."""
    data = _read(path)
    names = option_names()
    secrets: list[str] = []
    table = data.pop("scenarios", None)
    if table is None:
        options = _workload_options(path, data, names, secrets, "")
        start = options.pop("start", None)
        return [Workload(name="default", options=options, start_ns=_start_ns(path, start),
                         secrets=secrets)]
    if not isinstance(table, Mapping) or not table:
        raise ConfigError(f"{path}: 'scenarios' must be a table of name -> workload")
    defaults = _workload_options(path, data, names, secrets, "")
    workloads = []
    for name, body in table.items():
        if not isinstance(body, Mapping):
            raise ConfigError(f"{path}: scenarios.{name} must be an object")
        own: list[str] = []
        options = {**defaults, **_workload_options(path, body, names, own,
                                                   f"scenarios.{name}.")}
        start = options.pop("start", None)
        workloads.append(Workload(name=str(name), options=options,
                                  start_ns=_start_ns(path, start), secrets=secrets + own))
    return workloads


def _start_ns(path: str, value: Any) -> int:
    if value is None:
        return 0
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value * units.NS_PER_S)
        return units.parse_duration_ns(str(value), allow_zero=True)
    except ValueError as exc:
        raise ConfigError(f"{path}: start: {exc}") from None


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """A copy of a report (dicts, lists, strings) with every secret replaced."""
    secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
    if not secrets:
        return value

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            for secret in secrets:
                v = v.replace(secret, "<redacted>")
            return v
        if isinstance(v, Mapping):
            return {walk(k): walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        return v

    return walk(value)
