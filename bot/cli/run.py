"""`remixbot run`: the composition root of the Discord bot — settings, logging, one HTTP session,
the services, the bot, and a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import inspect
import logging
import signal
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from bot.cli._common import cli_settings
from bot.client import DEFAULT_EXTENSIONS, RemixBot, apply_discord_endpoints, login_errors
from bot.settings import Settings

log = logging.getLogger("remixbot.run")

CLOSE_TIMEOUT = 10.0  # seconds for the bot, then each service, to close


@dataclasses.dataclass
class Services:
    """What the cogs use besides Discord; later issues add the store, image pool, backend, scheduler."""

    settings: Settings
    session: aiohttp.ClientSession


def register(sub: argparse._SubParsersAction) -> None:
    """Add `run` to the command line."""
    p = sub.add_parser("run", help="run the Discord bot (stops cleanly on Ctrl-C or SIGTERM)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    return run_bot(cli_settings())


def quiet_discord_logs(level: str) -> None:
    """Keep discord.py at INFO or above: its DEBUG logs carry request bodies and webhook URLs."""
    numeric = logging.getLevelName(level.upper())
    numeric = numeric if isinstance(numeric, int) else logging.INFO
    logging.getLogger("discord").setLevel(max(numeric, logging.INFO))


def run_bot(
    settings: Settings,
    *,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    bot_options: Mapping[str, Any] | None = None,
) -> int:
    """Run the bot until SIGINT/SIGTERM; returns 0 after a clean stop, raises RemixbotError else."""
    token = settings.require_discord_token()
    quiet_discord_logs(settings.log_level)
    return asyncio.run(serve(settings, token, extensions=extensions, bot_options=bot_options or {}))


def build_services(settings: Settings, session: aiohttp.ClientSession) -> Services:
    """Build the services the cogs need (only the shared HTTP session so far)."""
    return Services(settings=settings, session=session)


async def serve(
    settings: Settings,
    token: str,
    *,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    bot_options: Mapping[str, Any] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Log in and serve until ``stop`` is set (SIGINT/SIGTERM set it); then close everything."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    apply_discord_endpoints(settings)
    try:
        async with aiohttp.ClientSession() as session:
            services = build_services(settings, session)
            try:
                bot = RemixBot(
                    settings, services=services, extensions=extensions, **dict(bot_options or {})
                )
                async with bot:
                    await _serve_until_stopped(bot, token, stop, settings)
            finally:
                await close_services(services)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    log.info("stopped cleanly")
    return 0


async def _serve_until_stopped(
    bot: RemixBot, token: str, stop: asyncio.Event, settings: Settings
) -> None:
    runner = asyncio.create_task(bot.start(token), name="remixbot-client")
    stopper = asyncio.create_task(stop.wait(), name="remixbot-stop")
    try:
        with login_errors(settings):
            done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if runner in done:
                runner.result()  # the client ended on its own: raise what ended it
                return
    finally:
        stopper.cancel()
    log.info("stop requested: closing the gateway, then the services")
    # Closing the client first stops new interactions from arriving.
    try:
        await asyncio.wait_for(bot.close(), CLOSE_TIMEOUT)
    except TimeoutError:
        log.warning("the Discord client did not close within %.0fs", CLOSE_TIMEOUT)
    try:
        await asyncio.wait_for(runner, CLOSE_TIMEOUT)
    except (TimeoutError, asyncio.CancelledError):
        runner.cancel()
    except Exception as exc:  # the client may raise while being closed; we are stopping anyway
        log.debug("client ended with %s while stopping", type(exc).__name__)


async def close_services(services: object) -> None:
    """Close every service that has ``close()`` (sync or async), newest first, each bounded."""
    if services is None:
        return
    if dataclasses.is_dataclass(services) and not isinstance(services, type):
        items = [getattr(services, f.name) for f in dataclasses.fields(services)]
    else:
        items = list(vars(services).values()) if hasattr(services, "__dict__") else []
    if callable(getattr(services, "close", None)):
        items = [services]
    for item in reversed(items):
        close = getattr(item, "close", None)
        if not callable(close) or isinstance(item, Settings):
            continue
        try:
            result = close()
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, CLOSE_TIMEOUT)
        except Exception as exc:  # one failing close must not keep the others open
            log.warning("closing %s failed: %s", type(item).__name__, type(exc).__name__)
