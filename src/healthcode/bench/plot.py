"""A picture of a load run: each phase's latencies, percentile by percentile.

The table the bench prints gives three percentiles a phase; the curve shows
all of them, so a long tail, a step (requests that waited for a batch or a
thread) or a phase that shed load is seen at a glance. The y axis is
logarithmic, since a trivial endpoint answers in about a millisecond and an
upload of hundreds of scans in hundreds. The file is a standalone SVG, drawn
as the web pages draw theirs, with no plotting library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

from healthcode.bench.load import PhaseResult, percentile

__all__ = ["latency_svg"]

#: One colour a phase, told apart by their dash patterns and labels too.
_STROKES = (
    ("#1d4f91", ""),
    ("#0b6e2e", "6 3"),
    ("#b3111b", "2 3"),
    ("#e0b000", "8 3 2 3"),
    ("#6b6b6b", "1 2"),
)
_WIDTH, _HEIGHT = 720, 420
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 200, 40, 48
# The curve is drawn at every whole percentile, and past the 99th at tenths
# up to the 99.9th, where the tail that matters lives; the axis ends there.
_FRACTIONS = [n / 100 for n in range(1, 100)] + [0.99 + n / 1000 for n in range(1, 10)]


def _x(fraction: float) -> float:
    # Percentiles spread so that the tail gets room: the axis runs in
    # -log10(1 - p), where p50, p90, p99 and p99.9 are equally far apart.
    top = -math.log10(1 - 0.999)
    place = min(-math.log10(max(1 - fraction, 1e-3)), top) / top
    return _LEFT + place * (_WIDTH - _LEFT - _RIGHT)


def latency_svg(results: Sequence[PhaseResult], title: str) -> str:
    """An SVG of each phase's latency at every percentile."""
    phases = [r for r in results if r.latencies_ms]
    if not phases:
        raise ValueError("No phase recorded a latency, so there is nothing to plot.")
    low = min(min(r.latencies_ms) for r in phases)
    high = max(max(r.latencies_ms) for r in phases)
    bottom = 10 ** math.floor(math.log10(max(low, 0.01)))
    top = 10 ** math.ceil(math.log10(max(high, bottom * 10)))
    span = math.log10(top) - math.log10(bottom)

    def y(ms: float) -> float:
        share = (math.log10(max(ms, bottom)) - math.log10(bottom)) / span
        return _HEIGHT - _BOTTOM - share * (_HEIGHT - _TOP - _BOTTOM)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}"'
        f' height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}"'
        ' font-family="sans-serif" font-size="12">',
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="#ffffff"/>',
        f'<text x="{_LEFT}" y="22" font-size="14">{escape(title)}</text>',
    ]
    decade = bottom
    while decade <= top * 1.0001:
        level = y(decade)
        parts.append(
            f'<line x1="{_LEFT}" y1="{level:.1f}" x2="{_WIDTH - _RIGHT}"'
            f' y2="{level:.1f}" stroke="#dddddd"/>'
            f'<text x="{_LEFT - 6}" y="{level + 4:.1f}" text-anchor="end">'
            f"{decade:g} ms</text>"
        )
        decade *= 10
    for label, fraction in (
        ("p1", 0.01),
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p99.9", 0.999),
    ):
        place = _x(fraction)
        parts.append(
            f'<line x1="{place:.1f}" y1="{_TOP}" x2="{place:.1f}"'
            f' y2="{_HEIGHT - _BOTTOM}" stroke="#eeeeee"/>'
            f'<text x="{place:.1f}" y="{_HEIGHT - _BOTTOM + 16}"'
            f' text-anchor="middle">{label}</text>'
        )
    parts.append(
        f'<text x="{(_LEFT + _WIDTH - _RIGHT) / 2:.0f}" y="{_HEIGHT - 10}"'
        ' text-anchor="middle">share of requests answered within the time'
        " shown (percentile)</text>"
    )
    for index, result in enumerate(phases):
        colour, dash = _STROKES[index % len(_STROKES)]
        points = " ".join(
            f"{_x(f):.1f},{y(percentile(result.latencies_ms, f)):.1f}"
            for f in _FRACTIONS
        )
        pattern = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<polyline data-phase="{escape(result.name)}" points="{points}"'
            f' fill="none" stroke="{colour}" stroke-width="2"{pattern}/>'
        )
        key = _TOP + 16 + index * 34
        parts.append(
            f'<line x1="{_WIDTH - _RIGHT + 12}" y1="{key}"'
            f' x2="{_WIDTH - _RIGHT + 40}" y2="{key}" stroke="{colour}"'
            f' stroke-width="2"{pattern}/>'
            f'<text x="{_WIDTH - _RIGHT + 46}" y="{key + 4}">'
            f"{escape(result.name)}</text>"
            f'<text x="{_WIDTH - _RIGHT + 46}" y="{key + 18}" fill="#5a5a5a">'
            f"{result.rate:,.0f} req/s, p99 {result.p(0.99):.1f} ms</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
