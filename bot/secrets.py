"""Secret values that never print: wrapped for repr, and registered for log redaction."""

from __future__ import annotations

import re
import threading

_lock = threading.Lock()
_known: set[str] = set()

# Values that carry authority in URLs and headers, whatever secret they hold.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Interaction and webhook tokens: /webhooks/<app id>/<token>, /interactions/<id>/<token>/callback.
    (re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.\-]{20,}"), r"\1[REDACTED]"),
    # Signed URL parameters: Ideogram sig/exp, Discord hm/ex/is, generic token/signature/key.
    (
        re.compile(
            r"([?&](?:sig|signature|hm|token|key|api_key|apikey|x-amz-signature)=)[^&#\s'\"]+",
            re.IGNORECASE,
        ),
        r"\1[REDACTED]",
    ),
    # Dict/JSON keys that hold credentials, as discord.py's DEBUG gateway log prints events.
    (
        re.compile(
            r"""(['"](?:token|access_token|refresh_token|api_key|apiKey|secret|password)['"]\s*:\s*['"])[^'"]+""",
            re.IGNORECASE,
        ),
        r"\1[REDACTED]",
    ),
    (
        re.compile(
            r"((?:Authorization|Api-Key)['\"]?\s*[:=]\s*['\"]?)(?:Bot |Bearer )?[^\s'\",}]+",
            re.IGNORECASE,
        ),
        r"\1[REDACTED]",
    ),
)


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`redact` removes it from any text."""
    if value and len(value) >= 4:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """Return ``text`` with registered secrets, tokens in URLs and URL signatures removed."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, "[REDACTED]")
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class Secret:
    """A string that prints as ``'***'``; call :meth:`get` for the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def get(self) -> str:
        """Return the secret value (only for the one place that sends it)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
