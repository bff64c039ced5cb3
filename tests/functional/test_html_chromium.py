"""The HTML report (hammer.html) of a real run, opened in headless Chromium with every
network access made to fail: the page must parse into the same drawn charts, and its
screenshot must show them.

Chromium is Debian's `chromium` package (scripts/install-system-deps.sh installs it).
Without it these tests are skipped locally and fail under CI=true, as the nginx ones.
"""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

import hammer
from accounting import check_invariant
from hammer.html import render_html
from htmlcharts import parse_page

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_S = 60
WINDOW = (1280, 2400)

# Colours of the series (hammer.html): blue p50/achieved/corrected, orange p99/uncorrected,
# green throughput and HTTP 2xx bars.
SERIES_COLOURS = {"blue": (0x25, 0x63, 0xEB), "orange": (0xEA, 0x58, 0x0C),
                  "green": (0x15, 0x80, 0x3D)}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@pytest.fixture
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        if _in_ci():
            pytest.fail(f"{CHROMIUM} is not installed, and CI=true requires it")
        pytest.skip(f"{CHROMIUM} is not installed")
    return CHROMIUM


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Headless Chromium with no network: every name resolves to nothing and every
    connection goes to a dead proxy on the loopback (port 9, nothing listens)."""
    command = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", "--hide-scrollbars",
        f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=127.0.0.1:9", *args,
    ]
    result = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result


def html_of_a_run(target_server: Any, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A short open-loop run against the built-in server, its report as HTML in a file."""
    server = target_server(delay="2ms")
    report = hammer.run(server.url, rate=400, duration="3s", connections=16)
    check_invariant(report)
    assert report.counts.ok == 1200
    data = report.to_dict()
    path = tmp_path / "report.html"
    path.write_text(render_html(data), encoding="utf-8")
    return path, data


def test_chromium_parses_every_chart_offline(chromium: str, target_server: Any,
                                             tmp_path: Path) -> None:
    path, data = html_of_a_run(target_server, tmp_path)
    result = run_chromium(chromium, tmp_path / "profile", "--dump-dom", path.as_uri())
    dom = result.stdout.decode()
    assert "hammer report format version" in dom          # the whole page was parsed
    page = parse_page(dom)
    assert page.tags.isdisjoint({"script", "img", "iframe", "link"})
    seconds = len(data["time_series"])
    assert seconds in (3, 4)           # 4: a response came after the load phase
    latency = page.charts["latency-over-time"]
    for series in ("p50_ms", "p99_ms", "max_ms"):
        assert latency.points(series) == seconds
    rate = page.charts["rate"]
    for series in ("target_rps", "achieved_rps", "throughput_rps"):
        assert rate.points(series) == seconds
    spectrum = page.charts["spectrum"]
    assert spectrum.points("latency") >= 6                # summary: min .. max; hdrh: more
    assert spectrum.points("latency_uncorrected") >= 6
    outcomes = page.charts["outcomes"]
    assert len(outcomes.bars) == 1 and "HTTP 200" in outcomes.text
    assert float(outcomes.bars[0]["width"]) > 100
    # every polyline point lies inside its chart's view box
    for chart in (latency, rate, spectrum):
        _, _, width, height = (float(v) for v in chart.attrs["viewbox"].split())
        for lines in chart.series.values():
            assert all(0 <= x <= width and 0 <= y <= height for line in lines for x, y in line)


def test_chromium_screenshot_shows_the_charts(chromium: str, target_server: Any,
                                              tmp_path: Path) -> None:
    path, _ = html_of_a_run(target_server, tmp_path)
    png = tmp_path / "report.png"
    run_chromium(chromium, tmp_path / "profile", f"--screenshot={png}",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}", "--force-device-scale-factor=1",
                 path.as_uri())
    width, height, colours = png_colours(png.read_bytes())
    assert (width, height) == WINDOW
    assert len(colours) > 200, f"only {len(colours)} colours: a blank page?"
    missing = [name for name, rgb in SERIES_COLOURS.items() if rgb not in colours]
    assert not missing, f"no pixel of the {missing} series"


# --------------------------------------------------------------------------- PNG


def png_colours(data: bytes) -> tuple[int, int, set[tuple[int, int, int]]]:
    """Width, height and the RGB colours of an 8-bit RGB(A), non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, header, chunks = 8, b"", []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, (depth, colour_type)
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    colours: set[tuple[int, int, int]] = set()
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), previous,
                         channels)
        colours.update(zip(line[0::channels], line[1::channels], line[2::channels],
                           strict=True))
        previous = line
    return width, height, colours


def _unfilter(kind: int, line: bytearray, previous: bytearray, bpp: int) -> bytearray:
    """Undo a PNG row filter (0 none, 1 sub, 2 up, 3 average, 4 Paeth)."""
    if kind == 0:
        return line
    if kind == 2:
        return bytearray((a + b) & 255 for a, b in zip(line, previous, strict=True))
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        if kind == 1:
            predicted = left
        elif kind == 3:
            predicted = (left + previous[i]) >> 1
        else:
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            estimate = left + up - corner
            to_left, to_up, to_corner = (abs(estimate - left), abs(estimate - up),
                                         abs(estimate - corner))
            if to_left <= to_up and to_left <= to_corner:
                predicted = left
            elif to_up <= to_corner:
                predicted = up
            else:
                predicted = corner
        line[i] = (line[i] + predicted) & 255
    return line
