"""Test helper: what the charts of an HTML report (hammer.html) contain, read with the
standard library's HTML parser, from render_html's output or a browser's DOM dump."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Chart:
    """One ``<svg data-chart=...>``: its attributes, its series' polylines, its shapes."""

    attrs: dict[str, str]
    # data-series -> the polylines of that series, each a list of (x, y) points
    series: dict[str, list[list[tuple[float, float]]]] = field(default_factory=dict)
    # data-series -> its data-points attribute (points with a value)
    declared_points: dict[str, int] = field(default_factory=dict)
    circles: int = 0
    bars: list[dict[str, str]] = field(default_factory=list)   # <rect> inside g.bar
    text: list[str] = field(default_factory=list)

    def points(self, series: str) -> int:
        return sum(len(line) for line in self.series.get(series, []))

    def all_points(self) -> int:
        return sum(self.points(key) for key in self.series)


@dataclass
class Page:
    charts: dict[str, Chart]
    # every (tag, attribute, value) of the page
    attributes: list[tuple[str, str, str]]
    tags: set[str]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.charts: dict[str, Chart] = {}
        self.attributes: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()
        self._chart: Chart | None = None
        self._series: str | None = None
        self._in_bar = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.tags.add(tag)
        self.attributes += [(tag, name, value) for name, value in values.items()]
        if tag == "svg" and "data-chart" in values:
            self._chart = Chart(attrs=values)
            self.charts[values["data-chart"]] = self._chart
            return
        chart = self._chart
        if chart is None:
            return
        if tag == "g" and "data-series" in values:
            self._series = values["data-series"]
            chart.series.setdefault(self._series, [])
            chart.declared_points[self._series] = int(values.get("data-points", "0"))
        elif tag == "g" and "bar" in values.get("class", "").split():
            self._in_bar = True
        elif tag == "polyline" and self._series is not None:
            pairs = [pair.split(",") for pair in values.get("points", "").split()]
            chart.series[self._series].append([(float(x), float(y)) for x, y in pairs])
        elif tag == "circle":
            chart.circles += 1
        elif tag == "rect" and self._in_bar:
            chart.bars.append(values)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None
        elif tag == "g":
            self._series = None
            self._in_bar = False

    def handle_data(self, data: str) -> None:
        if self._chart is not None and data.strip():
            self._chart.text.append(data.strip())


def parse_page(text: str) -> Page:
    collector = _Collector()
    collector.feed(text)
    collector.close()
    return Page(charts=collector.charts, attributes=collector.attributes, tags=collector.tags)
