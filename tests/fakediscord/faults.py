"""Fault injection: answers the fake gives instead of the real one (rate limits, errors, a reply
lost after the work was done), each for a number of matching requests."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

from tests.fakediscord.rest import json_response


@dataclass
class Fault:
    """A failure the fake returns instead of the real answer for matching requests."""

    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    retry_after: float = 0.0
    is_global: bool = False
    code: int = 0
    message: str = ""
    with_files: bool = False  # only requests that upload files (e.g. a result, not a progress edit)
    after: bool = False  # do the request, then answer with the fault (a reply lost on the way)
    delay: float = 0.0  # seconds before answering; with status 0 the answer is the real one

    def response(self) -> web.Response:
        """The answer Discord gives for this failure (a 429 carries Via and retry_after)."""
        if self.status == 429:
            scope = "global" if self.is_global else "user"
            headers = {"Via": "1.1 google", "X-RateLimit-Scope": scope, "Retry-After": "1"}
            if self.is_global:
                headers["X-RateLimit-Global"] = "true"
            body = {
                "message": "You are being rate limited.",
                "retry_after": self.retry_after,
                "global": self.is_global,
            }
            return json_response(body, 429, headers)
        if self.status == 413:
            return json_response(
                {"message": "Request entity too large", "code": self.code or 40005}, 413
            )
        return json_response(
            {"message": self.message or f"{self.status}: fault", "code": self.code}, self.status
        )


class Faults:
    """The faults waiting for requests, first added first used."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Arm a fault."""
        self.pending.append(fault)
        return fault

    def take(self, method: str, path: str, has_files: bool = False) -> Fault | None:
        """The first armed fault matching this request, with one use taken from it."""
        for fault in self.pending:
            if fault.times <= 0 or (fault.with_files and not has_files):
                continue
            if re.fullmatch(fault.method, method) and fault.pattern.fullmatch(path):
                fault.times -= 1
                return fault
        return None
