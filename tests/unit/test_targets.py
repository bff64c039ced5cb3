"""Targets files in vegeta's http and json formats: parsing and clear errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

import hammer
from hammer.config import ConfigError
from hammer.targets import load_targets

HTTP_TARGETS = """\
# a comment
GET http://127.0.0.1:9/a?x=1
X-Account-ID: 8675309

DELETE http://127.0.0.1:9/b
Authorization: Token DEADBEEF
POST http://127.0.0.1:9/c
Content-Type: application/json
@body.json
"""


def test_http_format(tmp_path: Path) -> None:
    (tmp_path / "body.json").write_bytes(b'{"a": 1}')
    path = tmp_path / "targets.txt"
    path.write_text(HTTP_TARGETS)
    specs = load_targets(str(path))
    assert [(s.method, s.url) for s in specs] == [
        ("GET", "http://127.0.0.1:9/a?x=1"), ("DELETE", "http://127.0.0.1:9/b"),
        ("POST", "http://127.0.0.1:9/c")]
    assert specs[0].headers == ("X-Account-ID: 8675309",)
    assert specs[2].body == b'{"a": 1}'
    assert specs[1].where.endswith("targets.txt:5")


def test_json_format(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    lines = [
        {"method": "GET", "url": "http://127.0.0.1:9/a", "header": {"X-A": ["1", "2"]}},
        {"method": "PUT", "url": "http://127.0.0.1:9/b",
         "body": base64.b64encode(b"payload").decode()},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    specs = load_targets(str(path), "json")
    assert specs[0].headers == ("X-A: 1", "X-A: 2")
    assert specs[1].body == b"payload"


@pytest.mark.parametrize(("text", "fmt", "message"), [
    ("X-Header: before any request\n", "http", "t:1: expected 'METHOD URL'"),
    ("GET http://127.0.0.1:9/\nnot a header\n", "http", "t:2: expected a header"),
    ("GET http://127.0.0.1:9/\n@missing.bin\n", "http", "t:2: cannot read body file"),
    ('{"url": "http://127.0.0.1:9/"}\n{nope\n', "json", "t:2: invalid JSON"),
    ('{"url": 5}\n', "json", "t:1: 'method' and 'url' must be strings"),
    ('{"url": "http://127.0.0.1:9/", "body": "***"}\n', "json", "t:1: 'body' must be base64"),
    ("\n# only comments\n", "http", "holds no targets"),
])
def test_malformed_files_name_file_and_line(tmp_path: Path, text: str, fmt: str,
                                            message: str, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.chdir(tmp_path)
    Path("t").write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_targets("t", fmt)


def test_targets_share_one_host_and_port(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text("GET http://127.0.0.1:9/a\nGET http://127.0.0.1:10/b\n")
    with pytest.raises(ConfigError, match=r"/t:2: .*shares one host and port"):
        hammer.make_config(None, targets=str(path))


def test_bad_header_in_targets_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text("GET http://127.0.0.1:9/a\nContent-Length: 5\n")
    with pytest.raises(ConfigError, match=r"t:1: header 'Content-Length'"):
        hammer.make_config(None, targets=str(path))


def test_each_target_is_serialised_once_with_both_variants(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text("GET http://127.0.0.1:9/a\nHEAD http://127.0.0.1:9/b\nX-B: 1\n")
    config = hammer.make_config(None, targets=str(path), headers=["X-All: y"])
    a, b = config.requests_table
    assert a.keep_alive.startswith(b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
    assert b"X-All: y\r\n" in a.keep_alive and b"X-All: y\r\n" in b.keep_alive
    assert b"X-B: 1\r\n" in b.keep_alive and b"X-B" not in a.keep_alive
    assert b.is_head and not a.is_head
    assert a.closing == a.keep_alive.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    assert config.target.url == "http://127.0.0.1:9/a"
