"""`Store`: the async facade; every call runs on one dedicated writer thread, never on the loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from bot.settings import Settings
from bot.store.books import Books
from bot.store.inputs import InputStore
from bot.store.models import (
    FAIL_STATES,
    ForgetReport,
    Job,
    LedgerBalance,
    NewJob,
    Policies,
    QuotaDefaults,
    QuotaStatus,
    ReconcileReport,
)
from bot.store.owners import OwnerLock, owners_folder
from bot.store.writer import Writer

T = TypeVar("T")


def defaults_from_settings(settings: Settings) -> QuotaDefaults:
    """The quota defaults a deployment configured (REMIXBOT_DEFAULT_LIMIT and friends)."""
    return QuotaDefaults(
        limit=settings.default_limit,
        period=settings.quota_period,
        reset_hour=settings.reset_hour,
        retention_days=settings.retention_days,
    )


class Store:
    """Jobs, quotas, policies and stored inputs; open with ``await Store.open(path, defaults=…)``."""

    def __init__(self, writer: Writer, books: Books, inputs: InputStore) -> None:
        self._writer = writer
        self._books = books
        self.inputs = inputs
        self._closed = False
        self._late: set[asyncio.Task[None]] = set()  # undoing cancelled submits

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        defaults: QuotaDefaults,
        data_dir: Path | str | None = None,
        busy_timeout: float = 5.0,
    ) -> Store:
        """Open (creating if needed) the database at `path` and apply pending migrations.

        `busy_timeout` (seconds) is how long a write waits for another process's lock before
        StoreBusy; stored inputs live under `data_dir` (default: the database's directory).
        """
        path = Path(path)
        inputs = InputStore(Path(data_dir) if data_dir is not None else path.parent)
        # One thread owns the connection: SQLite calls never block the event loop, and writes
        # from this process are serialised (and group-committed) before SQLite's own lock.
        writer = Writer()
        owner: OwnerLock | None = None
        try:
            # This process's claim on the jobs it creates (see bot/store/owners.py).
            owner = await asyncio.to_thread(OwnerLock.acquire, owners_folder(path))
            books = await writer.call(
                functools.partial(Books, path, defaults, inputs, int(busy_timeout * 1000), owner)
            )
        except BaseException:
            if owner is not None:
                owner.release()
            await writer.stop()
            raise
        writer.bind(books.conn)
        return cls(writer, books, inputs)

    @classmethod
    async def from_settings(cls, settings: Settings) -> Store:
        """Open the store at settings.db_path with the quota settings as defaults."""
        return await cls.open(settings.db_path, defaults=defaults_from_settings(settings))

    async def close(self) -> None:
        """Close the connection and stop the writer thread; safe to call twice."""
        if self._closed:
            return
        if self._late:  # cancelled submits being undone
            await asyncio.gather(*self._late, return_exceptions=True)
        self._closed = True
        await self._writer.call(self._books.close)
        await self._writer.stop()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(
        self, fn: Callable[..., T], *args: Any, group: bool = False, atomic: bool = False
    ) -> T:
        """Run a Books method on the writer thread; `group` calls may share one commit."""
        if self._closed:
            raise RuntimeError("The store is closed.")
        return await self._writer.call(functools.partial(fn, *args), group=group, atomic=atomic)

    # --- jobs -------------------------------------------------------------------------------

    async def submit_job(self, new: NewJob, now: datetime | None = None) -> Job:
        """Create the job and reserve its images in one transaction (QuotaRefused if not allowed).

        A replayed interaction id returns the existing job without reserving again.
        """
        call = asyncio.ensure_future(
            self._run(self._books.submit_job, new, now, group=True, atomic=True)
        )
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            # The writer runs a queued call anyway; a job nobody will run must not keep its
            # images reserved until the next restart's reconcile. Undo it when it is made,
            # without holding up the cancellation.
            call.add_done_callback(self._cancel_when_done)
            raise

    def _cancel_when_done(self, call: asyncio.Future[Job]) -> None:
        """Cancel the job of a submit nobody waits for any more, once the writer made it."""
        if call.cancelled() or call.exception() is not None:
            return
        task = asyncio.ensure_future(self._cancel_job(call.result()))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _cancel_job(self, job: Job) -> None:
        if not job.replayed:  # a replay belongs to the first request, which is still running
            with contextlib.suppress(Exception):
                await self.fail(job.id, "the request was cancelled before it was queued",
                                "cancelled", billed=0)  # fmt: skip

    async def mark_running(
        self, job_id: int, backend_ref: str | None = None, *, now: datetime | None = None
    ) -> Job:
        """queued -> running; check `job.state == 'running'` (a cancelled job stays cancelled)."""
        return await self._run(
            self._books.mark_running, job_id, backend_ref, now, group=True, atomic=True
        )

    async def set_backend_ref(self, job_id: int, ref: str) -> Job:
        """Save the backend's request or task id on an open job."""
        return await self._run(self._books.set_backend_ref, job_id, ref, group=True, atomic=True)

    async def settle(
        self,
        job_id: int,
        delivered: int,
        withheld: int = 0,
        billed: int | None = None,
        *,
        now: datetime | None = None,
    ) -> Job:
        """Charge delivered images, refund the rest (withheld included); record the backend cost."""
        return await self._run(
            self._books.settle, job_id, delivered, withheld, billed, now, group=True, atomic=True
        )

    async def fail(
        self,
        job_id: int,
        error: str,
        state: str = "failed",
        billed: int | None = None,
        *,
        now: datetime | None = None,
    ) -> Job:
        """End the job as failed/cancelled/unknown and refund everything; billed None = unknown."""
        if state not in FAIL_STATES:
            raise ValueError(f"state must be one of {', '.join(FAIL_STATES)}, not {state!r}.")
        return await self._run(
            self._books.fail, job_id, error, state, billed, now, group=True, atomic=True
        )

    async def record_messages(
        self, job_id: int, message_ids: Sequence[int], channel_id: int | None
    ) -> Job:
        """Remember the messages that carry the job's results."""
        return await self._run(
            self._books.record_messages, job_id, list(message_ids), channel_id, group=True
        )

    async def get_job(self, job_id: int) -> Job:
        """The job with this id (JobNotFound otherwise)."""
        return await self._run(self._books.get_job, job_id, group=True, atomic=True)

    async def find_job(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        return await self._run(self._books.find_job, job_id, group=True, atomic=True)

    async def job_for_message(self, message_id: int) -> Job | None:
        """The job whose results a message carries (for 🔁 reactions), or None."""
        return await self._run(self._books.job_for_message, message_id, group=True, atomic=True)

    async def list_jobs(
        self,
        user_id: int | None = None,
        state: str | None = None,
        limit: int = 50,
        *,
        guild_id: int | None = None,
    ) -> list[Job]:
        """Newest jobs first, optionally filtered by user, state and guild."""
        return await self._run(self._books.list_jobs, user_id, state, limit, guild_id)

    async def backend_cost(self, job_id: int) -> tuple[str, int | None] | None:
        """('billed', n) or ('unknown', None) once the job is final; None while open."""
        return await self._run(self._books.backend_cost, job_id)

    # --- quotas -----------------------------------------------------------------------------

    async def quota_status(
        self,
        user_id: int,
        guild_id: int | None,
        role_ids: Sequence[int] = (),
        *,
        now: datetime | None = None,
    ) -> QuotaStatus:
        """The user's limit, use and reset time in a guild (None = direct messages)."""
        return await self._run(
            self._books.quota_status,
            user_id,
            guild_id,
            tuple(role_ids),
            now,
            group=True,
            atomic=True,
        )

    async def set_default(self, limit: int, period: str | None = None) -> Policies:
        """Store the default limit and (optionally) period."""
        return await self._run(self._books.set_default, limit, period)

    async def set_guild(self, guild_id: int, limit: int | None) -> None:
        """Set a guild's limit override (None removes it)."""
        await self._run(self._books.set_guild, guild_id, limit)

    async def set_role(self, guild_id: int, role_id: int, limit: int | None) -> None:
        """Set a role tier's limit in a guild (None removes it)."""
        await self._run(self._books.set_role, guild_id, role_id, limit)

    async def set_exempt_role(self, guild_id: int, role_id: int, exempt: bool = True) -> None:
        """Make a role unlimited in a guild (or not)."""
        await self._run(self._books.set_exempt_role, guild_id, role_id, exempt)

    async def grant(
        self, user_id: int, guild_id: int | None, n: int, *, now: datetime | None = None
    ) -> QuotaStatus:
        """Add `n` images to the user's allowance for the current period."""
        return await self._run(self._books.grant, user_id, guild_id, n, now)

    async def reset(
        self, user_id: int, guild_id: int | None, *, now: datetime | None = None
    ) -> QuotaStatus:
        """Forgive the user's charges for the current period."""
        return await self._run(self._books.reset, user_id, guild_id, now)

    async def block(self, user_id: int, reason: str) -> None:
        """Refuse the user's new jobs with `reason`."""
        await self._run(self._books.block, user_id, reason)

    async def unblock(self, user_id: int) -> bool:
        """Lift a block; True when there was one."""
        return await self._run(self._books.unblock, user_id)

    async def policies(self) -> Policies:
        """Every stored policy."""
        return await self._run(self._books.policies)

    # --- restart, retention, privacy, checks -------------------------------------------------

    async def reconcile(self, now: datetime | None = None) -> ReconcileReport:
        """At start: queued jobs refunded and failed, synchronous running jobs unknown and
        refunded, task-proxy jobs with a task id returned for resuming."""
        return await self._run(self._books.reconcile, now)

    async def sweep_inputs(self, now: datetime | None = None) -> int:
        """Delete stored inputs older than the retention period; returns how many."""
        return await self._run(self._books.sweep_inputs, now)

    async def forget(self, user_id: int) -> ForgetReport:
        """Delete a user's stored inputs and personal fields, keeping anonymous counts."""
        return await self._run(self._books.forget, user_id)

    async def ledger_balance(self, job_id: int) -> LedgerBalance:
        """The job's reserved, charged and refunded sums."""
        return await self._run(self._books.ledger_balance, job_id)

    async def check_books(self) -> list[str]:
        """Every inconsistency between jobs and ledger (empty = the books balance)."""
        return await self._run(self._books.check_books)
