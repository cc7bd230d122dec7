"""Logging setup: one handler, every record passed through secret redaction."""

from __future__ import annotations

import logging
import sys

from bot.secrets import redact


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
        return True


def setup_logging(level: str = "INFO", stream: object | None = None) -> logging.Handler:
    """Configure the root logger once: redacting handler on stderr, discord.http kept at INFO."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
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
