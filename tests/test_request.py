"""RemixRequest: every field's validation, normalisation, and the JSON round trip."""

from __future__ import annotations

import json

import pytest

from bot.errors import InvalidRequest
from bot.remix import enums
from bot.remix.request import MAX_PROMPT_CHARS, PaletteMember, RemixRequest


def test_defaults_and_normalisation() -> None:
    r = RemixRequest(
        prompt="  a cat in the rain ",
        aspect_ratio="16:9",
        rendering_speed="turbo",
        magic_prompt="Off",
        style_type="design",
        style_preset="watercolor",
        palette_name="ember",
        model="v_2_turbo",
        negative_prompt="   ",
    )
    assert r.prompt == "a cat in the rain"
    assert (r.image_weight, r.num_images, r.seed) == (50, 1, None)
    assert (r.aspect_ratio, r.rendering_speed, r.magic_prompt) == ("16x9", "TURBO", "OFF")
    assert (r.style_type, r.style_preset, r.palette_name) == ("DESIGN", "WATERCOLOR", "EMBER")
    assert r.model == "V_2_TURBO"
    assert r.negative_prompt is None  # blank means none
    assert RemixRequest("x", model="IDEOGRAM:4@2").model == "ideogram:4@2"
    assert RemixRequest("x", resolution="1024 x 768").resolution == "1024x768"
    assert RemixRequest("x", image_weight="70", seed="5", num_images="3").image_weight == 70


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": ""}, "prompt must be some text describing the remix, not empty."),
        (
            {"prompt": "x" * (MAX_PROMPT_CHARS + 1)},
            f"prompt must be at most {MAX_PROMPT_CHARS} characters, not {MAX_PROMPT_CHARS + 1}.",
        ),
        ({"image_weight": 150}, "image_weight must be from 1 to 100, not 150."),
        ({"image_weight": 0}, "image_weight must be from 1 to 100, not 0."),
        ({"image_weight": True}, "image_weight must be a whole number from 1 to 100, not True."),
        ({"seed": -1}, "seed must be from 0 to 2147483647, not -1."),
        ({"seed": enums.MAX_SEED + 1}, "seed must be from 0 to 2147483647, not 2147483648."),
        ({"seed": "abc"}, "seed must be a whole number from 0 to 2147483647, not 'abc'."),
        ({"num_images": 9}, "num_images must be from 1 to 8, not 9."),
        (
            {"aspect_ratio": "7x3"},
            "aspect_ratio must be one of 1x3, 3x1, 1x2, 2x1, 9x16, 16x9, 10x16, 16x10, 2x3, 3x2, 3x4, 4x3, 4x5, 5x4, 1x1, not '7x3'.",
        ),
        (
            {"resolution": "1000x1000"},
            "resolution must be an Ideogram size such as 1024x1024, not '1000x1000'.",
        ),
        (
            {"aspect_ratio": "1x1", "resolution": "1024x1024"},
            "aspect_ratio and resolution cannot both be given; choose one of them.",
        ),
        (
            {"rendering_speed": "fast"},
            "rendering_speed must be one of FLASH, TURBO, BALANCED, DEFAULT, QUALITY, not 'fast'.",
        ),
        ({"magic_prompt": "maybe"}, "magic_prompt must be one of AUTO, ON, OFF, not 'maybe'."),
        (
            {"style_preset": "NOPE"},
            "style_preset must be one of the 62 allowed values such as 80S_ILLUSTRATION, not 'NOPE'.",
        ),
        (
            {"palette_name": "RAINBOW"},
            "palette_name must be one of EMBER, FRESH, JUNGLE, MAGIC, MELON, MOSAIC, PASTEL, ULTRAMARINE, not 'RAINBOW'.",
        ),
        (
            {"palette_name": "EMBER", "palette_members": ("#fff",)},
            "color palette must be a preset name or a list of colours, not both.",
        ),
        (
            {"palette_members": tuple(f"#{i}{i}{i}" for i in range(9))},
            "color palette must have 1 to 8 colours, not 9.",
        ),
        (
            {"palette_members": ("#12345",)},
            "palette colour must be #rgb or #rrggbb hex like #b470b3, not '#12345'.",
        ),
        (
            {"palette_members": ("#123456:2",)},
            "palette colour weight must be from 0.05 to 1.0, not 2.0.",
        ),
        (
            {"palette_members": ("#123456:x",)},
            "palette colour weight must be a number from 0.05 to 1.0, not 'x'.",
        ),
        (
            {"style_codes": ("12345",)},
            "style code must be 8 hexadecimal digits like 5f3a9c01, not '12345'.",
        ),
        (
            {"style_codes": ("0123abcd",), "style_type": "AUTO"},
            "style codes cannot be combined with a style type; choose one.",
        ),
        (
            {"style_codes": ("0123abcd",), "style_ref_count": 1},
            "style codes cannot be combined with style reference images; choose one.",
        ),
        ({"style_ref_count": 5}, "style reference image count must be from 0 to 4, not 5."),
        ({"model": "V_9"}, "model must be one of"),
    ],
)
def test_refusals_name_field_value_and_limit(kwargs: dict, message: str) -> None:
    kwargs = {"prompt": "a cat", **kwargs}
    with pytest.raises(InvalidRequest) as info:
        RemixRequest(**kwargs)
    assert str(info.value).startswith(message)
    assert str(info.value).endswith(".")


def test_palette_members_parse_and_encode() -> None:
    r = RemixRequest(
        "x",
        palette_members=(
            "B470B3:0.5",
            PaletteMember("#fff"),
            {"color_hex": "#000", "color_weight": 1},
        ),
    )
    # Sent highest weight first, as Ideogram asks; unweighted colours last, in order.
    assert r.palette_dict() == {
        "members": [
            {"color_hex": "#000", "color_weight": 1.0},
            {"color_hex": "#b470b3", "color_weight": 0.5},
            {"color_hex": "#fff"},
        ]
    }
    assert RemixRequest("x", palette_name="PASTEL").palette_dict() == {"name": "PASTEL"}
    assert RemixRequest("x").palette_dict() is None


def test_json_round_trip_and_reroll() -> None:
    r = RemixRequest(
        "a cat",
        image_weight=80,
        seed=42,
        resolution="1024x1024",
        rendering_speed="QUALITY",
        negative_prompt="dogs",
        num_images=4,
        palette_members=("#b470b3:0.6", "#ffffff"),
        style_codes=("0123abcd", "DEADBEEF"),
        style_ref_count=0,
    )
    data = json.loads(json.dumps(r.to_dict()))
    assert RemixRequest.from_dict(data) == r
    assert RemixRequest.from_dict({**data, "a_future_field": 1}) == r
    again = r.with_seed(7)
    assert again.seed == 7 and again.prompt == r.prompt and again != r
    with pytest.raises(InvalidRequest):
        r.with_seed(-5)


def test_non_default_options() -> None:
    assert RemixRequest("a cat").non_default_options() == {}
    r = RemixRequest(
        "a cat", image_weight=70, seed=3, palette_members=("#fff:0.5",), style_codes=("0123abcd",)
    )
    assert r.non_default_options() == {
        "image_weight": 70,
        "seed": 3,
        "palette_members": "#fff:0.5",
        "style_codes": ["0123ABCD"],
    }
