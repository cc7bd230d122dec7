"""Task-proxy backend through the fake: submit, on_submitted, polling, failures, resume, sync replies."""

from __future__ import annotations

import logging
import time

import aiohttp
import pytest

from bot.errors import RemixOutcomeUnknown, RemixRateLimited, RemixRejected
from bot.remix.backends import RemixResult, TaskProxyBackend, make_backend
from bot.remix.request import RemixRequest
from tests.fakeremix import API_KEY, FakeRemix
from tests.fakeremix.helpers import encoded, fake_settings


def backend_for(fake: FakeRemix, session: aiohttp.ClientSession, **overrides) -> TaskProxyBackend:
    backend = make_backend(fake_settings(fake, "task-proxy", overrides=overrides or None), session)
    assert isinstance(backend, TaskProxyBackend)
    backend.poll_first = 0.05  # tests poll fast; production waits a second first
    backend.poll_cap = 0.2
    return backend


async def run(
    fake: FakeRemix, request: RemixRequest, seen: list[str] | None = None, **kw
) -> RemixResult:
    async with aiohttp.ClientSession() as session:
        backend = backend_for(fake, session, **kw)

        async def submitted(task_id: str) -> None:
            # The task must not be finished yet: the id is saved before any waiting.
            assert fake.tasks[task_id]["polls"] == 0
            if seen is not None:
                seen.append(task_id)

        return await backend.remix(request, encoded(), [], on_submitted=submitted)


async def test_submit_then_poll_until_succeed(fake: FakeRemix) -> None:
    fake.task_polls = 2
    seen: list[str] = []
    result = await run(fake, RemixRequest("a cat", num_images=2, aspect_ratio="3x2"), seen)
    submit = fake.last()
    assert submit.path == "/ideogram/v1/ideogram-v3/remix"
    assert submit.headers["Authorization"] == f"Bearer {API_KEY}"
    assert submit.fields["prompt"] == ["a cat"] and submit.fields["aspect_ratio"] == ["3x2"]
    assert submit.files["image"][0].format == "PNG"
    (task_id,) = seen
    polls = [r for r in fake.requests if r.method == "GET" and r.path.endswith(task_id)]
    assert len(polls) == 3  # two "processing", then "succeed"
    assert all(p.headers["Authorization"] == f"Bearer {API_KEY}" for p in polls)
    assert result.backend_ref == task_id
    assert len(result.images) == 2 and all(i.url and i.is_safe for i in result.images)


@pytest.mark.parametrize("path", ["/ideogram/v1/ideogram-v3/remix", "/ideogram/remix"])
async def test_submit_and_polls_ask_for_json(fake: FakeRemix, path: str) -> None:
    # The reseller's header table: "Accept string Required application/json".
    fake.task_polls = 1
    await run(fake, RemixRequest("x"), task_submit_path=path)
    calls = [(r.method, r.headers.get("Accept")) for r in fake.requests]
    assert calls == [("POST", "application/json")] + [("GET", "application/json")] * 2


@pytest.mark.parametrize("accept", [None, "*/*", "text/html"])
async def test_the_fake_refuses_a_task_proxy_call_that_does_not_ask_for_json(
    fake: FakeRemix, accept: str | None
) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"} | ({"Accept": accept} if accept else {})
    fake.tasks["task_1"] = {"polls": 0, "body": {"data": []}}
    async with aiohttp.ClientSession() as session:
        for method, path in [
            ("POST", "/ideogram/remix"),
            ("POST", "/ideogram/v1/ideogram-v3/remix"),
            ("GET", "/kling/v1/images/generations/task_1"),
        ]:
            async with session.request(
                method, fake.base_url + path, headers=headers, skip_auto_headers=["Accept"]
            ) as resp:
                assert resp.status == 406, (method, path)
                assert "application/json" in (await resp.json())["message"]
    assert fake.tasks["task_1"]["polls"] == 0


async def test_failed_task_is_rejected_with_reason(fake: FakeRemix) -> None:
    fake.task_outcome = "failed"
    with pytest.raises(RemixRejected, match="risk control"):
        await run(fake, RemixRequest("x"))


async def test_task_that_never_finishes_is_outcome_unknown(fake: FakeRemix) -> None:
    fake.task_outcome = "never"
    start = time.monotonic()
    with pytest.raises(RemixOutcomeUnknown, match="did not finish within 1 seconds"):
        await run(fake, RemixRequest("x"), task_max_wait=1.0)
    assert time.monotonic() - start < 2.0
    assert len(fake.api_requests()) == 1  # never resubmitted


async def test_transient_poll_errors_are_retried(fake: FakeRemix) -> None:
    fake.fail_next("500", times=2, target="poll")
    fake.fail_next("malformed", times=1, target="poll")
    result = await run(fake, RemixRequest("x"))
    assert len(result.images) == 1
    assert len(fake.api_requests()) == 1


async def test_polls_use_the_documented_query_path(fake: FakeRemix) -> None:
    seen: list[str] = []
    await run(fake, RemixRequest("x"), seen)
    polls = [r.path for r in fake.requests if r.method == "GET"]
    assert polls and set(polls) == {f"/kling/v1/images/generations/{seen[0]}"}


async def test_an_error_code_while_the_task_runs_is_asked_again(fake: FakeRemix) -> None:
    # Once submitted the task may run and be billed: a poll's error code is never a rejection.
    fake.fail_next("busy_code", times=2, target="poll")
    result = await run(fake, RemixRequest("x"))
    assert len(result.images) == 1
    assert len(fake.api_requests()) == 1


@pytest.mark.parametrize("status", ["401", "403"])
async def test_a_key_refused_while_polling_stays_unknown_and_says_the_key_was_refused(
    fake: FakeRemix, status: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next(status, target="poll")
    with caplog.at_level(logging.WARNING), pytest.raises(RemixOutcomeUnknown) as info:
        await run(fake, RemixRequest("x"))
    [task_id] = fake.tasks
    said = str(info.value)
    assert info.value.may_have_run  # it may still run and be billed: never "rejected"
    assert f"refused the bot's API key (HTTP {status}: " in said
    assert f"while task {task_id} was being polled" in said and API_KEY not in said
    [warned] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned.getMessage() == (
        f"task {task_id}: the task-proxy backend refused the API key (HTTP {status}) while "
        "polling; outcome unknown, check REMIXBOT_API_KEY"
    )
    assert [r.method for r in fake.requests] == ["POST", "GET"]  # not asked again, not resent


async def test_resume_after_restart(fake: FakeRemix) -> None:
    seen: list[str] = []
    await run(fake, RemixRequest("x"), seen)
    async with aiohttp.ClientSession() as session:
        again = await backend_for(fake, session).resume(seen[0])
    assert again.backend_ref == seen[0] and again.images[0].url


async def test_unknown_task_on_resume_is_outcome_unknown(fake: FakeRemix) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RemixOutcomeUnknown, match="no longer knows the task"):
            await backend_for(fake, session).resume("task_gone")


async def test_sync_reply_accepted(fake: FakeRemix) -> None:
    fake.proxy_mode = "sync"
    seen: list[str] = []
    result = await run(fake, RemixRequest("x", seed=5), seen)
    assert seen == [] and result.images[0].seed == 5
    assert [r.method for r in fake.requests] == ["POST"]


async def test_submit_429_retries_then_rate_limited(fake: FakeRemix) -> None:
    fake.fail_next("429_rate", times=3, retry_after="60")
    with pytest.raises(RemixRateLimited):
        await run(fake, RemixRequest("x"))
    assert len(fake.api_requests()) == 1
