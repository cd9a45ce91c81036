"""Small SVG charts drawn on the server.

A few bars and labels need no charting library: the page stays one request,
works without JavaScript, and nothing third-party runs in the staff session.
Every label is escaped; the numbers are ours.
"""

from collections.abc import Callable, Sequence

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

Format = Callable[[float], str]

WIDTH = 640
HEIGHT = 180
BAR_ROW = 22
LABEL_WIDTH = 220


def column_chart(
    title: str, points: Sequence[tuple[str, float | None]], fmt: Format
) -> SafeString:
    """Vertical bars, one a point; a point without a value leaves a gap."""
    peak = max((v for _, v in points if v is not None), default=0.0)
    top = peak or 1.0
    plot = HEIGHT - 40
    step = WIDTH / max(len(points), 1)
    # Label every day for a week, fewer for a month, so labels never overlap.
    every = max(1, round(len(points) / 8))
    parts = []
    for i, (label, value) in enumerate(points):
        x = i * step
        if value is not None:
            h = plot * value / top
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}">'
                    "<title>{}: {}</title></rect>",
                    _n(x + step * 0.15),
                    _n(20 + plot - h),
                    _n(step * 0.7),
                    _n(h),
                    label,
                    fmt(value),
                )
            )
        if i % every == 0:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" class="axis">{}</text>',
                    _n(x + step / 2),
                    HEIGHT - 6,
                    label,
                )
            )
    # No peak to show when every value is zero or missing: "max 1 ms" beside
    # "n/a" would be a scale for data that is not there.
    header = format_html(
        '<text x="0" y="12" class="peak">{}</text>',
        f"max {fmt(peak)}" if peak else "no data" if not any_value(points) else "",
    )
    return _svg(title, WIDTH, HEIGHT, header + mark_safe("".join(parts)))


def any_value(points: Sequence[tuple[str, float | None]]) -> bool:
    return any(v is not None for _, v in points)


def bar_list(
    title: str, rows: Sequence[tuple[str, float]], fmt: Format, *, top: float = 0
) -> SafeString:
    """Horizontal bars with their labels, for reasons and articles."""
    top = top or max((v for _, v in rows), default=0.0) or 1.0
    span = WIDTH - LABEL_WIDTH - 70
    parts = []
    for i, (label, value) in enumerate(rows):
        y = i * BAR_ROW
        parts.append(
            format_html(
                '<text x="0" y="{}" class="label">{}</text>'
                '<rect x="{}" y="{}" width="{}" height="{}"></rect>'
                '<text x="{}" y="{}" class="value">{}</text>',
                y + 15,
                _clip(label),
                LABEL_WIDTH,
                y + 4,
                _n(span * value / top),
                BAR_ROW - 8,
                _n(LABEL_WIDTH + span * value / top + 6),
                y + 15,
                fmt(value),
            )
        )
    height = max(len(rows), 1) * BAR_ROW
    return _svg(title, WIDTH, height, mark_safe("".join(parts)))


def _svg(title: str, width: int, height: int, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}" '
        'width="100%" preserveAspectRatio="xMinYMin meet">{}</svg>',
        title,
        width,
        height,
        body,
    )


def _clip(label: str, chars: int = 34) -> str:
    return label if len(label) <= chars else label[: chars - 1] + "…"


def _n(value: float) -> str:
    # format_html escapes its arguments to text first, so numbers are
    # formatted before they go in.
    return f"{value:.1f}"
