"""Ideogram v3 backend through the fake: the multipart form field by field, and every fault mapped."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest

from bot.errors import (
    InvalidRequest,
    RemixAuthError,
    RemixOutcomeUnknown,
    RemixRateLimited,
    RemixRejected,
    RemixUnavailable,
)
from bot.remix.backends import IdeogramV3Backend, RemixResult, make_backend
from bot.remix.backends.http import backend_reason, parse_retry_after
from bot.remix.request import RemixRequest
from tests.fakeremix import API_KEY, FakeRemix
from tests.fakeremix.helpers import encoded, fake_settings


async def remix(fake: FakeRemix, request: RemixRequest, refs=(), **settings_kw) -> RemixResult:
    settings = fake_settings(fake, "ideogram", **settings_kw)
    async with aiohttp.ClientSession() as session:
        backend = make_backend(settings, session)
        assert isinstance(backend, IdeogramV3Backend)
        return await backend.remix(request, encoded("PNG"), list(refs))


async def test_minimal_request_fields(fake: FakeRemix) -> None:
    result = await remix(fake, RemixRequest("a cat"))
    rec = fake.last()
    assert rec.path == "/v1/ideogram-v3/remix"
    assert rec.headers["Api-Key"] == API_KEY
    assert "Authorization" not in rec.headers
    assert rec.fields == {"prompt": ["a cat"], "image_weight": ["50"], "num_images": ["1"]}
    (image,) = rec.files["image"]
    assert (image.format, image.content_type, image.filename) == ("PNG", "image/png", "image.png")
    assert image.data == encoded("PNG").data
    assert result.backend == "ideogram" and len(result.images) == 1
    out = result.images[0]
    assert out.is_safe and out.url and out.url.startswith(fake.base_url + "/images/")
    assert (out.resolution, out.prompt) == ("1024x1024", "a cat")


async def test_every_option_encoded(fake: FakeRemix) -> None:
    request = RemixRequest(
        "a watercolor poster",
        image_weight=70,
        seed=1234,
        aspect_ratio="16x9",
        rendering_speed="QUALITY",
        magic_prompt="OFF",
        negative_prompt="text, watermark",
        num_images=3,
        palette_members=("#b470b3:0.6", "#ffffff"),
        style_preset="WATERCOLOR",
        style_codes=("0123abcd", "DEADBEEF"),
    )
    result = await remix(fake, request)
    rec = fake.last()
    assert rec.fields["prompt"] == ["a watercolor poster"]
    assert rec.fields["image_weight"] == ["70"]
    assert rec.fields["seed"] == ["1234"]
    assert rec.fields["aspect_ratio"] == ["16x9"]
    assert "resolution" not in rec.fields
    assert rec.fields["rendering_speed"] == ["QUALITY"]
    assert rec.fields["magic_prompt"] == ["OFF"]
    assert rec.fields["negative_prompt"] == ["text, watermark"]
    assert rec.fields["num_images"] == ["3"]
    assert rec.fields["style_preset"] == ["WATERCOLOR"]
    assert rec.fields["style_codes"] == ["0123ABCD", "DEADBEEF"]  # repeated field
    assert "style_type" not in rec.fields
    assert rec.field_types["color_palette"] == ["application/json"]
    assert json.loads(rec.fields["color_palette"][0]) == {
        "members": [{"color_hex": "#b470b3", "color_weight": 0.6}, {"color_hex": "#ffffff"}]
    }
    assert [i.seed for i in result.images] == [1234, 1235, 1236]


async def test_style_references_palette_name_and_resolution(fake: FakeRemix) -> None:
    refs = [encoded("JPEG", color=1), encoded("WEBP", color=2)]
    request = RemixRequest(
        "x", resolution="1280x800", style_type="fiction", palette_name="pastel", style_ref_count=2
    )
    result = await remix(fake, request, refs)
    rec = fake.last()
    assert rec.fields["resolution"] == ["1280x800"] and "aspect_ratio" not in rec.fields
    assert rec.fields["style_type"] == ["FICTION"]
    assert json.loads(rec.fields["color_palette"][0]) == {"name": "PASTEL"}
    parts = rec.files["style_reference_images"]
    assert [(p.format, p.content_type) for p in parts] == [
        ("JPEG", "image/jpeg"),
        ("WEBP", "image/webp"),
    ]
    assert [p.data for p in parts] == [r.data for r in refs]
    assert result.images[0].resolution == "1280x800"


async def test_bearer_scheme_and_custom_path(fake: FakeRemix) -> None:
    # A reseller serving the v3 form under its own path with Bearer auth (the fake's proxy path).
    fake.proxy_mode = "sync"
    await remix(
        fake,
        RemixRequest("x"),
        REMIXBOT_AUTH_SCHEME="bearer",
        REMIXBOT_REMIX_PATH="/ideogram/v1/ideogram-v3/remix",
    )
    rec = fake.last()
    assert rec.headers["Authorization"] == f"Bearer {API_KEY}"
    assert "Api-Key" not in rec.headers


@pytest.mark.parametrize(
    ("request_kw", "refs", "message"),
    [
        ({"model": "V_2"}, 0, "model cannot be chosen on the ideogram backend"),
        ({"style_type": "ANIME"}, 0, "style_type must be one of AUTO, GENERAL"),
        ({"resolution": "1024x768"}, 0, "resolution must be one of the 69 Ideogram 3.0"),
        ({"style_codes": ("0123abcd",)}, 1, "style codes cannot be combined with style reference"),
    ],
)
async def test_refused_before_any_request(fake: FakeRemix, request_kw, refs, message) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await remix(fake, RemixRequest("x", **request_kw), [encoded()] * refs)
    assert fake.api_requests() == []


async def test_oversized_refs_refused_before_sending(fake: FakeRemix) -> None:
    big = encoded("PNG")
    big = type(big)(data=big.data + b"\0" * 6_000_000, format="PNG", width=96, height=64)
    with pytest.raises(InvalidRequest, match="at most 10 MB together"):
        await remix(fake, RemixRequest("x", style_ref_count=2), [big, big])
    assert fake.api_requests() == []


# --- faults ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "error", "fragment"),
    [
        ("400", RemixRejected, "Injected HTTP 400"),
        ("404", RemixRejected, "Injected HTTP 404"),
        ("422", RemixRejected, "failed safety check"),
        ("401", RemixAuthError, "HTTP 401"),
        ("402", RemixAuthError, "balance and limits"),
        ("403", RemixAuthError, "HTTP 403"),
        ("500", RemixUnavailable, "HTTP 500"),
        ("503", RemixUnavailable, "HTTP 503"),
        # A gateway gave up waiting: the remix may still run and be billed.
        ("502", RemixOutcomeUnknown, "gateway timed out (HTTP 502)"),
        ("504", RemixOutcomeUnknown, "gateway timed out (HTTP 504)"),
        ("524", RemixOutcomeUnknown, "gateway timed out (HTTP 524)"),
        ("malformed", RemixOutcomeUnknown, "not valid JSON"),
        ("missing_data", RemixOutcomeUnknown, "no `data` list"),
        # A 2xx ran and is billed even when it lists no image: never "not charged, try again".
        ("empty_data", RemixOutcomeUnknown, "empty list of images"),
        ("redirect", RemixUnavailable, "redirect"),
    ],
)
async def test_fault_maps_to_error(fake: FakeRemix, kind: str, error: type, fragment: str) -> None:
    fake.fail_next(kind)
    with pytest.raises(error) as info:
        await remix(fake, RemixRequest("x"))
    assert fragment in str(info.value)
    assert API_KEY not in str(info.value)
    assert len(fake.api_requests()) == 1  # never resubmitted
    assert "/elsewhere" not in fake.hits  # redirects of the paid POST are not followed


def test_402_reason_is_read_from_reject_reason() -> None:
    # Ideogram's 402 "includes reject_reason (insufficient_funds, daily_limit)".
    from bot.remix.backends.http import backend_reason, map_status

    assert backend_reason(b'{"reject_reason": "daily_limit"}', 402) == "daily_limit"
    error = map_status("ideogram", 402, b'{"reject_reason": "insufficient_funds"}')
    assert isinstance(error, RemixAuthError)
    assert "HTTP 402: insufficient_funds" in str(error)


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        ("402", "HTTP 402: Insufficient funds (insufficient_funds)"),
        ("402_daily", "HTTP 402: Out of credit (daily_limit)"),
    ],
)
async def test_402_names_its_reject_reason_beside_the_message(
    fake: FakeRemix, kind: str, shown: str
) -> None:
    # The admin must learn which limit stopped the account: the balance or the daily limit.
    fake.fail_next(kind)
    with pytest.raises(RemixAuthError) as info:
        await remix(fake, RemixRequest("x"))
    assert shown in str(info.value)
    assert len(fake.api_requests()) == 1


async def test_wrong_key_is_an_auth_error(fake: FakeRemix) -> None:
    with pytest.raises(RemixAuthError, match="REMIXBOT_API_KEY") as info:
        await remix(fake, RemixRequest("x"), REMIXBOT_API_KEY="wrong-key-123")
    assert "wrong-key-123" not in str(info.value)


async def test_429_retried_then_succeeds(fake: FakeRemix) -> None:
    fake.fail_next("429_rate", times=2, retry_after="0")
    result = await remix(fake, RemixRequest("x"))
    assert len(result.images) == 1
    assert len(fake.api_requests()) == 3


async def test_429_honours_retry_after_seconds(fake: FakeRemix) -> None:
    fake.fail_next("429_rate", times=1, retry_after="1")
    start = time.monotonic()
    await remix(fake, RemixRequest("x"))
    assert time.monotonic() - start >= 0.95
    assert len(fake.api_requests()) == 2


async def test_429_beyond_budget_is_rate_limited(fake: FakeRemix) -> None:
    fake.fail_next("429_rate", times=5, retry_after="30")
    start = time.monotonic()
    with pytest.raises(RemixRateLimited, match=r"busy") as info:
        await remix(fake, RemixRequest("x"))
    assert info.value.retry_after == 30
    assert time.monotonic() - start < 1.0  # no pointless waiting when the wait exceeds the budget
    assert len(fake.api_requests()) == 1


async def test_hang_is_outcome_unknown_and_not_resubmitted(fake: FakeRemix) -> None:
    fake.fail_next("hang")
    start = time.monotonic()
    with pytest.raises(RemixOutcomeUnknown, match="not resubmitted") as info:
        await remix_with_timeout(fake, 0.6)
    assert info.value.may_have_run
    assert time.monotonic() - start < 2.0
    assert len(fake.api_requests()) == 1


async def remix_with_timeout(fake: FakeRemix, seconds: float) -> RemixResult:
    settings = fake_settings(fake, "ideogram", overrides={"backend_timeout": seconds})
    async with aiohttp.ClientSession() as session:
        return await make_backend(settings, session).remix(RemixRequest("x"), encoded(), [])


async def test_connection_refused_is_unavailable(fake: FakeRemix) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = fake_settings(fake, "ideogram", REMIXBOT_BACKEND_URL=f"http://127.0.0.1:{port}")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RemixUnavailable, match="could not be reached"):
            await make_backend(settings, session).remix(RemixRequest("x"), encoded(), [])


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    when = datetime.now(UTC) + timedelta(seconds=120)
    assert 100 < parse_retry_after(format_datetime(when, usegmt=True)) <= 121


def test_backend_reason_is_redacted_and_trimmed() -> None:
    body = json.dumps(
        {"error": f"key {API_KEY} is bad: https://x/img.png?exp=1&sig=abcdef " + "y" * 400}
    )
    reason = backend_reason(body.encode(), 400)
    assert API_KEY not in reason and "abcdef" not in reason
    assert len(reason) <= 200
    assert backend_reason(
        b'{"errors": [{"message": "Invalid size", "parameter": "width"}]}', 400
    ) == ("Invalid size (parameter width)")
    assert backend_reason(b"<html>oops</html>", 502) == "HTTP 502"


@pytest.mark.parametrize(("stated", "limit"), [(0, None), (6, 6)])
async def test_an_inflight_429_is_raised_at_once_with_the_stated_limit(
    fake: FakeRemix, stated: int, limit: int | None
) -> None:
    """The caller's in-flight budget learns from it (bot/jobs/budget.py): no retry here."""
    fake.max_inflight_stated = stated
    fake.fail_next("429", times=1, retry_after="2")
    with pytest.raises(RemixRateLimited, match="in-flight limit") as info:
        await remix(fake, RemixRequest("x"))
    assert info.value.limit == limit and info.value.retry_after == 2
    assert not info.value.may_have_run and len(fake.api_requests()) == 1
