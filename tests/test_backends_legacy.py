"""Ideogram legacy backend through the fake: `image_request` + `image_file`, model rules."""

from __future__ import annotations

import json
import re

import aiohttp
import pytest

from bot.errors import InvalidRequest, RemixRejected
from bot.remix.backends import IdeogramLegacyBackend, RemixResult, make_backend
from bot.remix.request import RemixRequest
from bot.settings import SPECS
from tests.fakeremix import API_KEY, FakeRemix
from tests.fakeremix.helpers import encoded, fake_settings


async def remix(fake: FakeRemix, request: RemixRequest, refs=(), **env: str) -> RemixResult:
    settings = fake_settings(fake, "ideogram-legacy", **env)
    async with aiohttp.ClientSession() as session:
        backend = make_backend(settings, session)
        assert isinstance(backend, IdeogramLegacyBackend)
        return await backend.remix(request, encoded("JPEG"), list(refs))


async def test_parts_and_default_model(fake: FakeRemix) -> None:
    result = await remix(fake, RemixRequest("a beach"))
    rec = fake.last()
    assert rec.path == "/remix"
    assert rec.headers["Api-Key"] == API_KEY
    assert set(rec.fields) == {"image_request"} and set(rec.files) == {"image_file"}
    assert rec.field_types["image_request"] == ["application/json"]
    (image,) = rec.files["image_file"]
    assert (image.format, image.content_type) == ("JPEG", "image/jpeg")
    assert json.loads(rec.fields["image_request"][0]) == {
        "prompt": "a beach",
        "image_weight": 50,
        "model": "V_3",  # settings default for ideogram-legacy
        "num_images": 1,
    }
    assert result.images[0].resolution == "1024x1024"


async def test_every_legacy_option_encoded(fake: FakeRemix) -> None:
    request = RemixRequest(
        "a beach",
        image_weight=30,
        seed=99,
        aspect_ratio="16x9",
        magic_prompt="ON",
        negative_prompt="people",
        num_images=2,
        style_type="design",
        palette_name="ember",
        model="V_2_TURBO",
    )
    await remix(fake, request)
    assert json.loads(fake.last().fields["image_request"][0]) == {
        "prompt": "a beach",
        "image_weight": 30,
        "model": "V_2_TURBO",
        "num_images": 2,
        "aspect_ratio": "ASPECT_16_9",
        "magic_prompt_option": "ON",
        "seed": 99,
        "style_type": "DESIGN",
        "negative_prompt": "people",
        "color_palette": {"name": "EMBER"},
    }


async def test_resolution_and_members(fake: FakeRemix) -> None:
    request = RemixRequest("x", resolution="1024x768", palette_members=("#abc:0.5",), model="V_2")
    result = await remix(fake, request)
    body = json.loads(fake.last().fields["image_request"][0])
    assert body["resolution"] == "RESOLUTION_1024_768"
    assert body["color_palette"] == {"members": [{"color_hex": "#abc", "color_weight": 0.5}]}
    assert result.images[0].resolution == "1024x768"


async def test_model_from_settings(fake: FakeRemix) -> None:
    await remix(fake, RemixRequest("x"), REMIXBOT_MODEL="V_1_TURBO")
    assert json.loads(fake.last().fields["image_request"][0])["model"] == "V_1_TURBO"


async def test_reseller_path_with_bearer(fake: FakeRemix) -> None:
    # A reseller answering its legacy path synchronously (one that answers with a task envelope
    # needs the task-proxy backend; see test_backends_task_proxy_legacy.py).
    fake.proxy_mode = "sync"
    await remix(
        fake,
        RemixRequest("x"),
        REMIXBOT_REMIX_PATH="/ideogram/remix",
        REMIXBOT_AUTH_SCHEME="bearer",
        REMIXBOT_MODEL="V_2_TURBO",  # the reseller's page lists V_1 … V_2_TURBO, not V_3
    )
    rec = fake.last()
    assert rec.path == "/ideogram/remix"
    assert rec.headers["Authorization"] == f"Bearer {API_KEY}" and "Api-Key" not in rec.headers


@pytest.mark.parametrize(
    ("kw", "refs", "message"),
    [
        (
            {"palette_name": "EMBER", "model": "V_1"},
            0,
            "color palette is not supported by model V_1",
        ),
        (
            {"palette_members": ("#fff",), "model": "V_2A_TURBO"},
            0,
            "not supported by model V_2A_TURBO",
        ),
        (
            {"negative_prompt": "dogs", "model": "V_3"},
            0,
            "negative_prompt is not supported by model V_3",
        ),
        (
            {"negative_prompt": "dogs", "model": "V_2A"},
            0,
            "negative_prompt is not supported by model V_2A",
        ),
        ({"style_type": "GENERAL", "model": "V_1"}, 0, "style_type is not supported by model V_1"),
        ({"style_preset": "WATERCOLOR"}, 0, "style_preset cannot be used"),
        ({"style_codes": ("0123abcd",)}, 0, "style codes cannot be used"),
        ({"style_ref_count": 1}, 1, "style reference images cannot be used"),
        ({"rendering_speed": "TURBO"}, 0, "rendering_speed cannot be used"),
        ({"aspect_ratio": "4x5"}, 0, "aspect_ratio must be one of 10x16"),
        (
            {"resolution": "1024x1024", "model": "V_1"},
            0,
            "resolution is only available with model V_2 or V_2_TURBO, not V_1",
        ),
        ({"model": "ideogram:4@2"}, 0, "model must be one of V_1"),
    ],
)
async def test_refusals_before_any_request(fake: FakeRemix, kw, refs, message) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await remix(fake, RemixRequest("x", **kw), [encoded()] * refs)
    assert fake.api_requests() == []


async def test_fake_rejects_what_the_real_api_would(fake: FakeRemix) -> None:
    # The fake is strict: a safety fault comes back as RemixRejected with the API's reason.
    fake.fail_next("422")
    with pytest.raises(RemixRejected, match="failed safety check"):
        await remix(fake, RemixRequest("x"))


@pytest.mark.parametrize(
    ("backend", "env", "named"),
    [
        ("ideogram-legacy", {}, "ideogram-legacy"),
        ("task-proxy", {"REMIXBOT_TASK_FORMAT": "legacy"}, "the task-proxy's legacy body"),
    ],
)
async def test_the_model_setting_names_the_default_each_legacy_body_sends(
    fake: FakeRemix, backend: str, env: dict[str, str], named: str
) -> None:
    settings = fake_settings(fake, backend, **env)
    async with aiohttp.ClientSession() as session:
        sent = make_backend(settings, session).model_for(RemixRequest("a beach"))  # type: ignore[attr-defined]
    documented = re.search(re.escape(named) + r" \([^)]*default (\w+)\)", SPECS["model"].doc)
    assert documented and documented[1] == sent, SPECS["model"].doc
