"""The whole product on loopback: fake Discord + fake remix server + the real bot and services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.client import RemixBot, apply_discord_endpoints, reset_discord_endpoints
from bot.extensions import DEFAULT_EXTENSIONS
from bot.services import Services, open_services
from bot.settings import Settings, load_settings
from tests.fakediscord.helpers import ephemeral_texts
from tests.fakediscord.server import FakeDiscord, StoredMessage
from tests.fakeremix import FakeRemix, running_fake
from tests.fakeremix.helpers import fake_env


@dataclass
class World:
    """Handles a test needs: both fakes, the bot, its services and settings."""

    discord: FakeDiscord
    remix: FakeRemix
    bot: RemixBot
    services: Services
    settings: Settings

    async def slash_remix(
        self,
        image: bytes,
        filename: str = "cat.png",
        *,
        user: dict[str, Any] | None = None,
        dm: bool = False,
        **options: Any,
    ) -> Any:
        """A member (Alice unless given; in their DM with the bot with ``dm``) attaches
        ``image`` and runs /remix with ``options`` (prompt defaults)."""
        att = self.discord.upload_attachment(filename, image)
        options.setdefault("prompt", "a watercolor cat")
        return await self.discord.slash("remix", {"image": att, **options}, user=user, dm=dm)

    async def result_message(self, interaction: Any, within: float = 15.0) -> StoredMessage:
        """The deferred response once it carries files (the result), bounded."""

        def check() -> StoredMessage | None:
            msg = self.discord.original(interaction)
            return msg if msg is not None and msg.attachments else None

        return await self.discord.wait_until(check, within, "the result on the original response")

    async def refusal(self, interaction: Any, within: float = 10.0) -> str:
        """The sentence that replaced the 'thinking…' of a deferred response (bounded wait)."""

        def check() -> str | None:
            msg = self.discord.original(interaction)
            return msg.content if msg is not None and not msg.deleted and msg.content else None

        return await self.discord.wait_until(check, within, "the refusal on the original response")

    async def jobs_final(self, count: int, within: float = 15.0) -> list[Any]:
        """Wait (bounded) until ``count`` jobs exist and all are in a final state."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            jobs = await self.services.store.list_jobs(limit=1000)
            if len(jobs) >= count and all(j.final for j in jobs):
                return sorted(jobs, key=lambda j: j.id)
            if loop.time() > deadline:
                states = [(j.id, j.state) for j in jobs]
                raise TimeoutError(f"jobs not final within {within:g}s: {states}")
            await asyncio.sleep(0.05)

    async def private_answer(self, interaction: Any, within: float = 10.0) -> str:
        """The ephemeral sentence the bot answered an interaction with (bounded wait)."""

        def check() -> str | None:
            for msg in self.discord.messages.values():
                if msg.interaction_id == interaction.id and msg.ephemeral and msg.content:
                    return msg.content
            return None

        return await self.discord.wait_until(check, within, "a private answer")

    async def acknowledged(self, interaction: Any, within: float = 10.0) -> int:
        """The type of the bot's first response to an interaction (bounded wait)."""
        return await self.discord.wait_until(
            lambda: interaction.response_type, within, "the interaction's response"
        )

    def ephemeral_replies(self) -> list[str]:
        """Contents of ephemeral messages (callbacks and followups) the bot sent."""
        return ephemeral_texts(self.discord)

    async def books_balance(self) -> list[str]:
        """Every inconsistency in the ledger (empty when reserved = charged + refunded)."""
        return await self.services.store.check_books()


# Settings every world of the running test gets: the books under test (`on_each_database`).
WORLD_ENV: dict[str, str] = {}


@pytest.fixture
def on_each_database(database: Path | str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Worlds of the test keep their books in `database` (SQLite, then PostgreSQL): a module
    runs every test on both with `pytestmark = pytest.mark.usefixtures("on_each_database")`."""
    if isinstance(database, str):
        monkeypatch.setitem(WORLD_ENV, "REMIXBOT_DATABASE_URL", database)


def world_settings(discord: FakeDiscord, remix: FakeRemix, data_dir: Path, **env: str) -> Settings:
    """Settings for the bot pointed at both fakes."""
    values = {
        **fake_env(remix),
        **discord.env(),
        "REMIXBOT_DATA_DIR": str(data_dir),
        **WORLD_ENV,
    }
    values.update(env)
    return load_settings(values, dotenv=None)


@contextlib.asynccontextmanager
async def running_world(
    data_dir: Path,
    *,
    discord: FakeDiscord | None = None,
    remix: FakeRemix | None = None,
    within: float = 15.0,
    **env: str,
) -> AsyncIterator[World]:
    """Start both fakes (unless given), the services and the bot with the production cogs."""
    async with contextlib.AsyncExitStack() as stack:
        if discord is None:
            discord = await stack.enter_async_context(FakeDiscord())
        if remix is None:
            remix = await stack.enter_async_context(running_fake())
        settings = world_settings(discord, remix, data_dir, **env)
        apply_discord_endpoints(settings)
        stack.callback(reset_discord_endpoints)
        services = await stack.enter_async_context(open_services(settings))
        bot = RemixBot(
            settings, services=services, extensions=DEFAULT_EXTENSIONS, guild_ready_timeout=0.05
        )
        await stack.enter_async_context(bot)
        task = asyncio.create_task(bot.start(discord.token), name="world-bot")
        ready = asyncio.create_task(bot.wait_until_ready())
        done, _ = await asyncio.wait({task, ready}, timeout=within, return_when="FIRST_COMPLETED")
        if ready not in done:
            ready.cancel()
            task.cancel()
            if task in done:
                task.result()
            raise TimeoutError(f"the bot was not ready within {within:g}s")

        async def stop() -> None:
            await asyncio.wait_for(bot.close(), 10)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)

        stack.push_async_callback(stop)
        yield World(discord, remix, bot, services, settings)
