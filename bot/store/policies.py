"""The quota policies an admin stores: the default limit and period, guild overrides, role tiers,
exempt roles and blocks (a server's own, or the bot's owner's everywhere). What they mean for one
user is bot/store/quota_rules.py."""

from __future__ import annotations

from datetime import datetime

from bot.errors import InvalidRequest
from bot.store.db import StoreDb
from bot.store.models import Block, Policies, QuotaDefaults, Unblocked, check_count
from bot.store.periods import check_period, iso, utc

# `policy_blocked.guild_id` of the bot's owner's block, which holds everywhere: every server and
# direct messages (no guild's id is 0). A server's block holds only where a job's scope is it.
EVERYWHERE = 0


def block_scope(guild_id: int | None) -> int:
    """The `policy_blocked.guild_id` of a block in `guild_id` (None: everywhere)."""
    return EVERYWHERE if guild_id is None else int(guild_id)


class PolicyStore:
    """Reads and writes the policy tables (writer thread only)."""

    def __init__(self, db: StoreDb, defaults: QuotaDefaults) -> None:
        self.db = db
        self.defaults = defaults

    def default_policy(self) -> tuple[int, str]:
        """(limit, period) stored by an admin, else the configured defaults."""
        row = self.db.one("SELECT limit_images, period FROM policy_defaults WHERE id = 1")
        if row is None:
            return self.defaults.limit, self.defaults.period
        return row["limit_images"], row["period"]

    def set_default(self, limit: int, period: str | None) -> Policies:
        """Store the default limit (and period) that apply everywhere."""
        check_count(limit, "The default limit")
        if period is not None:
            check_period(period)
        with self.db.write() as c:
            current = self.default_policy()[1]
            c.execute(
                "INSERT INTO policy_defaults (id, limit_images, period, updated_at)"
                " VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " limit_images = excluded.limit_images, period = excluded.period,"
                " updated_at = excluded.updated_at",
                (limit, period or current, iso(utc())),
            )
        return self.policies()

    def set_guild(self, guild_id: int, limit: int | None) -> None:
        """Set (or with None remove) a guild's limit override."""
        with self.db.write() as c:
            if limit is None:
                c.execute("DELETE FROM policy_guilds WHERE guild_id = ?", (guild_id,))
            else:
                check_count(limit, "The guild limit")
                c.execute(
                    "INSERT INTO policy_guilds VALUES (?, ?) ON CONFLICT (guild_id)"
                    " DO UPDATE SET limit_images = excluded.limit_images",
                    (guild_id, limit),
                )

    def set_role(self, guild_id: int, role_id: int, limit: int | None) -> None:
        """Set (or with None remove) a role tier's limit in a guild."""
        with self.db.write() as c:
            if limit is None:
                c.execute(
                    "DELETE FROM policy_roles WHERE guild_id = ? AND role_id = ?",
                    (guild_id, role_id),
                )
            else:
                check_count(limit, "The role limit")
                c.execute(
                    "INSERT INTO policy_roles VALUES (?, ?, ?) ON CONFLICT (guild_id, role_id)"
                    " DO UPDATE SET limit_images = excluded.limit_images",
                    (guild_id, role_id, limit),
                )

    def set_exempt_role(self, guild_id: int, role_id: int, exempt: bool) -> None:
        """Make a role unlimited in a guild, or take that away."""
        with self.db.write() as c:
            if exempt:
                c.execute(
                    "INSERT INTO policy_exempt_roles VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (guild_id, role_id),
                )
            else:
                c.execute(
                    "DELETE FROM policy_exempt_roles WHERE guild_id = ? AND role_id = ?",
                    (guild_id, role_id),
                )

    def block(self, user_id: int, reason: str, guild_id: int | None) -> None:
        """Refuse every new job of the user in the server `guild_id` (None: everywhere, the
        bot's owner's block), giving `reason`; blocking again replaces the reason."""
        reason = " ".join(str(reason).split())
        if not reason:
            raise InvalidRequest("A block needs a reason; the user is shown it.")
        if len(reason) > 300:
            raise InvalidRequest(
                f"A block reason can be at most 300 characters, not {len(reason)}."
            )
        with self.db.write() as c:
            c.execute(
                "INSERT INTO policy_blocked (user_id, guild_id, reason, blocked_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, guild_id)"
                " DO UPDATE SET reason = excluded.reason, blocked_at = excluded.blocked_at",
                (user_id, block_scope(guild_id), reason, iso(utc())),
            )

    def unblock(self, user_id: int, guild_id: int | None) -> Unblocked:
        """Lift the user's block in the server `guild_id` (None: the bot-wide block) only; say
        which of their blocks still refuse them there (see `Unblocked`)."""
        scope = block_scope(guild_id)
        with self.db.write() as c:
            cur = c.execute(
                "DELETE FROM policy_blocked WHERE user_id = ? AND guild_id = ?", (user_id, scope)
            )
            lifted = cur.rowcount > 0
        others = self.blocks(user_id)
        if guild_id is None:
            return Unblocked(lifted, tuple(b for b in others if not b.everywhere))
        return Unblocked(lifted, tuple(b for b in others if b.everywhere))

    def blocks(self, user_id: int | None = None) -> tuple[Block, ...]:
        """Every block (or one user's): bot-wide ones first, then by server and user."""
        where, args = ("WHERE user_id = ?", (user_id,)) if user_id is not None else ("", ())
        rows = self.db.conn.execute(
            "SELECT user_id, guild_id, reason, blocked_at FROM policy_blocked"
            f" {where} ORDER BY guild_id, user_id",
            args,
        ).fetchall()
        return tuple(
            Block(
                user_id=r["user_id"],
                guild_id=r["guild_id"] or None,
                reason=r["reason"],
                blocked_at=datetime.fromisoformat(r["blocked_at"]),
            )
            for r in rows
        )

    def policies(self) -> Policies:
        """Every stored policy."""
        limit, period = self.default_policy()
        conn = self.db.conn
        return Policies(
            default_limit=limit,
            period=period,
            reset_hour=self.defaults.reset_hour,
            guilds={r[0]: r[1] for r in conn.execute("SELECT * FROM policy_guilds")},
            roles={(r[0], r[1]): r[2] for r in conn.execute("SELECT * FROM policy_roles")},
            exempt_roles=tuple(
                (r[0], r[1]) for r in conn.execute("SELECT * FROM policy_exempt_roles")
            ),
            blocks=self.blocks(),
        )
