"""What a server's admins set from Discord: the channels where /remix and the controls work, a
paused queue, the moderation log channel and the prompt block list; and what they mean.

`GuildRules` is one server's settings as a value (a server without a row has every channel open
and nothing blocked); `GuildStore` reads and writes them on the store's connection.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from bot.errors import InvalidRequest
from bot.store.db import StoreDb

CHANNEL_MODES = ("all", "allow", "deny")
BLOCK_KINDS = ("word", "pattern")
# Longest word or pattern an admin may add, and how many a server may hold: every prompt is
# checked against all of them, so both stay small.
MAX_BLOCK_CHARS = 200
MAX_BLOCKS = 200
MAX_CHANNELS = 500


@functools.cache
def _word_regex(word: str) -> re.Pattern[str]:
    """A blocked word matches as a whole word (or phrase), in any case."""
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


@functools.cache
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def check_block(kind: str, text: str) -> str:
    """The word or pattern, tidied, if a server may block it; otherwise one sentence."""
    if kind not in BLOCK_KINDS:
        raise InvalidRequest(f"A block is a word or a pattern, not {kind!r}.")
    text = " ".join(str(text).split()) if kind == "word" else str(text).strip()
    if not text or len(text) > MAX_BLOCK_CHARS:
        raise InvalidRequest(
            f"A blocked {kind} must be 1 to {MAX_BLOCK_CHARS} characters, not {len(text)}."
        )
    if kind == "pattern":
        try:
            _pattern_regex(text)
        except re.error as exc:
            raise InvalidRequest(
                f"That pattern is not a valid regular expression ({exc})."
            ) from None
    return text.lower() if kind == "word" else text


@dataclass(frozen=True)
class GuildRules:
    """One server's settings (the defaults for a server that set nothing)."""

    guild_id: int
    channel_mode: str = "all"  # all: everywhere; allow: only `channels`; deny: all but them
    channels: frozenset[int] = frozenset()
    paused: bool = False
    log_channel_id: int | None = None
    words: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    def channel_allowed(self, channel_id: int | None) -> bool:
        """True when /remix and the controls work in this channel (threads count as their own)."""
        if self.channel_mode == "allow":
            return channel_id in self.channels
        if self.channel_mode == "deny":
            return channel_id not in self.channels
        return True

    def blocks_prompt(self, prompt: str) -> bool:
        """True when the prompt contains a blocked word or matches a blocked pattern."""
        return any(_word_regex(w).search(prompt) for w in self.words) or any(
            _pattern_regex(p).search(prompt) for p in self.patterns
        )


class GuildStore:
    """Reads and writes the guild tables (writer thread only)."""

    def __init__(self, db: StoreDb) -> None:
        self.db = db

    def rules(self, guild_id: int) -> GuildRules:
        """The server's settings; the defaults when it never set any."""
        conn = self.db.conn
        row = self.db.one(
            "SELECT channel_mode, paused, log_channel_id FROM guild_settings WHERE guild_id = ?",
            (guild_id,),
        )
        channels = frozenset(
            r[0]
            for r in conn.execute(
                "SELECT channel_id FROM guild_channels WHERE guild_id = ?", (guild_id,)
            )
        )
        blocks = conn.execute(
            "SELECT kind, text FROM prompt_blocks WHERE guild_id = ? ORDER BY text", (guild_id,)
        ).fetchall()
        return GuildRules(
            guild_id=guild_id,
            channel_mode=row["channel_mode"] if row else "all",
            channels=channels,
            paused=bool(row["paused"]) if row else False,
            log_channel_id=row["log_channel_id"] if row else None,
            words=tuple(b["text"] for b in blocks if b["kind"] == "word"),
            patterns=tuple(b["text"] for b in blocks if b["kind"] == "pattern"),
        )

    def _settle_row(self, guild_id: int, column: str, value: object) -> GuildRules:
        with self.db.write() as c:
            c.execute(
                "INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT DO NOTHING",
                (guild_id,),
            )
            c.execute(
                f"UPDATE guild_settings SET {column} = ? WHERE guild_id = ?", (value, guild_id)
            )
        return self.rules(guild_id)

    def set_channel_mode(self, guild_id: int, mode: str) -> GuildRules:
        """all (every channel), allow (only the listed ones) or deny (all but the listed ones)."""
        if mode not in CHANNEL_MODES:
            raise InvalidRequest(
                f"The channel mode is one of {', '.join(CHANNEL_MODES)}, not {mode!r}."
            )
        return self._settle_row(guild_id, "channel_mode", mode)

    def set_channel(self, guild_id: int, channel_id: int, listed: bool) -> GuildRules:
        """Put a channel on the server's list, or take it off."""
        with self.db.write() as c:
            if listed:
                count = c.execute(
                    "SELECT count(*) FROM guild_channels WHERE guild_id = ?", (guild_id,)
                ).fetchone()[0]
                if count >= MAX_CHANNELS:
                    raise InvalidRequest(f"A server can list at most {MAX_CHANNELS} channels.")
                c.execute(
                    "INSERT INTO guild_channels VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (guild_id, channel_id),
                )
            else:
                c.execute(
                    "DELETE FROM guild_channels WHERE guild_id = ? AND channel_id = ?",
                    (guild_id, channel_id),
                )
        return self.rules(guild_id)

    def set_paused(self, guild_id: int, paused: bool) -> GuildRules:
        """Stop (or start again) taking new jobs from the server."""
        return self._settle_row(guild_id, "paused", int(paused))

    def set_log_channel(self, guild_id: int, channel_id: int | None) -> GuildRules:
        """Where moderation events go (None: nowhere)."""
        return self._settle_row(guild_id, "log_channel_id", channel_id)

    def set_block(self, guild_id: int, kind: str, text: str, blocked: bool) -> GuildRules:
        """Add a word or pattern to the server's prompt block list, or remove it."""
        text = check_block(kind, text)
        with self.db.write() as c:
            if blocked:
                count = c.execute(
                    "SELECT count(*) FROM prompt_blocks WHERE guild_id = ?", (guild_id,)
                ).fetchone()[0]
                if count >= MAX_BLOCKS:
                    raise InvalidRequest(
                        f"A server can block at most {MAX_BLOCKS} words and patterns."
                    )
                c.execute(
                    "INSERT INTO prompt_blocks VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (guild_id, kind, text),
                )
            else:
                c.execute(
                    "DELETE FROM prompt_blocks WHERE guild_id = ? AND kind = ? AND text = ?",
                    (guild_id, kind, text),
                )
        return self.rules(guild_id)
