"""The fake's record of what happened: every REST and CDN call, every gateway frame, and bounded
waits that wake whenever something changed."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from tests.fakediscord.models import Call, GatewayFrame

T = TypeVar("T")


class Recorder:
    """Calls and frames in the order they happened; :meth:`notify` wakes every waiter."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.frames: list[GatewayFrame] = []
        self._changed = asyncio.Event()

    def call(self, call: Call) -> Call:
        """Record a request as it arrives (its status is filled in when answered)."""
        call.at = time.time()
        self.calls.append(call)
        return call

    def frame(self, frame: GatewayFrame) -> None:
        """Record a gateway frame, in either direction."""
        self.frames.append(frame)
        self.notify()

    def notify(self) -> None:
        """Wake everything waiting in :meth:`wait_until` to check again."""
        self._changed.set()
        self._changed = asyncio.Event()

    def calls_to(self, method: str, path_regex: str) -> list[Call]:
        """Recorded calls whose method and path match."""
        rx = re.compile(path_regex)
        return [c for c in self.calls if c.method == method.upper() and rx.fullmatch(c.path)]

    def received(self, op: int) -> list[GatewayFrame]:
        """Frames the bot sent with this opcode."""
        return [f for f in self.frames if f.direction == "in" and f.op == op]

    async def wait_until(
        self, check: Callable[[], Any], within: float = 10.0, what: str = ""
    ) -> Any:
        """Wait (bounded) until ``check()`` returns something truthy, and return it."""
        deadline = time.monotonic() + within
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {within:g}s waiting for {what or check}")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.5))

    async def wait_for_first(
        self, candidates: Callable[[], Iterable[T]], within: float, what: str
    ) -> T:
        """Wait (bounded) until ``candidates()`` yields something, and return the first."""
        return await self.wait_until(lambda: next(iter(candidates()), None), within, what)

    async def wait_for_call(
        self,
        predicate: Callable[[Call], bool],
        *,
        after: int = 0,
        within: float = 10.0,
        what: str = "a matching call",
    ) -> Call:
        """The first recorded call at index >= ``after`` matching ``predicate`` (answered)."""
        return await self.wait_for_first(
            lambda: (c for c in self.calls[after:] if c.status and predicate(c)), within, what
        )

    async def wait_identified(self, *, after: int = 0, within: float = 15.0) -> GatewayFrame:
        """The first IDENTIFY at frame index >= ``after`` once READY and GUILD_CREATE are sent."""

        def check() -> GatewayFrame | None:
            frames = self.frames[after:]
            for i, f in enumerate(frames):
                if f.direction == "in" and f.op == 2:
                    for g in frames[i:]:
                        if g.direction == "out" and g.t == "GUILD_CREATE" and g.conn == f.conn:
                            return f
            return None

        return await self.wait_until(check, within, "IDENTIFY and GUILD_CREATE")
