"""The task proxy's two submit bodies: which one (REMIXBOT_TASK_FORMAT or the path), the legacy
body through the fake with both replies, and the refusals of what each body cannot carry."""

from __future__ import annotations

import json

import aiohttp
import pytest

from bot.errors import InvalidRequest, RemixRejected
from bot.remix import enums
from bot.remix.backends import RemixResult, TaskProxyBackend, make_backend
from bot.remix.backends.ideogram_legacy import legacy_image_request
from bot.remix.backends.task_proxy import task_format
from bot.remix.request import RemixRequest
from bot.workflow import intake_limits
from tests.fakeremix import API_KEY, FakeRemix
from tests.fakeremix.helpers import encoded, fake_settings

LEGACY = "/ideogram/remix"
V3 = "/ideogram/v1/ideogram-v3/remix"


async def submit(
    fake: FakeRemix, request: RemixRequest, refs=(), seen: list[str] | None = None, **env: str
) -> RemixResult:
    settings = fake_settings(fake, "task-proxy", **env)
    async with aiohttp.ClientSession() as session:
        backend = make_backend(settings, session)
        assert isinstance(backend, TaskProxyBackend)
        backend.poll_first, backend.poll_cap = 0.05, 0.2

        async def submitted(task_id: str) -> None:
            if seen is not None:
                seen.append(task_id)

        return await backend.remix(request, encoded("JPEG"), list(refs), on_submitted=submitted)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"REMIXBOT_TASK_SUBMIT_PATH": LEGACY}, "legacy"),
        ({"REMIXBOT_TASK_SUBMIT_PATH": "/api/ideogram/remix/"}, "legacy"),
        ({"REMIXBOT_TASK_SUBMIT_PATH": V3}, "v3"),
        ({}, "v3"),  # the default submit path is the v3 one
        ({"REMIXBOT_TASK_SUBMIT_PATH": "/submit"}, "v3"),  # neither: the form it always sent
        ({"REMIXBOT_TASK_SUBMIT_PATH": V3, "REMIXBOT_TASK_FORMAT": "legacy"}, "legacy"),
        ({"REMIXBOT_TASK_SUBMIT_PATH": LEGACY, "REMIXBOT_TASK_FORMAT": "v3"}, "v3"),
    ],
)
def test_the_format_comes_from_the_setting_else_the_path(
    fake: FakeRemix, env: dict[str, str], expected: str
) -> None:
    settings = fake_settings(fake, "task-proxy", **env)
    assert task_format(settings) == expected
    ratios = enums.LEGACY_ASPECT_RATIOS if expected == "legacy" else enums.ASPECT_RATIOS
    assert TaskProxyBackend.ratios_for(settings) == ratios
    assert intake_limits(settings).ratios == ratios


async def test_legacy_body_task_envelope_then_polls(fake: FakeRemix) -> None:
    fake.task_polls = 1
    seen: list[str] = []
    request = RemixRequest("a beach", num_images=2, aspect_ratio="16x9", seed=9, style_type="anime")
    result = await submit(fake, request, seen=seen, REMIXBOT_TASK_SUBMIT_PATH=LEGACY)
    rec = fake.last()
    assert rec.path == LEGACY
    assert rec.headers["Authorization"] == f"Bearer {API_KEY}" and "Api-Key" not in rec.headers
    assert set(rec.fields) == {"image_request"} and set(rec.files) == {"image_file"}
    assert rec.field_types["image_request"] == ["application/json"]
    assert rec.files["image_file"][0].format == "JPEG"
    assert json.loads(rec.fields["image_request"][0]) == {
        "prompt": "a beach",
        "image_weight": 50,
        "model": "V_2",  # Ideogram's (and the reseller's) documented default
        "num_images": 2,
        "aspect_ratio": "ASPECT_16_9",
        "seed": 9,
        "style_type": "ANIME",
    }
    (task_id,) = seen
    assert result.backend_ref == task_id and len(result.images) == 2
    polls = [r for r in fake.requests if r.method == "GET"]
    assert len(polls) == 2 and all(p.path.endswith(task_id) for p in polls)


async def test_legacy_body_synchronous_reply(fake: FakeRemix) -> None:
    fake.proxy_mode = "sync"
    seen: list[str] = []
    result = await submit(
        fake, RemixRequest("x", seed=3), seen=seen, REMIXBOT_TASK_SUBMIT_PATH=LEGACY
    )
    assert seen == [] and [r.method for r in fake.requests] == ["POST"]
    assert result.images[0].seed == 3 and result.images[0].resolution == "1024x1024"


async def test_v3_body_still_works_both_ways(fake: FakeRemix) -> None:
    await submit(fake, RemixRequest("x"), REMIXBOT_TASK_SUBMIT_PATH=V3)
    assert fake.last().files["image"][0].format == "JPEG"
    fake.proxy_mode = "sync"
    result = await submit(fake, RemixRequest("x", seed=4), REMIXBOT_TASK_SUBMIT_PATH=V3)
    assert result.images[0].seed == 4


async def test_legacy_model_from_the_request_or_settings(fake: FakeRemix) -> None:
    await submit(fake, RemixRequest("x"), REMIXBOT_TASK_SUBMIT_PATH=LEGACY, REMIXBOT_MODEL="V_1")
    assert json.loads(fake.last().fields["image_request"][0])["model"] == "V_1"
    await submit(fake, RemixRequest("x", model="V_2_TURBO"), REMIXBOT_TASK_SUBMIT_PATH=LEGACY)
    assert json.loads(fake.last().fields["image_request"][0])["model"] == "V_2_TURBO"


@pytest.mark.parametrize(
    ("kw", "refs", "message"),
    [
        ({"rendering_speed": "TURBO"}, 0, r"rendering_speed cannot be used on the task-proxy"),
        ({"style_preset": "WATERCOLOR"}, 0, "style_preset cannot be used"),
        ({"style_codes": ("0123abcd",)}, 0, "style codes cannot be used"),
        ({"style_ref_count": 1}, 1, "style reference images cannot be used"),
        ({"aspect_ratio": "4x5"}, 0, "aspect_ratio must be one of 10x16"),
        ({"model": "ideogram:4@2"}, 0, "model must be one of V_1"),
        ({"palette_name": "EMBER", "model": "V_1"}, 0, "color palette is not supported"),
        ({"resolution": "1024x1024", "model": "V_1"}, 0, "resolution is only available"),
        ({"style_type": "GENERAL", "model": "V_1_TURBO"}, 0, "style_type is not supported"),
    ],
)
async def test_legacy_body_refusals_before_anything_is_sent(
    fake: FakeRemix, kw, refs, message
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await submit(
            fake, RemixRequest("x", **kw), [encoded()] * refs, REMIXBOT_TASK_SUBMIT_PATH=LEGACY
        )
    assert fake.api_requests() == []


# The reseller's page (`image_request`): "model" optional values V_1/V_1_TURBO/V_2/V_2_TURBO,
# "style_type" optional values AUTO/GENERAL/REALISTIC/DESIGN/RENDER_3D/ANIME.
RESELLER_MODELS = "V_1, V_1_TURBO, V_2, V_2_TURBO"
RESELLER_STYLES = "AUTO, GENERAL, REALISTIC, DESIGN, RENDER_3D, ANIME"


@pytest.mark.parametrize(
    ("kw", "env", "message"),
    [
        *(
            ({"model": m}, {}, f"model must be one of {RESELLER_MODELS} on the task-proxy backend")
            for m in ("V_2A", "V_2A_TURBO", "V_3", "AUTO")
        ),
        ({}, {"REMIXBOT_MODEL": "V_3"}, f"model must be one of {RESELLER_MODELS}"),
        *(
            (
                {"style_type": t},
                {},
                f"style_type must be one of {RESELLER_STYLES} on the task-proxy",
            )
            for t in ("FICTION", "CUSTOM", "STYLIZED")
        ),
    ],
)
async def test_legacy_body_sends_only_what_the_resellers_page_lists(
    fake: FakeRemix, kw: dict, env: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message) as info:
        await submit(fake, RemixRequest("x", **kw), REMIXBOT_TASK_SUBMIT_PATH=LEGACY, **env)
    sent = kw.get("model") or kw.get("style_type") or env["REMIXBOT_MODEL"]
    assert str(info.value).endswith(f"not {sent!r}.") and str(info.value).count(".") == 1
    assert fake.api_requests() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("model", "V_3"), ("model", "V_2A_TURBO"), ("model", "AUTO"), ("style_type", "FICTION")],
)
async def test_the_fakes_legacy_proxy_refuses_what_the_page_does_not_list(
    fake: FakeRemix, field: str, value: str
) -> None:
    # What a strict reseller does with a body the bot no longer sends: a 400, nothing queued.
    settings = fake_settings(fake, "task-proxy", REMIXBOT_TASK_SUBMIT_PATH=LEGACY)
    async with aiohttp.ClientSession() as session:
        backend = make_backend(settings, session)
        assert isinstance(backend, TaskProxyBackend)
        request = RemixRequest("x", model="V_2")
        with pytest.raises(RemixRejected, match=rf"HTTP 400\): Invalid {field}") as info:
            await backend.post(
                LEGACY, lambda: {"data": _legacy_form_with(request, field, value)}, what="submit"
            )
    assert "one of" in str(info.value)
    assert fake.tasks == {}


def _legacy_form_with(request: RemixRequest, field: str, value: str) -> aiohttp.FormData:
    """The legacy body the bot would send, with one `image_request` field changed."""
    body = legacy_image_request(request, "V_2") | {field: value}
    form = aiohttp.FormData()
    form.add_field("image_request", json.dumps(body), content_type="application/json")
    image = encoded("JPEG")
    form.add_field("image_file", image.data, filename="image.jpg", content_type=image.mime)
    return form


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"model": "V_2"}, "model cannot be chosen on the task-proxy backend"),
        ({"style_type": "ANIME"}, "style_type must be one of AUTO, GENERAL"),
    ],
)
async def test_v3_body_refusals_before_anything_is_sent(fake: FakeRemix, kw, message) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await submit(fake, RemixRequest("x", **kw), REMIXBOT_TASK_SUBMIT_PATH=V3)
    assert fake.api_requests() == []


async def test_every_legacy_option_through_the_reseller(fake: FakeRemix) -> None:
    request = RemixRequest(
        "x",
        image_weight=20,
        resolution="1024x768",
        magic_prompt="on",
        negative_prompt="rain",
        palette_members=("#b470b3:0.4", "#fff:0.9"),
        model="V_2",
    )
    result = await submit(fake, request, REMIXBOT_TASK_SUBMIT_PATH=LEGACY)
    body = json.loads(fake.last().fields["image_request"][0])
    assert body["resolution"] == "RESOLUTION_1024_768" and body["magic_prompt_option"] == "ON"
    assert body["color_palette"]["members"][0] == {"color_hex": "#fff", "color_weight": 0.9}
    assert body["negative_prompt"] == "rain" and body["image_weight"] == 20
    assert result.images


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # The wrong body for the path: what the issue saw, and its mirror image.
        (
            {"REMIXBOT_TASK_SUBMIT_PATH": LEGACY, "REMIXBOT_TASK_FORMAT": "v3"},
            "image_request: required field is missing; "
            "image_file: required file part 'image_file' is missing",
        ),
        (
            {"REMIXBOT_TASK_SUBMIT_PATH": V3, "REMIXBOT_TASK_FORMAT": "legacy"},
            "prompt: required field is missing; image: required file part 'image' is missing",
        ),
    ],
)
async def test_the_wrong_body_for_a_path_gets_the_fakes_400(
    fake: FakeRemix, env: dict[str, str], message: str
) -> None:
    with pytest.raises(RemixRejected, match=message):
        await submit(fake, RemixRequest("x"), **env)
    assert len(fake.api_requests()) == 1
