"""Server-rendered SVG bar charts: readable without JavaScript, printable, and small.

Each chart is drawn twice, labels beside the bars for a wide card and labels above them for a phone's, and the
stylesheet shows the one that fits its card (a container query): an SVG scales as a whole, so one drawing either
scrolls sideways on a phone or shrinks its text below reading size.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

BAR_HEIGHT = 15
ROW_GAP = 12
VALUE_WIDTH = 40
LEGEND_SPACING = 90
CHART_TOP = 46


@dataclass(frozen=True)
class ChartLayout:
    """Where a chart puts its labels: beside the bars (`bars_x` = the label column's width) or above them."""

    name: str
    width: int
    bars_x: int
    label_line: int  # the height a label above the bars takes; 0 when labels sit beside them

    def label_baseline(self, row_top: int) -> int:
        return row_top + (self.label_line - 5 if self.label_line else BAR_HEIGHT + 4)


WIDE = ChartLayout("wide", width=500, bars_x=140, label_line=0)
NARROW = ChartLayout("narrow", width=320, bars_x=0, label_line=17)


def comparison_bars(title: str, rows: list[tuple[str, float, float]], current: str, previous: str) -> Markup:
    """Horizontal bars, current quarter above the previous one for each label, scaled to the largest value."""
    rows = rows or [("(none)", 0, 0)]
    return Markup("").join(_drawing(layout, title, rows, current, previous) for layout in (WIDE, NARROW))


def _drawing(
    layout: ChartLayout, title: str, rows: list[tuple[str, float, float]], current: str, previous: str
) -> Markup:
    largest = max(max(now, before) for _, now, before in rows) or 1
    bar_space = layout.width - layout.bars_x - VALUE_WIDTH
    row_height = layout.label_line + 2 * BAR_HEIGHT + ROW_GAP
    height = CHART_TOP + row_height * len(rows) + 6
    legend_x = layout.bars_x
    parts = [
        f'<svg class="chart chart-{layout.name}" role="img" viewBox="0 0 {layout.width} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
        f'<rect x="{legend_x}" y="26" width="10" height="10" class="bar-current"/>'
        f'<text x="{legend_x + 14}" y="35" class="chart-legend">{escape(current)}</text>'
        f'<rect x="{legend_x + LEGEND_SPACING}" y="26" width="10" height="10" class="bar-previous"/>'
        f'<text x="{legend_x + LEGEND_SPACING + 14}" y="35" class="chart-legend">{escape(previous)}</text>',
    ]
    for position, (label, now, before) in enumerate(rows):
        row_top = CHART_TOP + position * row_height
        parts.append(f'<text x="0" y="{layout.label_baseline(row_top)}" class="chart-label">{escape(label)}</text>')
        bars_top = row_top + layout.label_line
        for offset, value, css in ((0, now, "bar-current"), (BAR_HEIGHT, before, "bar-previous")):
            width = round(bar_space * value / largest, 1)
            y = bars_top + offset
            parts.append(
                f'<rect x="{layout.bars_x}" y="{y}" width="{width}" height="{BAR_HEIGHT - 2}" class="{css}"/>'
                f'<text x="{layout.bars_x + width + 6}" y="{y + BAR_HEIGHT - 3}" class="chart-value">'
                f"{escape(_number(value))}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
