"""Test helpers that read like user actions: start the fake and the bot (as a task or a process),
make images, and wait (bounded) for what the bot does."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from bot.client import RemixBot, apply_discord_endpoints, reset_discord_endpoints
from bot.settings import Settings, load_settings
from tests.fakediscord.server import FakeDiscord

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests.fakediscord.probe_ext"
PROBE_EXTRA = "tests.fakediscord.probe_extra_ext"


def png_bytes(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 90)
) -> bytes:
    """A real PNG made with Pillow."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


ORIGINAL_EDIT = re.compile(r"/webhooks/\d+/(?P<token>[^/]+)/messages/@original")


def ephemeral_texts(fake: FakeDiscord) -> list[str]:
    """Contents of the ephemeral messages the bot sent: callbacks, followups, and edits of a
    response deferred privately (the answer after an ephemeral "thinking…")."""
    out = []
    for call in fake.calls:
        body = call.json if isinstance(call.json, dict) else {}
        data = body.get("data", body) if isinstance(body.get("data"), dict) else body
        if not isinstance(data, dict) or not data.get("content"):
            continue
        if (data.get("flags") or 0) & 64 or _private_edit(fake, call.method, call.path):
            out.append(data["content"])
    return out


def _private_edit(fake: FakeDiscord, method: str, path: str) -> bool:
    match = ORIGINAL_EDIT.fullmatch(path) if method == "PATCH" else None
    inter = fake.interactions.get(match["token"]) if match else None
    original = fake.original(inter) if inter is not None else None
    return original is not None and original.ephemeral


def bot_env(fake: FakeDiscord, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment variables for a bot pointed at ``fake`` with its own data directory."""
    # A backend key is required to start `remixbot run`; these tests never call the backend.
    return {
        **fake.env(),
        "REMIXBOT_DATA_DIR": str(data_dir),
        "REMIXBOT_API_KEY": "test-backend-key-unused",
        **extra,
    }


def bot_settings(fake: FakeDiscord, data_dir: Path, **extra: str) -> Settings:
    """Settings for a bot pointed at ``fake`` (no .env file read)."""
    return load_settings(bot_env(fake, data_dir, **extra), dotenv=None)


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord,
    data_dir: Path,
    *,
    extensions: Sequence[str] = (PROBE,),
    within: float = 15.0,
    **options: Any,
) -> AsyncIterator[RemixBot]:
    """Start RemixBot as a task in this process against ``fake``; yield it once it is ready."""
    settings = bot_settings(fake, data_dir)
    apply_discord_endpoints(settings)
    options.setdefault("guild_ready_timeout", 0.05)
    bot = RemixBot(settings, extensions=extensions, **options)
    try:
        async with bot:
            task = asyncio.create_task(bot.start(fake.token), name="test-bot")
            ready = asyncio.create_task(bot.wait_until_ready())
            done, _ = await asyncio.wait(
                {task, ready}, timeout=within, return_when="FIRST_COMPLETED"
            )
            if task in done:
                ready.cancel()
                task.result()
                raise AssertionError("the bot stopped before it was ready")
            if ready not in done:
                ready.cancel()
                task.cancel()
                raise TimeoutError(f"the bot was not ready within {within:g}s")
            try:
                yield bot
            finally:
                await asyncio.wait_for(bot.close(), 10)
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, 10)
    finally:
        reset_discord_endpoints()


class BotProcess:
    """The bot as a separate process (`python -m bot run` or the probe launcher) on a data dir."""

    def __init__(
        self,
        fake: FakeDiscord,
        data_dir: Path,
        *,
        launcher: bool = True,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = ("run",),
    ) -> None:
        self.fake = fake
        self.data_dir = data_dir
        module = ["tests.fakediscord.launcher"] if launcher else ["bot", *args]
        self.argv = [sys.executable, "-m", *module]
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "REMIXBOT_"))
        }
        self.env.update(bot_env(fake, data_dir))
        self.env.update(env or {})
        self.env["PYTHONPATH"] = str(ROOT)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir.parent / f"{data_dir.name}-bot-{time.monotonic_ns()}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self._log: Any = None

    async def start(self) -> BotProcess:
        """Start the process (stderr and stdout go to a log file, read with :meth:`output`)."""
        self._log = self.log_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=str(self.data_dir),  # a directory without a .env file
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        return self

    async def start_and_wait_ready(self, within: float = 20.0) -> BotProcess:
        """Start, then wait until the bot identified and got its guild."""
        mark = len(self.fake.frames)
        await self.start()
        waiter = asyncio.create_task(self.fake.wait_identified(after=mark, within=within))
        exited = asyncio.create_task(self.proc.wait())  # type: ignore[union-attr]
        done, _ = await asyncio.wait({waiter, exited}, return_when="FIRST_COMPLETED")
        if exited in done:
            waiter.cancel()
            raise AssertionError(f"bot exited with {self.proc.returncode}: {self.output()}")  # type: ignore[union-attr]
        exited.cancel()
        waiter.result()
        await asyncio.sleep(0.2)  # guild_ready_timeout is 0.05 s in the launcher
        return self

    async def wait(self, within: float = 20.0) -> int:
        """Wait (bounded) for the process to end; return its exit code."""
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), within)
        finally:
            self._close_log()

    async def stop(self, sig: int = signal.SIGTERM, within: float = 10.0) -> int:
        """Send a signal and wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return await self.wait(within)

    async def kill(self) -> None:
        """Kill the process if it still runs (cleanup)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 5)
        self._close_log()

    def output(self) -> str:
        """What the process wrote to stdout and stderr so far."""
        if self._log is not None:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> BotProcess:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()
