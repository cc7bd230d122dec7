"""The quota policies an admin stores: the default limit and period, guild overrides, role tiers,
exempt roles and blocks. What they mean for one user is bot/store/quota_rules.py."""

from __future__ import annotations

from bot.errors import InvalidRequest
from bot.store.db import StoreDb
from bot.store.models import Policies, QuotaDefaults, check_count
from bot.store.periods import check_period, iso, utc


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

    def block(self, user_id: int, reason: str) -> None:
        """Refuse every new job of the user, giving `reason`."""
        reason = " ".join(str(reason).split())
        if not reason:
            raise InvalidRequest("A block needs a reason; the user is shown it.")
        if len(reason) > 300:
            raise InvalidRequest(
                f"A block reason can be at most 300 characters, not {len(reason)}."
            )
        with self.db.write() as c:
            c.execute(
                "INSERT INTO policy_blocked VALUES (?, ?, ?) ON CONFLICT (user_id)"
                " DO UPDATE SET reason = excluded.reason, blocked_at = excluded.blocked_at",
                (user_id, reason, iso(utc())),
            )

    def unblock(self, user_id: int) -> bool:
        """Lift a block; True when the user was blocked."""
        with self.db.write() as c:
            cur = c.execute("DELETE FROM policy_blocked WHERE user_id = ?", (user_id,))
            return cur.rowcount > 0

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
            blocked={r[0]: r[1] for r in conn.execute("SELECT * FROM policy_blocked")},
        )
