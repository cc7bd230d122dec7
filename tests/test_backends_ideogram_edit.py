"""The reseller's edit endpoint through the fake: flat fields, Bearer, the mask, option refusals."""

from __future__ import annotations

import io

import aiohttp
import pytest
from PIL import Image

from bot.errors import InvalidImage, InvalidRequest, RemixRejected
from bot.media import EncodedImage
from bot.remix.backends import IdeogramEditBackend, RemixResult, make_backend
from bot.remix.request import RemixRequest
from tests.fakeremix import API_KEY, FakeRemix
from tests.fakeremix.helpers import encoded, fake_settings

IMAGE = encoded("PNG", size=(96, 64))


def bw_mask(size: tuple[int, int] = (96, 64), shade: int = 0) -> EncodedImage:
    """White (keep) with the left half `shade` (0: change)."""
    im = Image.new("L", size, 255)
    im.paste(shade, (0, 0, size[0] // 2, size[1]))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return EncodedImage(buf.getvalue(), "PNG", *size)


async def edit(
    fake: FakeRemix,
    request: RemixRequest,
    mask: EncodedImage | None = None,
    refs=(),
    backend: str = "ideogram-edit",
    **env: str,
) -> RemixResult:
    settings = fake_settings(fake, backend, **env)
    async with aiohttp.ClientSession() as session:
        b = make_backend(settings, session)
        return await b.remix(request, IMAGE, list(refs), mask=mask)


async def test_flat_fields_bearer_and_no_mask_part_without_a_mask(fake: FakeRemix) -> None:
    result = await edit(fake, RemixRequest("a cat in a hat"))
    rec = fake.last()
    assert rec.path == "/ideogram/edit"
    assert rec.headers["Authorization"] == f"Bearer {API_KEY}" and "Api-Key" not in rec.headers
    assert rec.headers["Accept"] == "application/json"  # as the same reseller's task proxy asks
    # The reseller marks `mask` optional: without one the whole image is edited.
    assert set(rec.files) == {"image_file"}
    assert rec.files["image_file"][0].data == IMAGE.data
    assert rec.fields == {"prompt": ["a cat in a hat"], "model": ["V_2_TURBO"]}
    (image,) = result.images
    assert image.url and image.is_safe and image.resolution == "96x64"
    assert result.backend == "ideogram-edit"


async def test_every_edit_option_and_the_mask_are_sent(fake: FakeRemix) -> None:
    request = RemixRequest(
        "a hat", seed=77, magic_prompt="off", style_type="render_3d", model="V_2", has_mask=True
    )
    mask = bw_mask()
    result = await edit(fake, request, mask)
    rec = fake.last()
    assert rec.fields == {
        "prompt": ["a hat"],
        "model": ["V_2"],
        "magic_prompt_option": ["OFF"],
        "seed": ["77"],
        "style_type": ["RENDER_3D"],
    }
    (part,) = rec.files["mask"]
    assert (part.data, part.content_type, part.format) == (mask.data, "image/png", "PNG")
    assert result.images[0].seed == 77


async def test_model_and_path_from_settings(fake: FakeRemix) -> None:
    await edit(fake, RemixRequest("x"), REMIXBOT_MODEL="V_1")
    assert fake.last().fields["model"] == ["V_1"]
    with pytest.raises(RemixRejected):  # the fake serves no such path: a 404
        await edit(fake, RemixRequest("x"), REMIXBOT_REMIX_PATH="/v2/ideogram/edit")
    assert fake.hits[-1] == "/v2/ideogram/edit"


async def test_a_transparent_derived_mask_needs_no_flag(fake: FakeRemix) -> None:
    await edit(fake, RemixRequest("fill the hole"), bw_mask())
    assert "mask" in fake.last().files


@pytest.mark.parametrize(
    ("kw", "refs", "message"),
    [
        ({"image_weight": 70}, 0, "image_weight cannot be used on the ideogram-edit backend"),
        ({"resolution": "1024x1024"}, 0, "resolution cannot be used"),
        ({"rendering_speed": "TURBO"}, 0, "rendering_speed cannot be used"),
        ({"negative_prompt": "dogs"}, 0, "negative_prompt cannot be used"),
        ({"palette_name": "EMBER"}, 0, "a color palette cannot be used"),
        ({"style_preset": "WATERCOLOR"}, 0, "style_preset cannot be used"),
        ({"style_codes": ("0123abcd",)}, 0, "style codes cannot be used"),
        ({"style_ref_count": 1}, 1, "style reference images cannot be used"),
        ({"num_images": 2}, 0, "num_images must be 1 on the ideogram-edit backend"),
        ({"model": "V_3"}, 0, "model must be one of V_1, V_1_TURBO, V_2, V_2_TURBO"),
        ({"style_type": "FICTION"}, 0, "style_type must be one of AUTO, GENERAL, REALISTIC"),
        ({"style_type": "ANIME", "model": "V_1_TURBO"}, 0, "not supported by model V_1_TURBO"),
    ],
)
async def test_refusals_before_any_request(fake: FakeRemix, kw, refs, message) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await edit(fake, RemixRequest("x", **kw), refs=[IMAGE] * refs)
    assert fake.api_requests() == []


async def test_an_aspect_ratio_is_honoured_by_the_crop_not_refused(fake: FakeRemix) -> None:
    await edit(fake, RemixRequest("x", aspect_ratio="3x2"))
    assert "aspect_ratio" not in fake.last().fields


async def test_a_mask_of_another_size_is_refused_before_sending(fake: FakeRemix) -> None:
    with pytest.raises(InvalidImage, match="exactly the image's size, 96x64 pixels, not 48x32"):
        await edit(fake, RemixRequest("x", has_mask=True), bw_mask((48, 32)))
    assert fake.api_requests() == []


async def test_a_lost_mask_is_refused_rather_than_editing_everything(fake: FakeRemix) -> None:
    with pytest.raises(InvalidRequest, match="mask of this remix is no longer available"):
        await edit(fake, RemixRequest("x", has_mask=True))
    assert fake.api_requests() == []


@pytest.mark.parametrize("backend", ["ideogram", "ideogram-legacy", "runware", "task-proxy"])
async def test_a_mask_on_a_backend_that_cannot_take_one_is_refused(
    fake: FakeRemix, backend: str
) -> None:
    with pytest.raises(InvalidRequest, match=f"A mask cannot be used on the {backend} backend"):
        await edit(fake, RemixRequest("x", has_mask=True), bw_mask(), backend=backend)
    with pytest.raises(InvalidRequest, match=f"A mask cannot be used on the {backend} backend"):
        await edit(fake, RemixRequest("x"), bw_mask(), backend=backend)  # the argument alone
    settings = fake_settings(fake, backend)
    async with aiohttp.ClientSession() as session:
        b = make_backend(settings, session)
        assert not b.takes_mask
        with pytest.raises(InvalidRequest, match="A mask cannot be used"):
            b.check(RemixRequest("x", has_mask=True), 0)
    assert fake.api_requests() == []


async def test_make_backend_builds_it(fake: FakeRemix) -> None:
    async with aiohttp.ClientSession() as session:
        b = make_backend(fake_settings(fake, "ideogram-edit"), session)
        assert isinstance(b, IdeogramEditBackend) and b.takes_mask


# --- the fake answers as the endpoint would -----------------------------------------------------
async def post_form(fake: FakeRemix, parts: dict[str, bytes | str]) -> tuple[int, dict]:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in parts.items():
        if isinstance(value, bytes):
            form.add_field(name, value, filename=f"{name}.png", content_type="image/png")
        else:
            form.add_field(name, value)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake.base_url + "/ideogram/edit",
            data=form,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as resp,
    ):
        return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ({"image_request": '{"prompt": "x"}'}, "image_file: required file part 'image_file'"),
        ({"image_file": IMAGE.data, "mask": bw_mask((48, 32)).data, "prompt": "x"}, "same size"),
        ({"image_file": IMAGE.data, "mask": bw_mask(shade=128).data, "prompt": "x"}, "black and"),
        ({"image_file": IMAGE.data, "mask": bw_mask(shade=255).data, "prompt": "x"}, "no black"),
        ({"image_file": IMAGE.data, "prompt": "x", "model": "V_3"}, "Invalid model"),
        ({"image_file": IMAGE.data, "prompt": "x", "num_images": "2"}, "Unknown field"),
    ],
)
async def test_fake_refuses_what_the_endpoint_would(fake: FakeRemix, parts, message) -> None:
    status, body = await post_form(fake, parts)
    assert status == 400 and message in body["error"]


async def test_a_fake_400_is_a_rejection(fake: FakeRemix) -> None:
    fake.fail_next("400")
    with pytest.raises(RemixRejected, match="Injected HTTP 400"):
        await edit(fake, RemixRequest("x"))


async def test_the_reply_matches_the_documented_shape(fake: FakeRemix) -> None:
    status, body = await post_form(fake, {"image_file": IMAGE.data, "prompt": "x", "seed": "5"})
    assert status == 200 and set(body) == {"created", "data"}
    (item,) = body["data"]
    assert set(item) == {"url", "seed", "prompt", "resolution", "is_image_safe"}
    assert (item["seed"], item["resolution"]) == (5, "96x64")
