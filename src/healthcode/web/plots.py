"""Plots for the console and the venue pages, drawn as inline SVG.

SVG keeps the plots sharp at any size, needs no plotting library and no
image requests, and its text stays text: the labels are read by screen
readers and translate with the page. Every bar carries its number and every
colour its word beside it, so no plot relies on telling colours apart. Each
plot is paired on the page with a table of the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["FILLS", "Series", "bar_chart", "stacked_bars"]

#: Bar fills by colour; yellow is the darker amber of the QR ink, readable on white.
FILLS = {
    "green": "#0b6e2e",
    "yellow": "#e0b000",
    "red": "#b3111b",
    "grey": "#6b6b6b",
    "count": "#1d4f91",
}
_INK = "#161616"
_MUTED = "#5a5a5a"
_FONT = 'font-family="sans-serif"'


@dataclass(frozen=True)
class Series:
    """One colour's numbers across the categories, with the word shown for it."""

    key: str
    label: str
    values: Sequence[int]


def _nice_max(value: int) -> int:
    if value <= 0:
        return 1
    step = 1
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if value <= step * factor:
            return step * factor
    return step * 10


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[int],
    fills: Sequence[str],
    *,
    width: int = 640,
    bar: int = 28,
) -> Markup:
    """Horizontal bars, one per label, each with its number at its end."""
    label_width = 170
    top = 34
    height = top + len(labels) * (bar + 10) + 10
    biggest = _nice_max(max(values, default=0))
    room = width - label_width - 70
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"'
        f' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="20" {_FONT} font-size="16" font-weight="bold"'
        f' fill="{_INK}">{escape(title)}</text>',
    ]
    for row, (label, value, fill) in enumerate(zip(labels, values, fills, strict=True)):
        y = top + row * (bar + 10)
        length = round(room * value / biggest)
        parts.append(
            f'<text x="{label_width - 8}" y="{y + bar * 0.68:.1f}" text-anchor="end"'
            f' {_FONT} font-size="14" fill="{_INK}">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{label_width}" y="{y}" width="{max(length, 1)}" height="{bar}"'
            f' fill="{FILLS.get(fill, fill)}" rx="3"/>'
        )
        parts.append(
            f'<text x="{label_width + length + 6}" y="{y + bar * 0.68:.1f}"'
            f' {_FONT} font-size="14" fill="{_INK}">{value}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_bars(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = 640,
    height: int = 300,
) -> Markup:
    """Columns per category, stacked by series, with a legend of words."""
    left, right, top, bottom = 48, 12, 64, 44
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    biggest = _nice_max(max(totals, default=0))
    plot_height = height - top - bottom
    slot = (width - left - right) / max(len(categories), 1)
    column = min(56.0, slot * 0.7)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"'
        f' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="20" {_FONT} font-size="16" font-weight="bold"'
        f' fill="{_INK}">{escape(title)}</text>',
    ]
    # The legend: a swatch and the colour's word for each series.
    x = 0.0
    for item in series:
        parts.append(
            f'<rect x="{x:.1f}" y="32" width="14" height="14" rx="2"'
            f' fill="{FILLS.get(item.key, item.key)}"/>'
        )
        parts.append(
            f'<text x="{x + 19:.1f}" y="44" {_FONT} font-size="13"'
            f' fill="{_INK}">{escape(item.label)}</text>'
        )
        x += 30 + 14 * len(item.label) * (1.6 if not item.label.isascii() else 0.6)
    # Whole numbers on the axis: five steps, or one a unit below five.
    steps = 5 if biggest >= 5 else biggest
    for tick in range(steps + 1):
        value = biggest * tick // steps
        y = top + plot_height - plot_height * tick / steps
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"'
            f' stroke="#d5d8dc" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}'
            f' font-size="11" fill="{_MUTED}">{value}</text>'
        )
    for index, category in enumerate(categories):
        centre = left + slot * index + slot / 2
        y = top + plot_height
        for item in series:
            value = item.values[index]
            if value <= 0:
                continue
            size = plot_height * value / biggest
            y -= size
            parts.append(
                f'<rect x="{centre - column / 2:.1f}" y="{y:.1f}" width="{column:.1f}"'
                f' height="{size:.1f}" fill="{FILLS.get(item.key, item.key)}">'
                f"<title>{escape(category)} {escape(item.label)}: {value}"
                "</title></rect>"
            )
        above = top + plot_height - plot_height * totals[index] / biggest - 4
        parts.append(
            f'<text x="{centre:.1f}" y="{above:.1f}"'
            f' text-anchor="middle" {_FONT} font-size="12" fill="{_INK}">'
            f"{totals[index]}</text>"
        )
        parts.append(
            f'<text x="{centre:.1f}" y="{height - bottom + 18}" text-anchor="middle"'
            f' {_FONT} font-size="12" fill="{_INK}">{escape(category)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def series_from(
    rows: Sequence[tuple[str, str, int]],
    categories: Sequence[str],
    labels: Mapping[str, str],
) -> list[Series]:
    """Series by colour from (category, colour, count) rows."""
    table: dict[str, dict[str, int]] = {key: {} for key in labels}
    for category, colour, count in rows:
        if colour in table:
            table[colour][category] = table[colour].get(category, 0) + count
    return [
        Series(key, label, [table[key].get(c, 0) for c in categories])
        for key, label in labels.items()
    ]
