"""Server-rendered SVG bar charts: readable without JavaScript, printable, and small."""

from __future__ import annotations

from markupsafe import Markup, escape

BAR_HEIGHT = 15
ROW_GAP = 12
LABEL_WIDTH = 140
VALUE_WIDTH = 40
CHART_WIDTH = 500


def comparison_bars(title: str, rows: list[tuple[str, float, float]], current: str, previous: str) -> Markup:
    """Horizontal bars, current quarter above the previous one for each label, scaled to the largest value."""
    rows = rows or [("(none)", 0, 0)]
    largest = max(max(now, before) for _, now, before in rows) or 1
    bar_space = CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH
    row_height = 2 * BAR_HEIGHT + ROW_GAP
    top = 46
    height = top + row_height * len(rows) + 6
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {CHART_WIDTH} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
        f'<rect x="{LABEL_WIDTH}" y="26" width="10" height="10" class="bar-current"/>'
        f'<text x="{LABEL_WIDTH + 14}" y="35" class="chart-legend">{escape(current)}</text>'
        f'<rect x="{LABEL_WIDTH + 90}" y="26" width="10" height="10" class="bar-previous"/>'
        f'<text x="{LABEL_WIDTH + 104}" y="35" class="chart-legend">{escape(previous)}</text>',
    ]
    for position, (label, now, before) in enumerate(rows):
        y = top + position * row_height
        parts.append(f'<text x="0" y="{y + BAR_HEIGHT + 4}" class="chart-label">{escape(label)}</text>')
        for offset, value, css in ((0, now, "bar-current"), (BAR_HEIGHT, before, "bar-previous")):
            width = round(bar_space * value / largest, 1)
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{y + offset}" width="{width}" height="{BAR_HEIGHT - 2}" class="{css}"/>'
                f'<text x="{LABEL_WIDTH + width + 6}" y="{y + offset + BAR_HEIGHT - 3}" class="chart-value">'
                f"{escape(_number(value))}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
