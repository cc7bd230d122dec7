"""An inline SVG bar chart (no script, no library): images per day with the backend's bill."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, PAD = 640, 200, 32


def bar_chart(days: Sequence[str], images: Sequence[int], billed: Sequence[int], title: str) -> str:
    """Paired bars per day: images delivered (dark) and images billed (light), with a scale."""
    if not days:
        return "<p class=note>No finished jobs in this period.</p>"
    top = max(1, *images, *billed)
    slot = (WIDTH - 2 * PAD) / len(days)
    bar = max(1.0, slot / 2 - 1)
    parts = [
        f'<svg role="img" aria-label="{escape(title)}" width="{WIDTH}" height="{HEIGHT + 40}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT + 40}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{PAD}" y1="{HEIGHT}" x2="{WIDTH - PAD}" y2="{HEIGHT}" stroke="#888"/>',
        f'<text x="2" y="{PAD - 8}" font-size="11">{top}</text>',
        f'<text x="2" y="{HEIGHT}" font-size="11">0</text>',
    ]
    for i, (day, made, bill) in enumerate(zip(days, images, billed, strict=True)):
        x = PAD + i * slot
        for j, (value, colour, what) in enumerate(
            ((made, "#5b45c9", "images delivered"), (bill, "#c8b8ff", "images billed"))
        ):
            h = (HEIGHT - PAD) * value / top
            parts.append(
                f'<rect class="{what.split()[1]}" x="{x + j * bar:.1f}" y="{HEIGHT - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(day)}: {value} {what}</title></rect>"
            )
        if len(days) <= 16 or i % max(1, len(days) // 8) == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT + 14}" font-size="10">{escape(day[5:])}</text>'
            )
    parts.append(
        f'<rect x="{PAD}" y="{HEIGHT + 24}" width="10" height="10" fill="#5b45c9"/>'
        f'<text x="{PAD + 14}" y="{HEIGHT + 33}" font-size="11">images delivered</text>'
        f'<rect x="{PAD + 130}" y="{HEIGHT + 24}" width="10" height="10" fill="#c8b8ff"/>'
        f'<text x="{PAD + 144}" y="{HEIGHT + 33}" font-size="11">images billed by the backend</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
