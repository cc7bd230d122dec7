"""REMIXBOT_MODEL judged against the chosen backend once, at start: a model the backend would
refuse on every /remix stops `remixbot run` and fails `remixbot check`, in one sentence naming the
setting, the value, the backend and the models it takes; a model the backend ignores is a warning.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bot.cli.sync import sync_once
from bot.errors import InvalidRequest
from bot.remix import enums
from bot.remix.backends import make_backend, model_setting
from bot.remix.request import RemixRequest
from bot.settings import load_settings
from tests.fakediscord import FakeDiscord
from tests.fakediscord.helpers import BotProcess
from tests.fakeremix import running_fake
from tests.remixworld import world_settings
from tests.test_cli_check import line, remixbot, world_env

LEGACY_TASK = {"REMIXBOT_BACKEND": "task-proxy", "REMIXBOT_TASK_FORMAT": "legacy"}
LEGACY_PATH = {"REMIXBOT_BACKEND": "task-proxy", "REMIXBOT_TASK_SUBMIT_PATH": "/ideogram/remix/"}
V3_TASK = {"REMIXBOT_BACKEND": "task-proxy", "REMIXBOT_TASK_FORMAT": "v3"}
RESELLER = ", ".join(enums.RESELLER_MODELS)

# (settings, REMIXBOT_MODEL, "refused" | "ignored" | "", what the sentence names)
CASES = [
    ({"REMIXBOT_BACKEND": "ideogram-legacy"}, "", "", ""),
    ({"REMIXBOT_BACKEND": "ideogram-legacy"}, "V_2A", "", ""),
    (
        {"REMIXBOT_BACKEND": "ideogram-legacy"},
        "V_4",
        "refused",
        f"the ideogram-legacy backend cannot use; set one of {', '.join(enums.LEGACY_MODELS)}.",
    ),
    (LEGACY_TASK, "", "", ""),
    (LEGACY_TASK, "V_2_TURBO", "", ""),
    (
        LEGACY_TASK,
        "V_3",
        "refused",
        f"the task-proxy backend (legacy body) cannot use; set one of {RESELLER}.",
    ),
    (
        LEGACY_PATH,
        "V_3",
        "refused",
        f"the task-proxy backend (legacy body) cannot use; set one of {RESELLER}.",
    ),
    (V3_TASK, "", "", ""),
    (V3_TASK, "V_2", "ignored", "the task-proxy backend (v3 body) takes no model"),
    ({"REMIXBOT_BACKEND": "ideogram-edit"}, "", "", ""),
    ({"REMIXBOT_BACKEND": "ideogram-edit"}, "V_1", "", ""),
    (
        {"REMIXBOT_BACKEND": "ideogram-edit"},
        "V_3",
        "refused",
        f"the ideogram-edit backend cannot use; set one of {RESELLER}.",
    ),
    ({"REMIXBOT_BACKEND": "runware"}, "", "", ""),
    ({"REMIXBOT_BACKEND": "runware"}, "ideogram:2@2", "", ""),
    (
        {"REMIXBOT_BACKEND": "runware"},
        "V_3",
        "refused",
        "the runware backend cannot use; set one of " + ", ".join(enums.RUNWARE_REMIX_MODELS),
    ),
    ({"REMIXBOT_BACKEND": "ideogram"}, "", "", ""),
    ({"REMIXBOT_BACKEND": "ideogram"}, "V_3", "ignored", "the ideogram backend takes no model"),
    ({"REMIXBOT_BACKEND": "demo"}, "V_2", "ignored", "the demo backend takes no model"),
]


@pytest.mark.parametrize(("env", "model", "verdict", "names"), CASES)
async def test_the_start_judges_the_model_as_every_request_would(
    env: dict[str, str], model: str, verdict: str, names: str
) -> None:
    values = {**env, "REMIXBOT_BACKEND_URL": "http://127.0.0.1:9", "REMIXBOT_MODEL": model}
    settings = load_settings(values, dotenv=None)
    found = model_setting(settings)
    if verdict == "refused":
        assert found.refused.startswith(f"REMIXBOT_MODEL is {model!r}, which "), found
        assert names in found.refused and not found.ignored
    elif verdict == "ignored":
        assert (
            found.ignored
            == f"REMIXBOT_MODEL is {model!r}, but {names}, so it is ignored; unset it."
        )
        assert not found.refused
    else:
        assert found.refused == found.ignored == ""
    # The same list decides a member's request: refused at start exactly when every /remix
    # would be refused for the configured model.
    async with aiohttp.ClientSession() as session:
        backend = make_backend(settings, session)
        try:
            backend.check(RemixRequest("a cat"), 0)
        except InvalidRequest as exc:
            assert verdict == "refused", exc
            assert "model" in str(exc) and repr(model) in str(exc)
        else:
            assert verdict != "refused"


async def test_the_bot_does_not_start_with_a_model_the_backend_refuses(tmp_path: Path) -> None:
    env = {**LEGACY_TASK, "REMIXBOT_BACKEND_URL": "http://127.0.0.1:9", "REMIXBOT_MODEL": "V_3"}
    async with FakeDiscord() as fake:
        proc = BotProcess(fake, tmp_path / "data", launcher=False, env=env)
        async with proc:
            await proc.start()
            code = await proc.wait()
        assert code == 2
        assert proc.output().strip().splitlines() == [
            "remixbot: REMIXBOT_MODEL is 'V_3', which the task-proxy backend (legacy body) cannot "
            f"use; set one of {RESELLER}."
        ]
        assert fake.calls == []  # nothing started


async def test_a_model_the_backend_ignores_is_a_warning_at_start(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        env = {"REMIXBOT_BACKEND": "ideogram", "REMIXBOT_MODEL": "V_2"}
        proc = BotProcess(fake, tmp_path / "data", launcher=False, env=env)
        async with proc:
            await proc.start_and_wait_ready()
            assert await proc.stop() == 0
        out = proc.output()
        assert (
            "WARNING remixbot.run: REMIXBOT_MODEL is 'V_2', but the ideogram backend takes no "
            "model, so it is ignored; unset it." in out
        ), out


async def test_check_fails_a_refused_model_and_warns_of_an_ignored_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeDiscord() as d, running_fake() as r:
        refused = world_env(d, r, data, **LEGACY_TASK, REMIXBOT_MODEL="V_3")
        code, out = await remixbot(refused, "check", cwd=tmp_path)
        assert code == 1, out
        assert line(out, "settings") == (
            "[FAIL] settings: REMIXBOT_MODEL is 'V_3', which the task-proxy backend (legacy body)"
            f" cannot use; set one of {RESELLER}."
        )
        assert "the bot will not start until it is fixed" in out
        assert line(out, "database").startswith("[ ok ]")  # the other checks still ran
        assert out.rstrip().endswith("1 check(s) failed: settings.")
        await sync_once(world_settings(d, r, data))
        ignored = world_env(d, r, data, REMIXBOT_MODEL="V_3")
        code, out = await remixbot(ignored, "check", cwd=tmp_path)
        assert code == 0, out
        assert line(out, "settings").startswith("[warn] settings: parsed (backend ideogram")
        assert (
            "REMIXBOT_MODEL is 'V_3', but the ideogram backend takes no model, so it is ignored;"
            " unset it." in out
        )
        assert out.rstrip().endswith("All checks passed; read the warnings: settings.")
