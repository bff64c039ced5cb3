"""Coverage-guided fuzz target (atheris) for the core's response framer.

    python tests/fuzz/fuzz_framing.py -max_total_time=60 [corpus_dir]

Each input is split into a response and a segmentation. Properties checked:
- never a crash or a hang; `used` never exceeds what was fed;
- the verdict and the consumed length do not depend on how the bytes arrive;
- a response httptools (llhttp) completes with a Content-Length or chunked body is one we
  complete too, with the same status (where both accept it).
Atheris instruments the Python harness; the framer itself is C built by gcc (libFuzzer's
instrumentation needs clang), so its branches guide the search only through the
verdicts, statuses and offsets they produce.
"""

from __future__ import annotations

import itertools
import sys

import atheris
import httptools

from hammer._core import ResponseScanner


@atheris.instrument_func
def scan(chunks: list[bytes]) -> tuple[str, int, int]:
    scanner = ResponseScanner()
    carry = b""
    consumed = 0
    for chunk in chunks:
        data = carry + chunk
        verdict, used = scanner.feed(data)
        if used > len(data):
            raise AssertionError(f"used {used} > fed {len(data)}")
        consumed += used
        if verdict != "more":
            return verdict, scanner.status, consumed
        carry = data[used:]
    if scanner.eof():
        return "done-at-eof", scanner.status, consumed
    return "more", scanner.status, consumed


class _Ref:
    """Records the first final response only: llhttp completes each interim (1xx) one,
    and bytes after the final one (pipelined or junk) may make it parse another message,
    whose status must not replace the final one's."""

    def __init__(self) -> None:
        self.complete = False
        self.status = 0
        self.parser: httptools.HttpResponseParser | None = None

    def on_message_complete(self) -> None:
        if self.complete or self.parser is None:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # llhttp completes an interim response; the framer skips to the final one
        self.complete = True
        self.status = status


@atheris.instrument_func
def reference_completes(data: bytes) -> tuple[bool, int]:
    ref = _Ref()
    parser = httptools.HttpResponseParser(ref)
    ref.parser = parser
    try:
        parser.feed_data(data)
    except httptools.HttpParserError:
        if not ref.complete:
            return False, 0
    return ref.complete, ref.status


@atheris.instrument_func
def outcome_features(verdict: str, status: int, consumed: int, size: int) -> int:
    """Branch on what the framer decided, so that new framer behaviour is new coverage
    for the fuzzer even though the C code itself is not instrumented."""
    score = 0
    if verdict == "done":
        score += 1
    elif verdict == "done-at-eof":
        score += 2
    elif verdict == "protocol_error":
        score += 3
    elif verdict == "headers_too_large":
        score += 4
    if status >= 500:
        score += 10
    elif status >= 400:
        score += 20
    elif status >= 300:
        score += 30
    elif status >= 200:
        score += 40
    elif status >= 100:
        score += 50
    if consumed == size:
        score += 100
    elif consumed == 0:
        score += 200
    return score


@atheris.instrument_func
def test_one_input(raw: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(raw)
    n_cuts = fdp.ConsumeIntInRange(0, 8)
    cuts = sorted(fdp.ConsumeIntInRange(0, 4096) for _ in range(n_cuts))
    data = fdp.ConsumeBytes(fdp.remaining_bytes())
    whole = scan([data])
    outcome_features(whole[0], whole[1], whole[2], len(data))
    points = [0, *[c for c in cuts if c < len(data)], len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(points)]
    split = scan(pieces)
    if whole != split:
        raise AssertionError(f"segmentation changed the verdict: {whole} vs {split}")
    complete, status = reference_completes(data)
    framed = b"content-length" in data.lower() or b"chunked" in data.lower()
    if complete and framed and whole[0] == "done" and whole[1] != status:
        raise AssertionError(f"status {whole[1]} != httptools {status}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
