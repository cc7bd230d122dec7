"""Runware backend through the fake: the imageInference task field by field, sizes, refusals."""

from __future__ import annotations

import base64
import re

import aiohttp
import pytest

from bot.errors import InvalidRequest, RemixOutcomeUnknown, RemixRejected
from bot.remix import enums
from bot.remix.backends import RemixResult, RunwareBackend, make_backend
from bot.remix.backends.runware import nearest_size, remix_strength
from bot.remix.request import RemixRequest
from tests.fakeremix import API_KEY, FakeRemix
from tests.fakeremix.helpers import encoded, fake_settings

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def remix(fake: FakeRemix, request: RemixRequest, refs=(), **env: str) -> RemixResult:
    settings = fake_settings(fake, "runware", **env)
    async with aiohttp.ClientSession() as session:
        backend = make_backend(settings, session)
        assert isinstance(backend, RunwareBackend)
        return await backend.remix(request, encoded("PNG"), list(refs))


def task_of(fake: FakeRemix) -> dict:
    rec = fake.last()
    assert rec.path == "/v1"
    assert rec.headers["Authorization"] == f"Bearer {API_KEY}" and "Api-Key" not in rec.headers
    assert rec.headers["Content-Type"].startswith("application/json")
    assert isinstance(rec.json, list) and len(rec.json) == 1
    return rec.json[0]


async def test_minimal_task(fake: FakeRemix) -> None:
    result = await remix(fake, RemixRequest("a cyberpunk city"))
    task = task_of(fake)
    assert UUID4.match(task.pop("taskUUID"))
    (ref,) = task.pop("referenceImages")
    assert ref.startswith("data:image/png;base64,")
    assert base64.b64decode(ref.split(",", 1)[1]) == encoded("PNG").data
    assert task == {
        "taskType": "imageInference",
        "model": "ideogram:4@2",
        "positivePrompt": "a cyberpunk city",
        "width": 1024,
        "height": 1024,
        "numberResults": 1,
        "outputType": "URL",
        "deliveryMethod": "sync",
        "providerSettings": {"ideogram": {"remixStrength": 50}},  # both defaults
    }
    assert result.backend_ref and UUID4.match(result.backend_ref)
    assert result.images[0].url and result.images[0].resolution == "1024x1024"


async def test_every_option_mapped(fake: FakeRemix) -> None:
    refs = [encoded("JPEG", color=5)]
    request = RemixRequest(
        "a poster",
        image_weight=80,
        seed=77,
        aspect_ratio="16x9",
        rendering_speed="QUALITY",
        magic_prompt="ON",
        negative_prompt="blur",
        num_images=2,
        style_preset="TRAVEL_POSTER",
        style_type="REALISTIC",
        style_ref_count=1,
    )
    result = await remix(fake, request, refs)
    task = task_of(fake)
    assert (task["width"], task["height"]) == (1312, 736)  # nearest 3.0 size to 16:9
    assert task["numberResults"] == 2 and task["seed"] == 77
    assert task["negativePrompt"] == "blur"
    ideogram = task["providerSettings"]["ideogram"]
    style_refs = ideogram.pop("styleReferenceImages")
    assert [base64.b64decode(s.split(",", 1)[1]) for s in style_refs] == [refs[0].data]
    assert style_refs[0].startswith("data:image/jpeg;base64,")
    assert ideogram == {
        "remixStrength": 20,
        "renderingSpeed": "QUALITY",
        "magicPrompt": "ON",
        "styleType": "REALISTIC",
        "stylePreset": "TRAVEL_POSTER",
    }
    assert [i.seed for i in result.images] == [77, 78]


async def test_explicit_resolution(fake: FakeRemix) -> None:
    await remix(fake, RemixRequest("x", resolution="1280x800"))
    task = task_of(fake)
    assert (task["width"], task["height"]) == (1280, 800)
    assert "styleCode" not in task["providerSettings"]["ideogram"]


async def test_older_model_sizes_and_styles(fake: FakeRemix) -> None:
    await remix(
        fake, RemixRequest("x", aspect_ratio="9x16", style_type="ANIME", model="ideogram:1@2")
    )
    task = task_of(fake)
    assert task["model"] == "ideogram:1@2"
    assert (task["width"], task["height"]) == (720, 1280)  # the 1.0 list's nearest to 9:16
    assert task["providerSettings"]["ideogram"]["styleType"] == "ANIME"


def test_size_rule_and_strength_mapping() -> None:
    assert nearest_size(enums.RESOLUTIONS, 1.0) == (1024, 1024)
    assert nearest_size(enums.RUNWARE_V1_SIZES, 16 / 9) == (1280, 720)
    assert nearest_size(enums.RESOLUTIONS, 3.0) == (1536, 512)
    # Runware's default 50 is image_weight's default 50; never below Runware's minimum of 1.
    assert [remix_strength(w) for w in (1, 50, 80, 99, 100)] == [99, 50, 20, 1, 1]
    strengths = [remix_strength(w) for w in range(1, 101)]
    assert strengths == sorted(strengths, reverse=True) and min(strengths) == 1


@pytest.mark.parametrize(
    ("kw", "refs", "message"),
    [
        ({"palette_name": "EMBER"}, 0, "color palette is not available on the runware backend"),
        ({"rendering_speed": "FLASH"}, 0, "rendering_speed must be one of TURBO, DEFAULT, QUALITY"),
        ({"rendering_speed": "QUALITY", "model": "ideogram:3@2"}, 0, "one of TURBO, DEFAULT for"),
        (
            {"style_type": "ANIME"},
            0,
            "style_type must be one of AUTO, GENERAL, REALISTIC, DESIGN, FICTION",
        ),
        ({"style_type": "STYLIZED", "model": "ideogram:2@2"}, 0, "style_type must be one of"),
        (
            {"style_preset": "WATERCOLOR", "model": "ideogram:3@2"},
            0,
            "style_preset needs Ideogram 3.0",
        ),
        (
            {"style_codes": ("0123abcd",), "model": "ideogram:2@2"},
            0,
            "style codes need Ideogram 3.0",
        ),
        # Runware: styleCode "cannot be used together with … referenceImages" (every remix).
        (
            {"style_codes": ("0123abcd",)},
            0,
            "style codes cannot be used for a remix on the runware",
        ),
        ({"negative_prompt": "x", "model": "ideogram:2@2"}, 0, "negative_prompt is not supported"),
        ({"seed": 0}, 0, "seed must be from 1 to 2147483647 on Runware, not 0"),
        ({"resolution": "1024x768"}, 0, "resolution 1024x768 is not allowed for ideogram:4@2"),
        ({"resolution": "1280x800", "model": "ideogram:2@2"}, 0, "not allowed for ideogram:2@2"),
        ({"model": "V_3"}, 0, "model must be one of ideogram:1@2"),
    ],
)
async def test_refusals_before_any_request(fake: FakeRemix, kw, refs, message) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        await remix(fake, RemixRequest("x", **kw), [encoded()] * refs)
    assert fake.api_requests() == []


async def test_runware_error_envelope_becomes_rejection(fake: FakeRemix) -> None:
    # An option the fake (like Runware) refuses: seen through the errors envelope's message.
    settings = fake_settings(fake, "runware")
    async with aiohttp.ClientSession() as session:
        backend = make_backend(settings, session)
        assert isinstance(backend, RunwareBackend)
        task = backend.task(RemixRequest("x"), encoded(), [], "not-a-uuid")
        with pytest.raises(
            RemixRejected, match=r"taskUUID must be a UUID v4 \(parameter taskUUID\)"
        ):
            await backend.post("/v1", lambda: {"json": [task]})


async def test_reply_without_data_is_outcome_unknown(fake: FakeRemix) -> None:
    # An HTTP 200 means the task ran (and was billed): never "not charged, try again".
    fake.fail_next("missing_data")
    with pytest.raises(RemixOutcomeUnknown, match="no `data`"):
        await remix(fake, RemixRequest("x"))
