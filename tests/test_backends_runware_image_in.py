"""Where Runware's source image goes (REMIXBOT_RUNWARE_IMAGE_IN): each setting against a fake that
takes it at the top level (Runware's provider page) and one that takes it inside `inputs` (its
model pages), the one resend `auto` may make, and everything after which it never resends."""

from __future__ import annotations

import logging
import re

import aiohttp
import pytest

from bot.errors import (
    RemixError,
    RemixOutcomeUnknown,
    RemixRejected,
    RemixUnavailable,
)
from bot.media import EncodedImage
from bot.remix.backends import RemixResult, RunwareBackend, make_backend
from bot.remix.request import RemixRequest
from tests.fakeremix import API_KEY, FakeRemix
from tests.fakeremix.helpers import encoded, fake_settings

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def places(fake: FakeRemix) -> list[str]:
    """Where each task the fake received carried its source image."""
    out = []
    for rec in fake.api_requests():
        (task,) = rec.json
        inside = isinstance(task.get("inputs"), dict) and "referenceImages" in task["inputs"]
        assert inside != ("referenceImages" in task), task.keys()  # one place, never both
        out.append("inputs" if inside else "top")
    return out


def task_ids(fake: FakeRemix) -> list[str]:
    return [rec.json[0]["taskUUID"] for rec in fake.api_requests()]


async def remixes(
    fake: FakeRemix, setting: str, *images: EncodedImage
) -> list[RemixResult | RemixError]:
    """One remix per image through one backend (as one process has), each result or error."""
    settings = fake_settings(fake, "runware", REMIXBOT_RUNWARE_IMAGE_IN=setting)
    out: list[RemixResult | RemixError] = []
    async with aiohttp.ClientSession() as session:
        backend = make_backend(settings, session)
        assert isinstance(backend, RunwareBackend)
        for image in images or (encoded(),):
            try:
                out.append(await backend.remix(RemixRequest("a cat"), image, []))
            except RemixError as exc:
                out.append(exc)
    return out


@pytest.mark.parametrize(
    ("setting", "server", "sent"),
    [
        ("top", "top", ["top"]),
        ("inputs", "inputs", ["inputs"]),
        ("auto", "top", ["top"]),
        # Refused unrun (a 400 naming inputs.referenceImages), then sent once more.
        ("auto", "inputs", ["top", "inputs"]),
    ],
)
async def test_a_setting_the_server_takes_delivers(
    fake: FakeRemix, setting: str, server: str, sent: list[str]
) -> None:
    fake.runware_image_in = server
    (result,) = await remixes(fake, setting)
    assert isinstance(result, RemixResult) and result.images[0].url
    assert places(fake) == sent
    ids = task_ids(fake)
    assert len(set(ids)) == len(ids) and all(UUID4.match(i) for i in ids)  # a new task each time
    assert result.backend_ref == ids[-1]


@pytest.mark.parametrize(
    ("setting", "server", "named"),
    [
        ("top", "inputs", "parameter inputs.referenceImages"),
        ("inputs", "top", "parameter inputs"),
    ],
)
async def test_a_pinned_setting_the_server_refuses_is_a_clear_rejection(
    fake: FakeRemix, setting: str, server: str, named: str
) -> None:
    fake.runware_image_in = server
    (error,) = await remixes(fake, setting)
    assert isinstance(error, RemixRejected) and not error.may_have_run  # not run, not charged
    message = str(error)
    assert "HTTP 400" in message and named in message
    assert f"REMIXBOT_RUNWARE_IMAGE_IN={setting} sends the source image" in message
    assert message.count(";") == 1 and message.endswith("(auto tries both).")
    assert places(fake) == [setting]  # pinned: never sent again


async def test_auto_keeps_the_place_the_server_took(
    fake: FakeRemix, caplog: pytest.LogCaptureFixture
) -> None:
    fake.runware_image_in = "inputs"
    with caplog.at_level(logging.INFO, logger="bot.remix.backends.runware"):
        results = await remixes(fake, "auto", encoded(), encoded(), encoded())
    assert all(isinstance(r, RemixResult) for r in results)
    assert places(fake) == ["top", "inputs", "inputs", "inputs"]
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.remix.backends.runware"]
    assert len(lines) == 1 and "inputs.referenceImages" in lines[0]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name.startswith("bot.remix"))
    assert API_KEY not in caplog.text


async def test_auto_on_a_top_level_server_stays_there(fake: FakeRemix) -> None:
    results = await remixes(fake, "auto", encoded(), encoded("JPEG"))
    assert all(isinstance(r, RemixResult) for r in results)
    assert places(fake) == ["top", "top"]


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("400", RemixRejected),  # not Runware's envelope
        ("400_runware", RemixRejected),  # Runware's envelope, naming another parameter
        ("400_runware_flagged", RemixRejected),  # naming the image, for its content: not resent
        ("422", RemixRejected),
        ("402", RemixError),
        ("500", RemixUnavailable),
        ("504", RemixOutcomeUnknown),
        ("empty_data", RemixOutcomeUnknown),
    ],
)
async def test_auto_never_resends_after_anything_but_a_400_naming_the_place(
    fake: FakeRemix, fault: str, error: type
) -> None:
    fake.runware_image_in = "inputs"  # a resend would be tempting: it would be taken
    fake.fail_next(fault)
    (result,) = await remixes(fake, "auto")
    assert isinstance(result, error)
    assert places(fake) == ["top"]


async def test_auto_refused_in_both_places_says_both_and_learns_nothing(fake: FakeRemix) -> None:
    # A top-level server refusing the image itself (a GIF: it takes PNG, JPG or WebP), then
    # refusing `inputs`: one rejection with both reasons; the next job starts at the top again,
    # and once the top level has worked, a refusal of the image is not sent elsewhere.
    gif = encoded("GIF")
    results = await remixes(fake, "auto", gif, encoded(), gif)
    both, ok, settled = results
    assert isinstance(both, RemixRejected) and not both.may_have_run
    assert re.search(
        r"\(HTTP 400\) with the source image as top-level referenceImages \(.*not a PNG.*\) "
        r"and as inputs.referenceImages \(.*\(parameter inputs\)\)\.$",
        str(both),
    ), str(both)
    assert isinstance(ok, RemixResult)
    assert isinstance(settled, RemixRejected) and "parameter referenceImages" in str(settled)
    assert places(fake) == ["top", "inputs", "top", "top"]
