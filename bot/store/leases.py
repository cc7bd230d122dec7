"""Leases (PostgreSQL): which processes are alive, on any machine, and the backend slots they hold.

A process's Store registers a row in `owners` when it opens and renews it every few seconds; the
row's `expires_at` is set by the server's clock, so the machines' clocks never matter. An owner
whose lease ran out is gone, however it ended (SIGKILL, a power cut, a network split): reconcile
then closes or claims its open jobs, and the slots it held at the backend (`inflight`) stop
counting. A live process whose lease was swept (it stalled past the lease) registers again.

The in-flight budget of a backend key is shared the same way: a slot is a row of `inflight`
taken in one statement only while the images of live owners' slots leave room for it, with the
key's turn taken first so that two processes never both see the last free images.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket

from bot.store.db import StoreDb

log = logging.getLogger(__name__)

# How long a process's jobs and backend slots stay its own without a renewal (seconds).
DEFAULT_LEASE_SECONDS = 30.0


class Leases:
    """This process's lease, the others' (for reconcile), and the shared backend slots."""

    def __init__(self, db: StoreDb, token: str, seconds: float) -> None:
        self.db = db
        self.token = token
        self.seconds = seconds

    @staticmethod
    def new_token() -> str:
        """A fresh owner token (the same shape as a lock file's)."""
        return secrets.token_hex(8)

    # --- this process -----------------------------------------------------------------------

    def register(self) -> None:
        """Take the lease (or take it again after it was swept)."""
        self.db.conn.execute(
            "INSERT INTO owners (token, host, pid, expires_at)"
            " VALUES (?, ?, ?, now() + make_interval(secs => ?))"
            " ON CONFLICT (token) DO UPDATE SET expires_at = excluded.expires_at",
            (self.token, socket.gethostname()[:200], os.getpid(), self.seconds),
        )

    def renew(self) -> bool:
        """Push the lease's end out again; False when it had been swept (and is taken anew)."""
        cur = self.db.conn.execute(
            "UPDATE owners SET expires_at = now() + make_interval(secs => ?)"
            " WHERE token = ? AND expires_at > now()",
            (self.seconds, self.token),
        )
        if cur.rowcount:
            return True
        # Stalled past the lease: other processes may already have taken this one's jobs.
        log.warning("this process's lease had run out; taking a new one")
        self.register()
        return False

    def release(self) -> None:
        """Give the lease up (a clean stop): its open jobs are for the next reconcile."""
        self.db.conn.execute("DELETE FROM owners WHERE token = ?", (self.token,))

    # --- the others, as reconcile asks --------------------------------------------------------

    def alive(self, token: str) -> bool:
        """True while `token`'s lease has not run out."""
        row = self.db.one("SELECT expires_at > now() FROM owners WHERE token = ?", (token,))
        return bool(row is not None and row[0])

    def sweep(self, keep: str | None) -> int:
        """Delete the leases that ran out (their slots go with them); how many."""
        cur = self.db.conn.execute(
            "DELETE FROM owners WHERE expires_at <= now() AND token <> ?", (keep or "",)
        )
        return cur.rowcount

    # --- the shared in-flight budget ----------------------------------------------------------

    def take_slot(self, key: str, slot: str, images: int, budget: int) -> bool:
        """Hold `images` of `key`'s budget for `slot` if live owners leave room; True if taken.

        A job larger than the whole budget runs alone: it is let in when nothing else is in
        flight, as the scheduler does within one process.
        """
        with self.db.write() as c:
            self.db.take_turns(f"inflight:{key}")
            row = c.execute(
                "WITH used AS (SELECT coalesce(sum(i.images), 0) AS n FROM inflight i"
                " JOIN owners o ON o.token = i.owner WHERE i.key = ? AND o.expires_at > now())"
                " INSERT INTO inflight (key, owner, slot, images)"
                " SELECT ?, ?, ?, ? FROM used WHERE used.n + ? <= ? OR used.n = 0"
                " ON CONFLICT (key, owner, slot) DO UPDATE SET images = excluded.images"
                " RETURNING 1",
                (key, key, self.token, slot, images, images, budget),
            ).fetchone()
            return row is not None

    def give_slot(self, key: str, slot: str) -> None:
        """Give a slot back (the backend answered, or the job ended)."""
        self.db.conn.execute(
            "DELETE FROM inflight WHERE key = ? AND owner = ? AND slot = ?",
            (key, self.token, slot),
        )

    def slots_in_use(self, key: str) -> int:
        """Images of `key` at the backend now, over every live process."""
        row = self.db.one(
            "SELECT coalesce(sum(i.images), 0) FROM inflight i JOIN owners o"
            " ON o.token = i.owner WHERE i.key = ? AND o.expires_at > now()",
            (key,),
        )
        return int(row[0])
