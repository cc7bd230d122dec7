"""Logging setup: one handler, every record passed through secret redaction; lines as text, or
as one JSON object per line (REMIXBOT_LOG_FORMAT=json) carrying the job and guild of the job
being worked on."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator

from bot.secrets import redact

# The job the current task works on: (job id, guild id or None). Set by the lifecycle around a
# job's work; asyncio tasks copy it when they are created, so lines from the backend call, the
# download and the presenter carry it too.
_JOB: contextvars.ContextVar[tuple[int, int | None] | None] = contextvars.ContextVar(
    "remixbot_job", default=None
)


@contextlib.contextmanager
def job_context(job_id: int, guild_id: int | None) -> Iterator[None]:
    """Every log line inside the block (and in tasks started from it) is about this job."""
    token = _JOB.set((job_id, guild_id))
    try:
        yield
    finally:
        _JOB.reset(token)


class RedactingFilter(logging.Filter):
    """Render each record's message once and strip secrets, tokens and URL signatures from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        job = _JOB.get()
        if job is not None and not hasattr(record, "job_id"):
            record.job_id, record.guild_id = job
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, job and guild when about a job,
    and the (redacted) traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (newlines in the message stay escaped inside it)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, object] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if hasattr(record, "job_id"):
            entry["job_id"] = record.job_id
            entry["guild_id"] = getattr(record, "guild_id", None)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(
    level: str = "INFO", stream: object | None = None, fmt: str = "text"
) -> logging.Handler:
    """Configure the root logger once: redacting handler on stderr, as text or JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_remixbot", False):
            root.removeHandler(old)
    handler._remixbot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
