"""The core's HTTP/1.1 response framer (``hammer._core.ResponseScanner``).

Where does a response end, under any segmentation of the byte stream: table tests of
valid and invalid responses, then a differential test against httptools (llhttp) over
hypothesis-generated (and mutated) responses, and a cross-check of valid ones with h11.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise

import h11
import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hammer._core import ResponseScanner

# Bytes placed after a response: a correct framer never consumes any of them.
TRAILING = b"HTTP/1.1 500 NOT-MINE\r\nContent-Length: 3\r\n\r\nxyz"
MAX_HEAD = 65536  # MAX_HEAD_BYTES in framing.pxi
MAX_LINE = 4096  # MAX_LINE_BYTES in framing.pxi
EVERY_SPLIT_LIMIT = 600  # split at every position only for responses up to this size


# --------------------------------------------------------------------------- driver


def scan(
    scanner: ResponseScanner, chunks: Iterable[bytes], *, eof: bool = True
) -> tuple[str, int, int]:
    """Feed ``chunks`` with the core's carry semantics.

    Returns (verdict, status, consumed_total): consumed_total is the stream offset where
    the response ended ("done") or how far the framer got. When the chunks run out while
    the verdict is still "more", the peer closing is simulated with eof() (if ``eof``):
    "done" when that completes a close-delimited body, else "more" (a truncated response).
    """
    carry = b""
    consumed = 0
    for chunk in chunks:
        buf = carry + chunk
        verdict, used = scanner.feed(buf)
        assert 0 <= used <= len(buf), (verdict, used, len(buf))
        if verdict != "more":
            return verdict, scanner.status, consumed + used
        consumed += used
        carry = buf[used:]
    if eof and scanner.eof():
        assert carry == b"", "a close-delimited body leaves nothing to carry"
        return "done", scanner.status, consumed
    return "more", scanner.status, consumed


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def split_at(data: bytes, points: Iterable[int]) -> list[bytes]:
    cuts = [0, *sorted(set(points)), len(data)]
    return [data[a:b] for a, b in pairwise(cuts)]


def segmentations(data: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """Whole, byte by byte, fixed-size pieces and (for short inputs) every 2-way split."""
    yield "whole", whole(data)
    if len(data) <= 20_000:
        yield "bytewise", bytewise(data)
    for size in (2, 3, 7, 64, 4093):
        if size < len(data) and len(data) // size <= 20_000:
            yield f"pieces{size}", pieces(data, size)
    if len(data) <= EVERY_SPLIT_LIMIT:
        for i in range(1, len(data)):
            yield f"split@{i}", split_at(data, [i])


# --------------------------------------------------------------------------- valid table


@dataclass(frozen=True)
class Valid:
    id: str
    data: bytes  # exactly one complete response (plus any 1xx before it)
    status: int
    keep_alive: bool
    head_request: bool = False
    close_delimited: bool = False  # complete only when the peer closes


def _chunked(*parts: bytes, te: bytes = b"chunked", version: bytes = b"1.1") -> bytes:
    head = b"HTTP/" + version + b" 200 OK\r\nTransfer-Encoding: " + te + b"\r\n\r\n"
    return head + b"".join(parts)


BIG = 100_000
VALID = [
    Valid("cl-0", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, True),
    Valid("cl-5", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, True),
    Valid(
        "cl-large",
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG
        + bytes(range(256)) * 390
        + b"z" * (BIG - 256 * 390),
        200,
        True,
    ),
    Valid(
        "cl-leading-zeros-ows",
        b"HTTP/1.1 201 Created\r\ncontent-length:\t 007 \r\n\r\n1234567",
        201,
        True,
    ),
    Valid("cl-no-reason", b"HTTP/1.1 404\r\nContent-Length: 2\r\n\r\nno", 404, True),
    Valid("cl-empty-reason", b"HTTP/1.1 500 \r\nContent-Length: 1\r\n\r\nx", 500, True),
    Valid(
        "cl-obs-text-value",
        b"HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\r\nX-B:\r\nContent-Length: 1\r\n\r\n!",
        200,
        True,
    ),
    Valid("chunked", _chunked(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), 200, True),
    Valid("chunked-empty", _chunked(b"0\r\n\r\n"), 200, True),
    Valid(
        "chunked-extensions",
        _chunked(b'5;name=val\r\nhello\r\n1;a;b="q;\\"x"\r\n!\r\n0;last=1\r\n\r\n'),
        200,
        True,
    ),
    Valid("chunked-ext-bws", _chunked(b"5 ;name=val\r\nhello\r\n0\t;x\r\n\r\n"), 200, True),
    Valid(
        "chunked-trailers",
        _chunked(b"3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nX-Other: b\r\n\r\n"),
        200,
        True,
    ),
    Valid(
        "chunked-hex-upper",
        _chunked(b"1F\r\n" + b"u" * 31 + b"\r\nA\r\n" + b"v" * 10 + b"\r\n0\r\n\r\n"),
        200,
        True,
    ),
    Valid(
        "chunked-hex-lower",
        _chunked(b"1f\r\n" + b"u" * 31 + b"\r\na\r\n" + b"v" * 10 + b"\r\n0\r\n\r\n"),
        200,
        True,
    ),
    Valid("chunked-hex-mixed", _chunked(b"aB\r\n" + b"m" * 0xAB + b"\r\n0\r\n\r\n"), 200, True),
    Valid("chunked-leading-zeros", _chunked(b"0005\r\nhello\r\n0000\r\n\r\n"), 200, True),
    Valid("chunked-data-looks-like-crlf", _chunked(b"4\r\n\r\n\r\n\r\n0\r\n\r\n"), 200, True),
    Valid("chunked-te-list", _chunked(b"2\r\nhi\r\n0\r\n\r\n", te=b"gzip, Chunked"), 200, True),
    Valid("chunked-http10", _chunked(b"2\r\nhi\r\n0\r\n\r\n", version=b"1.0"), 200, False),
    Valid(
        "close-delimited-http10",
        b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nsome body",
        200,
        False,
        close_delimited=True,
    ),
    Valid(
        "close-delimited-http11",
        b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        200,
        False,
        close_delimited=True,
    ),
    Valid(
        "close-delimited-empty",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
        200,
        False,
        close_delimited=True,
    ),
    Valid(
        "close-delimited-http10-keepalive-ignored",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nbody",
        200,
        False,
        close_delimited=True,
    ),
    Valid(
        "close-delimited-te-not-chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        200,
        False,
        close_delimited=True,
    ),
    Valid("head-cl", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200, True, head_request=True),
    Valid(
        "head-chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        200,
        True,
        head_request=True,
    ),
    Valid("head-no-length", b"HTTP/1.1 200 OK\r\n\r\n", 200, True, head_request=True),
    Valid("204", b"HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n", 204, True),
    Valid("204-with-cl", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 204, True),
    Valid("304", b'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\n\r\n', 304, True),
    Valid("304-with-cl", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n", 304, True),
    Valid(
        "100-and-103-before-200",
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        200,
        True,
    ),
    Valid(
        "100-before-chunked",
        b"HTTP/1.1 100 Continue\r\n\r\n" + _chunked(b"2\r\nok\r\n0\r\n\r\n"),
        200,
        True,
    ),
    Valid(
        "101-switching",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        101,
        False,
    ),
    Valid(
        "connection-close",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
        200,
        False,
    ),
    Valid(
        "connection-close-in-list",
        b"HTTP/1.1 200 OK\r\nConnection: foo ,CLOSE\r\nContent-Length: 0\r\n\r\n",
        200,
        False,
    ),
    Valid(
        "connection-closed-not-a-token",
        b"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n",
        200,
        True,
    ),
    Valid("http10-cl-no-keepalive", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", 200, False),
    Valid(
        "http10-keepalive",
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nhi",
        200,
        True,
    ),
    Valid(
        "http10-keepalive-and-close",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\nhi",
        200,
        False,
    ),
    Valid(
        "http10-204-keepalive",
        b"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n",
        204,
        True,
    ),
]


def _check_valid(case: Valid, name: str, chunks: list[bytes]) -> None:
    scanner = ResponseScanner(head_request=case.head_request)
    if case.close_delimited:
        got = scan(scanner, chunks, eof=False)
        assert got == ("more", case.status, len(case.data)), name
        assert not scanner.in_head, name
        assert scanner.eof(), name
        assert not scanner.keep_alive, name
        return
    got = scan(scanner, chunks)
    assert got == ("done", case.status, len(case.data)), name
    assert scanner.keep_alive is case.keep_alive, name


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_valid_response(case: Valid) -> None:
    # After a delimited response, extra bytes prove `used` stops exactly at its end.
    stream = case.data if case.close_delimited else case.data + TRAILING
    for name, chunks in segmentations(stream):
        _check_valid(case, name, chunks)


def test_close_delimited_through_driver() -> None:
    data = b"HTTP/1.0 200 OK\r\n\r\nabc"
    assert scan(ResponseScanner(), [data]) == ("done", 200, len(data))
    assert scan(ResponseScanner(), [data], eof=False) == ("more", 200, len(data))


def test_huge_content_length_accepted_then_truncated() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n"
    scanner = ResponseScanner()
    assert scan(scanner, [head, b"x" * 1000], eof=False) == ("more", 200, len(head) + 1000)
    assert not scanner.eof()


def test_done_scanner_consumes_nothing_more() -> None:
    scanner = ResponseScanner()
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert scanner.feed(data + b"junk") == ("done", len(data))
    assert scanner.feed(b"junk") == ("done", 0)
    scanner.reset()
    assert scanner.in_head
    assert scanner.feed(data) == ("done", len(data))


def test_status_and_in_head_progress() -> None:
    scanner = ResponseScanner()
    assert scanner.feed(b"HTTP/1.1 200 OK\r\nContent-") == ("more", 0)
    assert scanner.in_head
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"
    assert scanner.feed(data) == ("more", len(data))
    assert not scanner.in_head
    assert scanner.status == 200
    assert not scanner.eof()  # the body is length-delimited: closing now truncates it


def test_head_block_exactly_at_limit() -> None:
    data = _big_head(MAX_HEAD)
    for chunks in (whole(data + TRAILING), pieces(data + TRAILING, 1000)):
        assert scan(ResponseScanner(), chunks) == ("done", 200, MAX_HEAD)


# --------------------------------------------------------------------------- invalid table


@dataclass(frozen=True)
class Invalid:
    id: str
    data: bytes
    verdict: str = "protocol_error"


def _head(*lines: bytes, status: bytes = b"HTTP/1.1 200 OK") -> bytes:
    return status + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


CL0 = b"Content-Length: 0"
INVALID = [
    Invalid("http2", _head(CL0, status=b"HTTP/2 200 OK")),
    Invalid("http2.0", _head(CL0, status=b"HTTP/2.0 200 OK")),
    Invalid("httx", _head(CL0, status=b"HTTX/1.1 200 OK")),
    Invalid("lowercase-http", _head(CL0, status=b"http/1.1 200 OK")),
    Invalid("version-letter", _head(CL0, status=b"HTTP/1.x 200 OK")),
    Invalid("status-2-digits", _head(CL0, status=b"HTTP/1.1 20 OK")),
    Invalid("status-2-digits-no-reason", _head(CL0, status=b"HTTP/1.1 20")),
    Invalid("status-4-digits", _head(CL0, status=b"HTTP/1.1 2000 OK")),
    Invalid("status-below-100", _head(CL0, status=b"HTTP/1.1 099 OK")),
    Invalid("status-not-digits", _head(CL0, status=b"HTTP/1.1 2x0 OK")),
    Invalid("status-double-space", _head(CL0, status=b"HTTP/1.1  200 OK")),
    Invalid("status-line-only", b"HTTP/1.1\r\n\r\n"),
    Invalid("status-line-bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
    Invalid("status-line-bare-cr", _head(CL0, status=b"HTTP/1.1 200 O\rK")),
    Invalid("status-line-nul", _head(CL0, status=b"HTTP/1.1 200 O\x00K")),
    Invalid("header-bare-lf", b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n"),
    Invalid("header-lf-only-block", b"HTTP/1.1 200 OK\r\nX: y\n\nContent-Length: 0\r\n\r\n"),
    Invalid("header-without-colon", _head(b"X-Foo bar", CL0)),
    Invalid("header-empty-name", _head(b": bar", CL0)),
    Invalid("space-before-colon", _head(b"Content-Length : 0")),
    Invalid("tab-before-colon", _head(b"X-A\t: b", CL0)),
    Invalid("name-not-token", _head(b"X(a): b", CL0)),
    Invalid("obs-fold", _head(b"X-A: b", b"  continued", CL0)),
    Invalid("obs-fold-tab", _head(CL0, b"X-A: b", b"\tcontinued")),
    Invalid("value-bare-cr", _head(b"X-A: b\rc", CL0)),
    Invalid("value-nul", _head(b"X-A: b\x00c", CL0)),
    Invalid("cl-not-numeric", _head(b"Content-Length: abc")),
    Invalid("cl-trailing-junk", _head(b"Content-Length: 5a") + b"hello"),
    Invalid("cl-negative", _head(b"Content-Length: -5")),
    Invalid("cl-plus", _head(b"Content-Length: +5") + b"hello"),
    Invalid("cl-hex", _head(b"Content-Length: 0x5") + b"hello"),
    Invalid("cl-empty", _head(b"Content-Length:")),
    Invalid("cl-inner-space", _head(b"Content-Length: 1 2")),
    Invalid("cl-two-values", _head(b"Content-Length: 5", b"Content-Length: 6") + b"hello!"),
    Invalid("cl-same-value-twice", _head(b"Content-Length: 5", b"content-length: 5") + b"hello"),
    Invalid("cl-list", _head(b"Content-Length: 5, 5") + b"hello"),
    Invalid("cl-overflow", _head(b"Content-Length: 99999999999999999999999999")),
    Invalid(
        "cl-and-te",
        _head(b"Content-Length: 5", b"Transfer-Encoding: chunked") + b"5\r\nhello\r\n0\r\n\r\n",
    ),
    Invalid(
        "te-and-cl",
        _head(b"Transfer-Encoding: chunked", b"Content-Length: 5") + b"5\r\nhello\r\n0\r\n\r\n",
    ),
    Invalid(
        "te-identity-and-cl", _head(b"Transfer-Encoding: identity", b"Content-Length: 5") + b"hello"
    ),
    Invalid("chunk-size-zz", _chunked(b"zz\r\nhello\r\n0\r\n\r\n")),
    Invalid("chunk-size-empty", _chunked(b"\r\nhello\r\n0\r\n\r\n")),
    Invalid("chunk-size-0x", _chunked(b"0x5\r\nhello\r\n0\r\n\r\n")),
    Invalid("chunk-size-negative", _chunked(b"-5\r\nhello\r\n0\r\n\r\n")),
    Invalid("chunk-size-trailing-junk", _chunked(b"5g\r\nhello\r\n0\r\n\r\n")),
    Invalid("chunk-size-inner-space", _chunked(b"5 5\r\nhello\r\n0\r\n\r\n")),
    Invalid("chunk-ext-without-size", _chunked(b";a=b\r\nhello\r\n0\r\n\r\n")),
    Invalid("chunk-size-overflow", _chunked(b"F" * 20 + b"\r\nhello\r\n0\r\n\r\n")),
    Invalid("chunk-size-bare-lf", _chunked(b"5\nhello\r\n0\r\n\r\n")),
    Invalid("chunk-data-no-crlf", _chunked(b"5\r\nhelloXX0\r\n\r\n")),
    Invalid("chunk-data-too-long", _chunked(b"5\r\nhello!\r\n0\r\n\r\n")),
    Invalid("chunk-data-bare-lf", _chunked(b"5\r\nhello\n0\r\n\r\n")),
    Invalid("chunk-size-line-too-long", _chunked(b"5;x=" + b"e" * (MAX_LINE + 10))),
    Invalid("trailer-bare-lf", _chunked(b"0\r\nX-T: 1\n\r\n")),
    Invalid("last-chunk-bare-lf", _chunked(b"0\r\n\n")),
]


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_invalid_response(case: Invalid) -> None:
    for name, chunks in segmentations(case.data + TRAILING):
        verdict, _, _ = scan(ResponseScanner(), chunks)
        assert verdict == case.verdict, name


def test_lf_only_head_is_a_protocol_error() -> None:
    # A head block ended by bare LFs is refused as soon as the blank line shows, however
    # the bytes arrive: it is never taken as a response, and never waited on forever.
    data = b"HTTP/1.1 200 OK\nContent-Length: 0\n\n"
    for name, chunks in segmentations(data):
        verdict, _, _ = scan(ResponseScanner(), chunks)
        assert verdict == "protocol_error", name


def _big_head(size: int, *, terminated: bool = True) -> bytes:
    """A header block of exactly ``size`` bytes (or its first size - 2 unterminated)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Big: \r\n\r\n"
    head = head.replace(b"X-Big: ", b"X-Big: " + b"b" * (size - len(head)))
    assert len(head) == size
    return head if terminated else head[:-2]


TOO_LARGE = {
    "by-one-byte": _big_head(MAX_HEAD + 1),
    "one-field": _big_head(2 * MAX_HEAD),
    "unterminated": _big_head(MAX_HEAD + 3, terminated=False),
    "many-fields": b"HTTP/1.1 200 OK\r\n" + b"X-Many: header\r\n" * 5000 + b"\r\n",
    "after-100": b"HTTP/1.1 100 Continue\r\n\r\n" + _big_head(MAX_HEAD + 1),
    "trailers": _chunked(b"0\r\n" + (b"X-Trailer: " + b"t" * 4000 + b"\r\n") * 17 + b"\r\n"),
}


@pytest.mark.parametrize("data", TOO_LARGE.values(), ids=TOO_LARGE.keys())
def test_headers_too_large(data: bytes) -> None:
    for chunks in (whole(data + TRAILING), pieces(data, 1000), pieces(data, 4093)):
        verdict, _, _ = scan(ResponseScanner(), chunks)
        assert verdict == "headers_too_large"


TRUNCATED = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 20",
    b"",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n",
    _chunked(b""),
    _chunked(b"5\r\nhel"),
    _chunked(b"5\r\nhello"),
    _chunked(b"5\r\nhello\r"),
    _chunked(b"5\r\nhello\r\n"),
    _chunked(b"5\r\nhello\r\n0"),
    _chunked(b"5\r\nhello\r\n0\r\n"),
    _chunked(b"5\r\nhello\r\n0\r\nX-T: 1\r\n"),
    _chunked(b"5;ext=1"),
]


@pytest.mark.parametrize("data", TRUNCATED, ids=lambda d: repr(d[-24:]))
def test_truncated_is_more_then_not_complete_at_eof(data: bytes) -> None:
    for name, chunks in segmentations(data):
        scanner = ResponseScanner()
        verdict, _, consumed = scan(scanner, chunks, eof=False)
        assert verdict == "more", name
        assert consumed <= len(data), name
        assert not scanner.eof(), name


# A chunk-size line (with extensions) or a trailer line longer than MAX_LINE_BYTES gets
# the same verdict whether it arrives in one read or split across several.
LONG_LINES = [
    _chunked(b"5;x=" + b"e" * 5000 + b"\r\nhello\r\n0\r\n\r\n"),
    _chunked(b"0\r\nX-T: " + b"t" * 5000 + b"\r\n\r\n"),
]


@pytest.mark.parametrize("data", LONG_LINES, ids=["chunk-ext", "trailer"])
def test_long_line_verdict_independent_of_segmentation(data: bytes) -> None:
    expected = scan(ResponseScanner(), [data + TRAILING])
    assert expected[0] == "protocol_error"
    assert scan(ResponseScanner(), pieces(data + TRAILING, 1000)) == expected


# The list separator of Transfer-Encoding is the comma (RFC 9112 6.1/6.3): the malformed
# single coding "gzip chunked" (or "gzip<TAB>chunked", "x;a= chunked") is not a list
# ending in chunked, so the body is read until close, as llhttp does.
@pytest.mark.parametrize("te", [b"gzip chunked", b"gzip\tchunked", b"x;a= chunked"])
def test_transfer_encoding_list_is_comma_separated(te: bytes) -> None:
    data = _chunked(b"0\r\n\r\n", te=te)
    assert reference(data).verdict == "more"  # llhttp: close-delimited
    verdict, _, _ = scan(ResponseScanner(), [data], eof=False)
    assert verdict in ("more", "protocol_error")


# --------------------------------------------------------------------------- differential


@dataclass(frozen=True)
class Outcome:
    verdict: str  # "done", "more" (incl. waiting for EOF) or "error"
    status: int
    consumed: int
    keep_alive: bool | None = None
    detail: str = ""
    in_head: bool = False


class _Final:
    """httptools protocol: the status and keep-alive of the first final response."""

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = None
        self.final: tuple[int, bool] | None = None

    def on_message_complete(self) -> None:
        assert self.parser is not None
        code = self.parser.get_status_code()
        if self.final is None and not 100 <= code < 200:  # 1xx: interim, skipped
            self.final = (code, self.parser.should_keep_alive())


def _llhttp(data: bytes) -> Outcome:
    """httptools (llhttp) on ``data`` in one feed; "consumed" is not pinned down here."""
    proto = _Final()
    proto.parser = parser = httptools.HttpResponseParser(proto)
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        return Outcome("done", parser.get_status_code(), 0, None, "upgrade")
    except httptools.HttpParserError as exc:
        if proto.final:  # bytes after the response are not its business
            return Outcome("done", proto.final[0], 0, proto.final[1])
        if "Pause on CONNECT/Upgrade" in str(exc):  # a 101 without Upgrade header
            return Outcome("done", parser.get_status_code(), 0, None, "upgrade")
        return Outcome("error", parser.get_status_code(), 0, None, str(exc))
    if proto.final:
        return Outcome("done", proto.final[0], 0, proto.final[1])
    return Outcome("more", parser.get_status_code(), 0)


def reference(data: bytes) -> Outcome:
    """What httptools (llhttp) makes of ``data``.

    The offset is pinned by bisection over prefixes (llhttp is a streaming parser: once a
    prefix completes or fails, every longer one does the same at the same byte): "done"
    at the shortest complete prefix, "error" at the index of the refused byte.
    1xx interim responses complete a message of their own in llhttp; like the core, skip
    them: the first final response decides. httptools cannot be told a response answers a
    HEAD request (on_headers_complete's return value is ignored), so HEAD stays out of
    the differential, and it has no EOF signal, so a close-delimited body shows up as a
    message never complete ("more").
    """
    outcome = _llhttp(data)
    if outcome.verdict == "more":
        return Outcome("more", outcome.status, len(data))
    lo, hi = 1, len(data)  # the shortest decisive prefix is in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if _llhttp(data[:mid]).verdict == "more":
            lo = mid + 1
        else:
            hi = mid
    outcome = _llhttp(data[:lo])
    consumed = lo if outcome.verdict == "done" else lo - 1
    return Outcome(outcome.verdict, outcome.status, consumed, outcome.keep_alive, outcome.detail)


def ours(data: bytes, cuts: Sequence[int]) -> tuple[Outcome, ResponseScanner]:
    scanner = ResponseScanner()
    verdict, status, consumed = scan(scanner, split_at(data, cuts), eof=False)
    keep = scanner.keep_alive if verdict == "done" else None
    if verdict in ("protocol_error", "headers_too_large"):
        verdict = "error"
    return Outcome(verdict, status, consumed, keep, in_head=scanner.in_head), scanner


TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
VCHAR = "".join(chr(c) for c in range(0x21, 0x7F))
SPECIAL = {"content-length", "transfer-encoding", "connection", "proxy-connection", "upgrade"}

tokens = st.text(TOKEN, min_size=1, max_size=10)
field_names = tokens.filter(lambda s: s.lower() not in SPECIAL)
field_values = st.text(VCHAR + " \t", max_size=16).map(str.strip)
fields = st.lists(st.tuples(field_names, field_values), max_size=4)


@st.composite
def chunk_ext(draw: st.DrawFn) -> bytes:
    exts = []
    for _ in range(draw(st.integers(0, 2))):
        name = draw(tokens)
        value = draw(
            st.one_of(
                st.none(),
                tokens,
                st.text(string.ascii_letters + " ;=", max_size=6).map('"{}"'.format),
            )
        )
        exts.append(";" + name + ("" if value is None else "=" + value))
    return "".join(exts).encode()


@st.composite
def chunk_size(draw: st.DrawFn, size: int) -> bytes:
    digits = f"{size:X}" if draw(st.booleans()) else f"{size:x}"
    return ("0" * draw(st.integers(0, 2)) + digits).encode()


@dataclass(frozen=True)
class Generated:
    data: bytes  # the response followed by unrelated bytes (unless close-delimited)
    length: int  # where the response ends
    head_length: int
    status: int
    framing: str  # "cl", "chunked", "close" or "none" (204/304)
    keep_alive: bool


def _encode_fields(items: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(f"{n}: {v}\r\n".encode() for n, v in items)


@st.composite
def responses(draw: st.DrawFn) -> Generated:
    status = draw(st.one_of(st.integers(200, 599), st.sampled_from([204, 304])))
    minor = draw(st.sampled_from([0, 1, 1]))
    reason = draw(st.one_of(st.none(), st.text(string.ascii_letters + " ", max_size=12)))
    items = draw(fields)
    conn = draw(st.sampled_from([None, "close", "keep-alive", "Keep-Alive", "x, close"]))
    if conn is not None:
        items.insert(draw(st.integers(0, len(items))), ("Connection", conn))
    body = draw(st.binary(max_size=120))
    framing = draw(st.sampled_from(["cl", "chunked", "close"]))
    if status in (204, 304):
        framing, body = "none", b""
    encoded = b""
    if framing == "cl":
        items.insert(draw(st.integers(0, len(items))), ("Content-Length", str(len(body))))
        encoded = body
    elif framing == "chunked":
        items.insert(draw(st.integers(0, len(items))), ("Transfer-Encoding", "chunked"))
        cuts = draw(st.lists(st.integers(0, len(body)), max_size=4))
        parts = [p for p in split_at(body, cuts) if p]
        for part in parts:
            encoded += draw(chunk_size(len(part))) + draw(chunk_ext()) + b"\r\n" + part + b"\r\n"
        encoded += draw(chunk_size(0)) + draw(chunk_ext()) + b"\r\n"
        encoded += _encode_fields(draw(fields)) + b"\r\n"
    elif framing == "close":
        encoded = body
    status_line = f"HTTP/1.{minor} {status}" + ("" if reason is None else " " + reason)
    head = status_line.encode() + b"\r\n" + _encode_fields(items) + b"\r\n"
    if draw(st.booleans()):
        head = b"HTTP/1.1 100 Continue\r\n\r\n" + head
    response = head + encoded
    if minor == 0:
        keep = conn is not None and "keep-alive" in conn.lower() and "close" not in conn
    else:
        keep = conn is None or "close" not in conn
    if framing == "close":
        keep = False
    trailing = b"" if framing == "close" else draw(st.binary(max_size=16))
    return Generated(response + trailing, len(response), len(head), status, framing, keep)


MUTATION_BYTES = st.one_of(
    st.sampled_from(list(b"\r\n \t:;,0159aAzZ-\x00\x7f\x80")), st.integers(0, 255)
)
MUTATION_LINES = st.sampled_from(
    [
        b"Content-Length: 3",
        b"Content-Length: 0",
        b"content-length: 3, 3",
        b"Content-Length: -1",
        b"Transfer-Encoding: chunked",
        b"Transfer-Encoding: gzip",
        b"transfer-encoding: gzip, chunked",
        b"Connection: close",
        b" folded",
        b"X:y",
        b"Bad Name: v",
        b"HTTP/1.1 100 Continue\r\n",
    ]
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    gen = draw(responses())
    data = bytearray(gen.data)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "line"]))
        at = draw(st.integers(0, max(0, gen.head_length - 1)))
        if op == "line":  # a whole header line, at a line start
            at = data.find(b"\n", at) + 1
            if 0 < at <= gen.head_length:
                data[at:at] = draw(MUTATION_LINES) + b"\r\n"
        elif op == "flip" and at < len(data):
            data[at] = draw(MUTATION_BYTES)
        elif op == "insert":
            data.insert(at, draw(MUTATION_BYTES))
        elif at < len(data):
            del data[at]
    return bytes(data)


def defensible(data: bytes, mine: Outcome, ref: Outcome) -> str | None:
    """Why a disagreement on a mutated input is the core being right (RFC 9112/9110).

    Each category is recognised from the input, not only from the outcomes: ``seen`` is
    what llhttp had read when it refused, ``judged`` what the core had when it refused.
    """
    seen = data[: ref.consumed + 1]
    judged = data[: mine.consumed]
    if mine.verdict == "error":
        # a refusal leaves `consumed` at the start of the head it refused: the core had
        # that head through its CRLFCRLF (an interim 1xx head too)
        end = data.find(b"\r\n\r\n", mine.consumed)
        if end >= 0:
            judged = data[: end + 4]
    # Design: a header block is judged once its CRLFCRLF has arrived (until then it is
    # carried, up to 64 KiB). A mutation that breaks the terminator (e.g. a bare LF, which
    # RFC 9112 2.2 lets a recipient reject) leaves us waiting where llhttp, validating
    # as it goes, already refuses; the core then reports truncated headers or a timeout
    # rather than a protocol error, and never frames a wrong response.
    if ref.verdict == "error" and mine.verdict == "more" and mine.in_head:
        return "head-not-terminated"
    # Likewise a chunk-size line is judged once its LF has arrived (or it passes 4 KiB);
    # llhttp refuses the first byte that is not a hex digit.
    if (
        "in chunk size" in ref.detail
        and mine.verdict == "more"
        and b"\n" not in data[mine.consumed :]
        and ref.consumed >= mine.consumed
    ):
        return "chunk-size-line-not-terminated"
    # RFC 9112 2.2 only asks a server to ignore empty lines before a request-line;
    # llhttp also skips CR/LF before a status line, we refuse them.
    if (ref.verdict, mine.verdict) in (("done", "error"), ("more", "error")) and (
        re.match(rb"[\r\n]", data) or re.search(rb"\r\n\r\n[\r\n]+HTTP/", judged)
    ):
        return "empty-line-before-status-line"
    if ref.verdict == "error":
        # An interim (1xx) response does not end the exchange: the final one follows on
        # the same connection whatever the 1xx says about it. llhttp applies HTTP/1.0 or
        # "Connection: close" of the 1xx and refuses the bytes after it.
        if "Data after `Connection: close`" in ref.detail and 100 <= ref.status < 200:
            return "interim-response-closing"
        # RFC 9112 2.3: "HTTP/1.x" with any digit x is HTTP/1; a recipient treats a higher
        # minor version as the highest one it supports. llhttp refuses e.g. HTTP/1.5.
        if "Invalid HTTP version" in ref.detail and re.search(rb"HTTP/1\.[2-9]$", seen):
            return "http-minor-version"
        # RFC 9110 5.5: CTLs other than CR/LF/NUL in a field value are invalid, but a
        # recipient MAY retain them; a framer has no reason to drop the response. llhttp
        # refuses them. (CR and NUL are refused by both.)
        if "Invalid header value char" in ref.detail and re.search(
            rb"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]$", seen
        ):
            return "ctl-in-field-value"
        # RFC 9112 6.3 (4): Transfer-Encoding present with chunked not last means the body
        # is delimited by close; we read an empty value that way, llhttp refuses it.
        if "Empty Transfer-Encoding" in ref.detail and re.search(
            rb"(?i)\ntransfer-encoding:[ \t]*\r\n$", seen
        ):
            return "empty-transfer-encoding"
    if mine.verdict == "error":
        # RFC 9110 15: a status code is in 100..599; llhttp takes any three digits, we
        # refuse those below 100 (a 0xx cannot be framed as either interim or final).
        if re.search(rb"(^|\n)HTTP/1\.\d 0\d\d[ \r][^\n]*\n(.*\r\n)*\r\n$", judged):
            return "status-below-100"
        # RFC 9112 4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ); we refuse a NUL
        # in it, llhttp takes it.
        if re.search(rb"(^|\n)HTTP/1\.\d \d{3} [^\r\n]*\x00[^\r\n]*\r\n(.*\r\n)*\r\n$", judged):
            return "nul-in-reason"
        # RFC 9112 6.1: Content-Length alongside Transfer-Encoding is a smuggling hazard;
        # we refuse the response, llhttp may not.
        if re.search(rb"(?i)\ncontent-length:", judged) and re.search(
            rb"(?i)\ntransfer-encoding:", judged
        ):
            return "cl-and-te"
    return None


def compare(data: bytes, cuts: Sequence[int], *, generated: Generated | None = None) -> None:
    ref = reference(data)
    mine, scanner = ours(data, cuts)
    ctx = f"data={data!r} cuts={list(cuts)} ref={ref} mine={mine}"
    if generated is None and mine.verdict != ref.verdict:
        reason = defensible(data, mine, ref)
        if reason is not None:
            return
    if ref.verdict == "done":
        assert (mine.verdict, mine.status, mine.consumed) == ("done", ref.status, ref.consumed), ctx
        # RFC 9112 9.3: "close" wins over an HTTP/1.0 "keep-alive"; llhttp keeps an
        # HTTP/1.0 connection alive whenever keep-alive is present.
        both = re.search(rb"(?i)\nconnection:[^\n]*close", data[: ref.consumed]) and re.search(
            rb"(?i)\nconnection:[^\n]*keep-alive", data[: ref.consumed]
        )
        if ref.keep_alive is not None and not both:
            assert mine.keep_alive == ref.keep_alive, ctx
    elif ref.verdict == "error":
        assert mine.verdict == "error", ctx
    else:  # llhttp wants more bytes, or waits for EOF to end a close-delimited body
        assert mine.verdict == "more", ctx
    if generated is not None:
        assert mine.verdict in ("done", "more"), ctx
        assert mine.status == generated.status, ctx
        if generated.framing == "close":
            assert mine.consumed == generated.length, ctx
            assert scanner.eof(), ctx
        else:
            assert (mine.verdict, mine.consumed) == ("done", generated.length), ctx
            assert mine.keep_alive == generated.keep_alive, ctx


def _cuts(data: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(data)), max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_differential_valid(data: st.DataObject) -> None:
    gen = data.draw(responses())
    compare(gen.data, data.draw(_cuts(gen.data)), generated=gen)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_differential_mutated(data: st.DataObject) -> None:
    raw = data.draw(mutated())
    compare(raw, data.draw(_cuts(raw)))


# --------------------------------------------------------------------------- h11


def h11_frame(data: bytes, method: bytes = b"GET") -> tuple[int, int, bool]:
    """(final status, bytes of the response, keep-alive) according to h11."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "example")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    status = 0
    closed = False
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            assert not closed
            conn.receive_data(b"")  # the peer closes: ends a close-delimited body
            closed = True
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
        if isinstance(event, h11.EndOfMessage):
            break
        assert not isinstance(event, h11.ConnectionClosed)
    leftover, _closed = conn.trailing_data
    keep = not closed and conn.their_state is h11.DONE and conn.our_state is h11.DONE
    return status, len(data) - len(leftover), keep


# h11 is stricter than RFC 9112 in ways that do not concern this framer: it accepts only
# "Transfer-Encoding: chunked" exactly, refuses BWS in chunk extensions and never keeps an
# HTTP/1.0 connection alive. 101 hands the connection over, which h11 models differently.
H11_SKIP = {"chunked-ext-bws", "chunked-te-list", "close-delimited-te-not-chunked", "101-switching"}
H11_CASES = [c for c in VALID if c.id not in H11_SKIP]


@pytest.mark.parametrize("case", H11_CASES, ids=lambda c: c.id)
def test_h11_agrees(case: Valid) -> None:
    stream = case.data if case.close_delimited else case.data + TRAILING
    method = b"HEAD" if case.head_request else b"GET"
    status, length, keep = h11_frame(stream, method)
    assert (status, length) == (case.status, len(case.data))
    if not case.data.startswith(b"HTTP/1.0"):
        assert keep == case.keep_alive
    scanner = ResponseScanner(head_request=case.head_request)
    assert scan(scanner, [stream]) == ("done", status, length)
