"""Discord's side of the metrics, seen from discord.py's own HTTP session: its REST 429s, and how
long an interaction waited for its acknowledgement (arrival → Discord accepting the callback).

discord.py takes an `aiohttp.TraceConfig` (`http_trace=`), so nothing of discord.py is patched:
every REST request it makes passes these hooks. Interaction ids and tokens appear in callback
URLs; only the id is read (to match the arrival), and nothing from the URL is kept or logged.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any

import aiohttp

from bot.metrics import Metrics

_CALLBACK = re.compile(r"/interactions/(\d+)/[^/]+/callback$")
# Arrivals kept while waiting for their acknowledgement; older ones are dropped (never acked).
MAX_PENDING = 1000


class DiscordWatch:
    """Counts Discord's 429s and times acknowledgements into a `Metrics`."""

    def __init__(self, metrics: Metrics, clock: Any = time.monotonic) -> None:
        self.metrics = metrics
        self._clock = clock
        self._arrived: OrderedDict[int, float] = OrderedDict()

    def interaction_arrived(self, interaction_id: int) -> None:
        """Remember when an interaction came in (the bot's `on_interaction` listener calls it)."""
        self._arrived[interaction_id] = self._clock()
        while len(self._arrived) > MAX_PENDING:
            self._arrived.popitem(last=False)

    async def on_interaction(self, interaction: Any) -> None:
        """A discord.py listener: the interaction's arrival."""
        self.interaction_arrived(int(interaction.id))

    def response(self, path: str, status: int) -> None:
        """Account for one REST answer: a 429, or the acknowledgement of an interaction."""
        if status == 429:
            self.metrics.discord_429()
            return
        found = _CALLBACK.search(path)
        if found and 200 <= status < 300:
            arrived = self._arrived.pop(int(found.group(1)), None)
            if arrived is not None:
                self.metrics.acknowledged(self._clock() - arrived)

    def trace_config(self) -> aiohttp.TraceConfig:
        """The hooks to hand discord.py as `http_trace`."""
        trace = aiohttp.TraceConfig()

        async def on_end(
            session: aiohttp.ClientSession,
            ctx: SimpleNamespace,
            params: aiohttp.TraceRequestEndParams,
        ) -> None:
            self.response(params.url.path, params.response.status)

        trace.on_request_end.append(on_end)
        return trace
