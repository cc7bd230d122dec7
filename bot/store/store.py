"""`Store`: the async facade; every call runs on one dedicated writer thread, never on the loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from bot.settings import Settings
from bot.store.db import Db
from bot.store.errors import StoreBusy
from bot.store.guilds import GuildRules, GuildStore
from bot.store.inputs import InputStore
from bot.store.jobs import Jobs
from bot.store.journal import PostedJournal
from bot.store.maintenance import Maintenance
from bot.store.models import (
    ForgetReport,
    Job,
    LedgerBalance,
    NewJob,
    Policies,
    PostedRecord,
    QuotaDefaults,
    QuotaStatus,
    ReconcileReport,
)
from bot.store.owners import OwnerLock, owners_folder
from bot.store.policies import PolicyStore
from bot.store.quota_rules import QuotaRules
from bot.store.reconcile import Reconciler
from bot.store.results import Results
from bot.store.usage import GuildUsage, UsageRow, guild_usage, usage_rows
from bot.store.writer import Writer

log = logging.getLogger(__name__)

T = TypeVar("T")


def defaults_from_settings(settings: Settings) -> QuotaDefaults:
    """The quota defaults a deployment configured (REMIXBOT_DEFAULT_LIMIT and friends)."""
    return QuotaDefaults(
        limit=settings.default_limit,
        period=settings.quota_period,
        reset_hour=settings.reset_hour,
        retention_days=settings.retention_days,
    )


class _Parts(NamedTuple):
    """The store's concerns, each over the one connection (used on the writer thread only)."""

    db: Db
    policies: PolicyStore
    rules: QuotaRules
    jobs: Jobs
    reconciler: Reconciler
    upkeep: Maintenance
    owner: OwnerLock | None
    guilds: GuildStore
    results: Results

    @classmethod
    def connect(
        cls,
        path: Path,
        defaults: QuotaDefaults,
        inputs: InputStore,
        journal: PostedJournal,
        busy_timeout_ms: int,
        owner: OwnerLock | None,
        results: InputStore,
    ) -> _Parts:
        """Open the connection (migrations applied) and build every part on it."""
        db = Db(path, busy_timeout_ms)
        token = owner.token if owner is not None else None
        rules = QuotaRules(db, defaults)
        jobs = Jobs(db, rules, token)
        policies = PolicyStore(db, defaults)
        return cls(
            db=db,
            policies=policies,
            rules=rules,
            jobs=jobs,
            reconciler=Reconciler(db, jobs, journal, owners_folder(path), token),
            upkeep=Maintenance(db, inputs, defaults, results),
            owner=owner,
            guilds=GuildStore(db),
            results=Results(db),
        )

    def close(self) -> None:
        """Close the connection, then give up the claim on this process's jobs."""
        try:
            self.db.close()
        finally:
            if self.owner is not None:
                self.owner.release()


class Store:
    """Jobs, quotas, policies and stored inputs; open with ``await Store.open(path, defaults=…)``."""

    def __init__(
        self,
        writer: Writer,
        parts: _Parts,
        inputs: InputStore,
        journal: PostedJournal,
        results: InputStore | None = None,
    ) -> None:
        self._writer = writer
        self._parts = parts
        self.inputs = inputs
        self.journal = journal
        # Posted result images, kept for the retention period (bot/store/results.py).
        self.results = results if results is not None else InputStore(inputs.root.parent, "results")
        self._closed = False
        self._late: set[asyncio.Task[None]] = set()  # undoing cancelled submits
        # Message id -> job id: results this process posted and journaled, not yet recorded.
        self._unrecorded: dict[int, int] = {}
        # What the reconcile at open did (terminal jobs of processes that are gone).
        self.reconciled_at_open = ReconcileReport()

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        defaults: QuotaDefaults,
        data_dir: Path | str | None = None,
        busy_timeout: float = 5.0,
        reconcile: bool = True,
    ) -> Store:
        """Open (creating if needed) the database at `path` and apply pending migrations.

        `busy_timeout` (seconds) is how long a write waits for another process's lock before
        StoreBusy; stored inputs and the posted journal live under `data_dir` (default: the
        database's directory). With `reconcile`, the terminal jobs that killed processes left
        open are closed now (`reconcile()` without claiming Discord jobs), so no run of
        `remixbot remix` or `remixbot quota` holds a member's quota for a process that is gone.
        """
        path = Path(path)
        folder = Path(data_dir) if data_dir is not None else path.parent
        inputs = InputStore(folder)
        results = InputStore(folder, "results")
        journal = PostedJournal(folder)
        # One thread owns the connection: SQLite calls never block the event loop, and writes
        # from this process are serialised (and group-committed) before SQLite's own lock.
        writer = Writer()
        owner: OwnerLock | None = None
        try:
            # This process's claim on the jobs it creates (see bot/store/owners.py).
            owner = await asyncio.to_thread(OwnerLock.acquire, owners_folder(path))
            parts = await writer.call(
                functools.partial(
                    _Parts.connect,
                    path,
                    defaults,
                    inputs,
                    journal,
                    int(busy_timeout * 1000),
                    owner,
                    results,
                )
            )
        except BaseException:
            if owner is not None:
                owner.release()
            await writer.stop()
            raise
        writer.bind(parts.db.conn)
        store = cls(writer, parts, inputs, journal, results)
        if reconcile:
            try:
                store.reconciled_at_open = await store.reconcile()
            except StoreBusy:  # another process is writing: the next open (or the bot) does it
                log.info("the database was busy; orphaned jobs are reconciled another time")
            except BaseException:
                await store.close()
                raise
        return store

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
        await self._writer.call(self._parts.close)
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
        """Run a method of a store part on the writer thread; `group` calls may share one commit."""
        if self._closed:
            raise RuntimeError("The store is closed.")
        return await self._writer.call(functools.partial(fn, *args), group=group, atomic=atomic)

    # --- jobs -------------------------------------------------------------------------------

    async def submit_job(self, new: NewJob, now: datetime | None = None) -> Job:
        """Create the job and reserve its images in one transaction (QuotaRefused if not allowed).

        A replayed interaction id returns the existing job without reserving again.
        """
        call = asyncio.ensure_future(
            self._run(self._parts.jobs.submit_job, new, now, group=True, atomic=True)
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
            self._parts.jobs.mark_running, job_id, backend_ref, now, group=True, atomic=True
        )

    async def set_backend_ref(self, job_id: int, ref: str) -> Job:
        """Save the backend's request or task id on an open job."""
        return await self._run(
            self._parts.jobs.set_backend_ref, job_id, ref, group=True, atomic=True
        )

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
            self._parts.jobs.settle,
            job_id,
            delivered,
            withheld,
            billed,
            now,
            group=True,
            atomic=True,
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
        return await self._run(
            self._parts.jobs.fail, job_id, error, state, billed, now, group=True, atomic=True
        )

    async def record_messages(
        self, job_id: int, message_ids: Sequence[int], channel_id: int | None
    ) -> Job:
        """Remember the messages that carry the job's results."""
        return await self._run(
            self._parts.jobs.record_messages, job_id, list(message_ids), channel_id, group=True
        )

    async def journal_posted(self, record: PostedRecord) -> None:
        """Write the posted record to `<data_dir>/posted/` (atomic, off the loop, no SQLite).

        Call it as soon as the results are posted, before `settle_posted`: it works while the
        database is locked, and if this process dies before settling, the next reconcile
        settles the job from it. Until the books hold the messages, `job_for_message` finds the
        job through them (a 🔁 on a result that is posted is never ignored).
        """
        for message_id in record.message_ids:
            self._unrecorded[message_id] = record.job_id
        await self.journal.write(record)

    async def settle_posted(self, record: PostedRecord, *, now: datetime | None = None) -> Job:
        """Record the posted messages and settle delivered (charging `record.images`) in ONE
        transaction, then delete the job's journal file. A final job is returned unchanged."""
        job = await self._run(self._parts.jobs.settle_posted, record, now, group=True)
        for message_id in record.message_ids:
            self._unrecorded.pop(message_id, None)
        try:
            await self.journal.delete(record.job_id)  # after the commit: the books hold it now
        except OSError:  # the job is settled all the same; the next reconcile deletes the file
            log.warning("job %s: could not delete its posted journal file", job.id, exc_info=True)
        return job

    async def get_job(self, job_id: int) -> Job:
        """The job with this id (JobNotFound otherwise)."""
        return await self._run(self._parts.jobs.get_job, job_id, group=True, atomic=True)

    async def find_job(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        return await self._run(self._parts.jobs.find_job, job_id, group=True, atomic=True)

    async def job_for_message(self, message_id: int) -> Job | None:
        """The job whose results a message carries (for 🔁 reactions), or None; also a job this
        process posted and journaled whose messages are not in the books yet."""
        job = await self._run(self._parts.jobs.job_for_message, message_id, group=True, atomic=True)
        if job is None and message_id in self._unrecorded:
            return await self.find_job(self._unrecorded[message_id])
        return job

    async def list_jobs(
        self,
        user_id: int | None = None,
        state: str | None = None,
        limit: int = 50,
        *,
        guild_id: int | None = None,
    ) -> list[Job]:
        """Newest jobs first, optionally filtered by user, state and guild."""
        return await self._run(self._parts.jobs.list_jobs, user_id, state, limit, guild_id)

    async def usage(self, guild_id: int | None = None, since: date | None = None) -> list[UsageRow]:
        """Images and the backend's bill by day, guild and member (bot/store/usage.py)."""
        return await self._run(usage_rows, self._parts.db.conn, guild_id, since)

    async def backend_cost(self, job_id: int) -> tuple[str, int | None] | None:
        """('billed', n) or ('unknown', None) once the job is final; None while open."""
        return await self._run(self._parts.jobs.backend_cost, job_id)

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
            self._parts.rules.quota_status,
            user_id,
            guild_id,
            tuple(role_ids),
            now,
            group=True,
            atomic=True,
        )

    async def set_default(self, limit: int, period: str | None = None) -> Policies:
        """Store the default limit and (optionally) period."""
        return await self._run(self._parts.policies.set_default, limit, period)

    async def set_guild(self, guild_id: int, limit: int | None) -> None:
        """Set a guild's limit override (None removes it)."""
        await self._run(self._parts.policies.set_guild, guild_id, limit)

    async def set_role(self, guild_id: int, role_id: int, limit: int | None) -> None:
        """Set a role tier's limit in a guild (None removes it)."""
        await self._run(self._parts.policies.set_role, guild_id, role_id, limit)

    async def set_exempt_role(self, guild_id: int, role_id: int, exempt: bool = True) -> None:
        """Make a role unlimited in a guild (or not)."""
        await self._run(self._parts.policies.set_exempt_role, guild_id, role_id, exempt)

    async def grant(
        self, user_id: int, guild_id: int | None, n: int, *, now: datetime | None = None
    ) -> QuotaStatus:
        """Add `n` images to the user's allowance for the current period."""
        return await self._run(self._parts.rules.grant, user_id, guild_id, n, now)

    async def reset(
        self, user_id: int, guild_id: int | None, *, now: datetime | None = None
    ) -> QuotaStatus:
        """Forgive the user's charges for the current period."""
        return await self._run(self._parts.rules.reset, user_id, guild_id, now)

    async def block(self, user_id: int, reason: str) -> None:
        """Refuse the user's new jobs with `reason`."""
        await self._run(self._parts.policies.block, user_id, reason)

    async def unblock(self, user_id: int) -> bool:
        """Lift a block; True when there was one."""
        return await self._run(self._parts.policies.unblock, user_id)

    async def policies(self) -> Policies:
        """Every stored policy."""
        return await self._run(self._parts.policies.policies)

    # --- server settings, kept results, usage (the member and admin controls) -----------------

    async def guild_rules(self, guild_id: int) -> GuildRules:
        """A server's channel list, pause, log channel and prompt block list."""
        return await self._run(self._parts.guilds.rules, guild_id, group=True, atomic=True)

    async def set_channel_mode(self, guild_id: int, mode: str) -> GuildRules:
        """Where /remix works: all channels, only the listed ones (allow) or all but them (deny)."""
        return await self._run(self._parts.guilds.set_channel_mode, guild_id, mode)

    async def set_channel(self, guild_id: int, channel_id: int, listed: bool) -> GuildRules:
        """Put a channel on the server's list (or take it off)."""
        return await self._run(self._parts.guilds.set_channel, guild_id, channel_id, listed)

    async def set_paused(self, guild_id: int, paused: bool) -> GuildRules:
        """Stop (or start again) taking new jobs from a server."""
        return await self._run(self._parts.guilds.set_paused, guild_id, paused)

    async def set_log_channel(self, guild_id: int, channel_id: int | None) -> GuildRules:
        """Where a server's moderation events are posted (None: nowhere)."""
        return await self._run(self._parts.guilds.set_log_channel, guild_id, channel_id)

    async def set_prompt_block(
        self, guild_id: int, kind: str, text: str, blocked: bool = True
    ) -> GuildRules:
        """Add a word or pattern to a server's prompt block list (or remove it)."""
        return await self._run(self._parts.guilds.set_block, guild_id, kind, text, blocked)

    async def keep_results(self, job_id: int, images: Sequence[bytes]) -> list[str]:
        """Store a job's posted result images (off the loop) and list them with the job."""
        keys = [await self.results.put(data) for data in images]
        await self._run(self._parts.results.record, job_id, keys, group=True)
        return keys

    async def result_keys(self, job_id: int) -> list[str]:
        """The keys of a job's kept result images, in posted order (empty when none)."""
        return await self._run(self._parts.results.keys, job_id, group=True, atomic=True)

    async def result_images(self, job_id: int) -> list[bytes]:
        """A job's kept result images that are still on disk, in posted order."""
        found = [await self.results.get(k) for k in await self.result_keys(job_id)]
        return [data for data in found if data is not None]

    async def guild_usage(self, guild_id: int, now: datetime | None = None) -> GuildUsage:
        """A server's images this period, its top members and the backend's bill."""
        return await self._run(
            guild_usage, self._parts.db.conn, self._parts.policies, guild_id, now
        )

    # --- restart, retention, privacy, checks -------------------------------------------------

    async def reconcile(
        self,
        now: datetime | None = None,
        *,
        resumable: Collection[str] = (),
        claim_discord_jobs: bool = False,
    ) -> ReconcileReport:
        """Close or claim the open jobs of processes that are gone (see bot/store/reconcile.py).

        `resumable`: names of the backends that can resume a job from its task id.
        `claim_discord_jobs`: the bot's call; without it only terminal jobs are touched.
        Cheap when there is nothing to do (no write lock is taken), so it can run every minute.
        """
        return await self._run(
            self._parts.reconciler.reconcile, now, frozenset(resumable), claim_discord_jobs
        )

    async def sweep_inputs(self, now: datetime | None = None) -> int:
        """Delete stored inputs and kept results older than the retention period; how many."""
        return await self._run(self._parts.upkeep.sweep_inputs, now)

    async def forget(self, user_id: int) -> ForgetReport:
        """Delete a user's stored inputs, kept results and personal fields, keeping anonymous
        counts."""
        return await self._run(self._parts.upkeep.forget, user_id)

    async def ledger_balance(self, job_id: int) -> LedgerBalance:
        """The job's reserved, charged and refunded sums."""
        return await self._run(self._parts.upkeep.ledger_balance, job_id)

    async def check_books(self) -> list[str]:
        """Every inconsistency between jobs and ledger (empty = the books balance)."""
        return await self._run(self._parts.upkeep.check_books)
