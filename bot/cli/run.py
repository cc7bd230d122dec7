"""`remixbot run`: the composition root of the Discord bot — settings, logging, one HTTP session,
the services, the bot, and a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bot.cli._common import cli_settings
from bot.errors import SettingsError
from bot.extensions import DEFAULT_EXTENSIONS
from bot.looplag import LoopLag, measuring
from bot.remix.backends import model_setting
from bot.settings import SPECS, Settings

if TYPE_CHECKING:
    from bot.client import RemixBot

log = logging.getLogger("remixbot.run")

CLOSE_TIMEOUT = 10.0  # seconds for the bot, then each service, to close


def register(sub: argparse._SubParsersAction) -> None:
    """Add `run` to the command line."""
    p = sub.add_parser("run", help="run the Discord bot (stops cleanly on Ctrl-C or SIGTERM)")
    p.add_argument(
        "--shards",
        type=lambda v: SPECS["shards"].parse("--shards", v),
        metavar="N,M",
        help="run only these Discord shards (other processes run the rest; REMIXBOT_SHARDS)",
    )
    p.add_argument(
        "--shard-count",
        type=lambda v: SPECS["shard_count"].parse("--shard-count", v),
        metavar="N",
        help="the number of shards over all processes (REMIXBOT_SHARD_COUNT)",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    overrides = {
        name: value
        for name, value in (("shards", args.shards), ("shard_count", args.shard_count))
        if value is not None
    }
    # Both missing at once are reported together, with any other problem in the settings.
    return run_bot(cli_settings(require=("discord_token", "api_key"), **overrides))


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
    if settings.needs_api_key:  # a bot that cannot remix should say so at start, not per member
        settings.require_api_key()
    # Likewise a model the backend refuses: every /remix would be refused with it.
    model = model_setting(settings)
    if model.refused:
        raise SettingsError(model.refused)
    if model.ignored:
        log.warning("%s", model.ignored)
    quiet_discord_logs(settings.log_level)
    return asyncio.run(serve(settings, token, extensions=extensions, bot_options=bot_options or {}))


async def serve(
    settings: Settings,
    token: str,
    *,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    bot_options: Mapping[str, Any] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Log in and serve until ``stop`` is set (SIGINT/SIGTERM set it); then close everything."""
    # Imported here so that other `remixbot` commands start without discord.py and the services.
    from bot.client import apply_discord_endpoints, make_bot
    from bot.services import open_services
    from bot.web.runtime import Operations

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    apply_discord_endpoints(settings)
    lag = LoopLag()
    ops = Operations.from_settings(settings)  # /healthz, /metrics, /admin when the port is set
    try:
        # open_services closes in reverse: scheduler drained (queued jobs refunded), sessions,
        # image pool, then the store, after the gateway is closed by _serve_until_stopped.
        async with measuring(lag), open_services(settings, metrics=ops.metrics) as services:
            options = {**ops.bot_options(), **dict(bot_options or {})}
            bot = make_bot(settings, services=services, extensions=extensions, **options)
            for listener, event in ops.listeners():
                bot.add_listener(listener, event)
            bot.add_listener(freeze_once(), "on_ready")
            # Everything made so far lives as long as the process: keep it out of the garbage
            # collector's full passes, which otherwise stall the loop for tens of ms each.
            gc.freeze()
            async with bot, ops.serving(services, lag, gateway_probe(bot)):
                await _serve_until_stopped(bot, token, stop, settings)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    log.info("stopped cleanly (the event loop's longest stall: %.0f ms)", lag.longest * 1000)
    return 0


def freeze_once() -> Callable[[], Awaitable[None]]:
    """An `on_ready` listener that freezes, once, what logging in made and keeps (the cogs and
    their commands, the guilds' caches, the sessions): tens of thousands of objects the
    collector's full passes would otherwise walk again and again under load. Only the first
    ready: a later one (a reconnect) may come with jobs queued, whose objects must stay
    collectable."""
    done = False

    async def on_ready() -> None:
        nonlocal done
        if not done:
            done = True
            gc.freeze()

    return on_ready


def gateway_probe(bot: RemixBot) -> Callable[[], Awaitable[str | None]]:
    """For /healthz: None while the gateway is connected and ready, else why not."""

    async def probe() -> str | None:
        if bot.is_closed():
            return "the Discord client is closed"
        ws = bot.ws
        if not bot.is_ready() or ws is None or not ws.open:
            return "the Discord gateway is not connected"
        return None

    return probe


async def _serve_until_stopped(
    bot: RemixBot, token: str, stop: asyncio.Event, settings: Settings
) -> None:
    from bot.client import login_errors

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
    log.info("stop requested: finishing running remixes, then closing the gateway")
    # Drain while the client can still post: jobs that finish now are delivered, queued ones are
    # refunded with a message. Only then close the gateway and (in open_services) the services.
    from bot.services import DRAIN_SECONDS

    remix = getattr(bot.services, "remix", None)
    if remix is not None:
        await remix.shutdown(DRAIN_SECONDS)
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
