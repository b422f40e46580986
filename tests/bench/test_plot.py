"""The load bench's picture: one curve a phase, latency rising with percentile."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from healthcode.bench.load import PhaseResult
from healthcode.bench.plot import latency_svg

SVG = "{http://www.w3.org/2000/svg}"


def _points(line: ET.Element) -> list[tuple[float, float]]:
    pairs = (point.split(",") for point in line.attrib["points"].split())
    return [(float(x), float(y)) for x, y in pairs]


def test_each_phase_is_a_curve_that_rises_with_the_percentile() -> None:
    fast = PhaseResult("health", 1000, 1000, 1.0, [1.0 + i / 1000 for i in range(1000)])
    slow = PhaseResult("code refresh", 500, 500, 1.0, [5.0] * 490 + [40.0] * 10)
    unmeasured = PhaseResult("check-in upload", 0, 0, 0.0)

    root = ET.fromstring(latency_svg([fast, slow, unmeasured], "a run"))

    lines = root.findall(f"{SVG}polyline")
    assert [line.attrib["data-phase"] for line in lines] == ["health", "code refresh"]
    for line in lines:
        points = _points(line)
        assert [x for x, _ in points] == sorted(x for x, _ in points)
        # SVG's y grows downwards: a longer latency is drawn higher up.
        assert [y for _, y in points] == sorted((y for _, y in points), reverse=True)
    # The slow phase's tail (its last 2 %) is drawn above its body.
    tail = _points(lines[1])
    assert tail[-1][1] < tail[0][1]
    texts = "".join(root.itertext())
    assert "500 req/s, p99 40.0 ms" in texts
    assert "a run" in texts


def test_a_run_without_latencies_has_nothing_to_plot() -> None:
    with pytest.raises(ValueError, match="nothing to plot"):
        latency_svg([PhaseResult("health", 0, 0, 0.0)], "empty")
