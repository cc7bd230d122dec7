"""`remixbot styles`: the named values of the style options (presets, style types, palettes)."""

from __future__ import annotations

import argparse
import textwrap

from bot.cli._common import print_json
from bot.remix import enums

# (heading, option, values, note) in the order a person looks for them.
LISTS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("Style presets", "--style-preset", enums.STYLE_PRESETS, "ideogram, task-proxy; runware 4.0"),
    ("Style types", "--style-type", enums.STYLE_TYPES, "ideogram-legacy also RENDER_3D, ANIME"),
    ("Colour palettes", "--palette", enums.PALETTE_PRESETS, "or --palette-color HEX[:WEIGHT]"),
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `styles` to the command line."""
    p = sub.add_parser("styles", help="list the style presets, style types and palettes")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_styles)


def _styles(args: argparse.Namespace) -> int:
    if args.json:
        print_json({option.lstrip("-"): list(values) for _, option, values, _ in LISTS})
        return 0
    for n, (heading, option, values, note) in enumerate(LISTS):
        if n:
            print()
        print(f"{heading} ({option}, {len(values)}; {note}):")
        print(textwrap.fill("  ".join(values), 96, initial_indent="  ", subsequent_indent="  "))
    return 0
