"""`Store`: the async facade over the books, in SQLite or PostgreSQL; never blocks the loop.

Every call runs on a worker thread that owns one connection. SQLite has one such writer (one
writer at a time is SQLite's rule; bursts share a commit, writer.py). PostgreSQL has a few, each
with its own connection, whose transactions run side by side; where that could change an answer
(a user's reservations, reconcile, a backend key's slots) the parts take turns on an advisory
lock (`StoreDb.take_turns`).

Why psycopg 3 for PostgreSQL, and its synchronous connections on these threads rather than
asyncpg on the event loop: the store's parts (the quota rule, jobs, reconcile, retention,
forget, check_books) are written once against the DB-API that sqlite3 and psycopg share
(`conn.execute(sql, params)`, cursors, rows by name), so both databases run the same code and
the same tests; asyncpg would have needed every part written a second time, as coroutines. The
threads keep the loop free exactly as they do for SQLite. psycopg 3 is the PostgreSQL project's
maintained driver (its async API is there should the store ever move onto the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from bot.background import Background
from bot.settings import Settings, shown_database
from bot.store.db import Db, StoreDb, has_books
from bot.store.errors import BooksMissing, StoreBusy
from bot.store.guilds import GuildRules, GuildStore
from bot.store.inputs import InputStore
from bot.store.jobs import Jobs
from bot.store.journal import PostedJournal
from bot.store.leases import DEFAULT_LEASE_SECONDS, Leases
from bot.store.maintenance import Maintenance
from bot.store.models import (
    Block,
    ForgetReport,
    Job,
    LedgerBalance,
    NewJob,
    Policies,
    PostedRecord,
    QuotaDefaults,
    QuotaStatus,
    ReconcileReport,
    Unblocked,
)
from bot.store.owners import FileOwners, OwnerLock, owners_folder
from bot.store.policies import PolicyStore
from bot.store.quota_rules import QuotaRules
from bot.store.reconcile import Owners, Reconciler
from bot.store.results import Results
from bot.store.usage import GuildUsage, UsageRow, guild_usage, usage_rows
from bot.store.writer import Writer

log = logging.getLogger(__name__)

T = TypeVar("T")

# PostgreSQL connections (and worker threads) per Store: enough for a burst of reservations from
# different members to run side by side, few enough for many processes on one server.
PG_CONNECTIONS = 4


def defaults_from_settings(settings: Settings) -> QuotaDefaults:
    """The quota defaults a deployment configured (REMIXBOT_DEFAULT_LIMIT and friends)."""
    return QuotaDefaults(
        limit=settings.default_limit,
        period=settings.quota_period,
        reset_hour=settings.reset_hour,
        retention_days=settings.retention_days,
    )


def is_postgres(database: Path | str) -> bool:
    """True when `database` is a PostgreSQL URL (else it is a SQLite file or sqlite:/// URL)."""
    return isinstance(database, str) and database.startswith(("postgresql://", "postgres://"))


def _locate(database: Path | str, data_dir: Path | str | None) -> tuple[Path | str, Path]:
    """(the SQLite file or the PostgreSQL URL, the folder of stored images and the journal)."""
    if isinstance(database, str) and database.startswith("sqlite:///"):
        database = Path(database.removeprefix("sqlite:///"))
    if not is_postgres(database):
        database = Path(database)
        return database, Path(data_dir) if data_dir is not None else database.parent
    if data_dir is None:
        raise ValueError("a PostgreSQL store needs data_dir for its stored images")
    return database, Path(data_dir)


def books_place(database: Path | str) -> str:
    """Where books are, for a sentence: the SQLite file's full path, or the URL without its
    password."""
    return shown_database(database) if is_postgres(database) else str(Path(database).absolute())


def books_missing(settings: Settings, database: Path | str) -> BooksMissing:
    """The refusal for no books at `database`, naming the setting that points there."""
    where = books_place(database)
    url = settings.database_url.get() if settings.database_url else ""
    if is_postgres(database):
        return BooksMissing(where, "check REMIXBOT_DATABASE_URL")
    if url.startswith("sqlite:///"):
        return BooksMissing(where, "set REMIXBOT_DATABASE_URL to the bot's SQLite file")
    hint = "set REMIXBOT_DATA_DIR to the bot's data folder"
    if not settings.data_dir.is_absolute():
        # The default, `data`, is read from wherever the command runs: say so.
        hint += f" (now {str(settings.data_dir)!r}, read from the folder this runs in)"
    return BooksMissing(where, hint)


class _Files(NamedTuple):
    """The store's files in the data folder: inputs, kept results and the posted journal."""

    inputs: InputStore
    results: InputStore
    journal: PostedJournal


class _Parts(NamedTuple):
    """The store's concerns over one connection (used on that connection's thread only)."""

    db: StoreDb
    policies: PolicyStore
    rules: QuotaRules
    jobs: Jobs
    reconciler: Reconciler
    upkeep: Maintenance
    leases: Leases | None  # PostgreSQL: this process's lease, the others', the backend slots
    guilds: GuildStore
    results: Results

    @classmethod
    def build(
        cls,
        db: StoreDb,
        defaults: QuotaDefaults,
        files: _Files,
        token: str | None,
        owners: Owners | None,
        leases: Leases | None,
    ) -> _Parts:
        """Every part on `db`; reconcile asks `owners` (or the leases) who is alive."""
        rules = QuotaRules(db, defaults)
        jobs = Jobs(db, rules, token)
        who = owners if owners is not None else leases
        assert who is not None
        return cls(
            db=db,
            policies=PolicyStore(db, defaults),
            rules=rules,
            jobs=jobs,
            reconciler=Reconciler(db, jobs, files.journal, who, token),
            upkeep=Maintenance(db, files.inputs, defaults, files.results),
            leases=leases,
            guilds=GuildStore(db),
            results=Results(db),
        )


class _Pool:
    """The store's writers, each with its parts: a call goes to the least busy."""

    def __init__(self) -> None:
        self.writers: list[tuple[Writer, _Parts]] = []
        self.grouping = False  # SQLite: calls queued together share one commit

    async def call(self, fn: Callable[[_Parts], T], group: bool, atomic: bool) -> T:
        writer, parts = min(self.writers, key=lambda w: w[0].pending)
        return await writer.call(lambda: fn(parts), group=group and self.grouping, atomic=atomic)

    async def each(self, fn: Callable[[_Parts], Any]) -> None:
        """Run `fn` once on every writer (closing), then stop the threads."""
        for writer, parts in self.writers:
            with contextlib.suppress(Exception):
                await writer.call(lambda parts=parts: fn(parts))
            await writer.stop()


class Store:
    """Jobs, quotas, policies and stored inputs; open with ``await Store.open(path, defaults=…)``."""

    def __init__(self, pool: _Pool, files: _Files) -> None:
        self._pool = pool
        self._files = files
        self.inputs = files.inputs
        self.journal = files.journal
        # Posted result images, kept for the retention period (bot/store/results.py).
        self.results = files.results
        self.database = ""  # where the books are, safe to print (set by open)
        self._closed = False
        self._late = Background()  # undoing cancelled submits
        # Message id -> job id: results this process posted and journaled, not yet recorded.
        self._unrecorded: dict[int, int] = {}
        # What the reconcile at open did (terminal jobs of processes that are gone).
        self.reconciled_at_open = ReconcileReport()
        self._owner_lock: OwnerLock | None = None  # SQLite: this process's lock file
        self._renewing: asyncio.Task[None] | None = None  # PostgreSQL: the lease's heartbeat
        self.lease_seconds = DEFAULT_LEASE_SECONDS

    @property
    def kind(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._pool.writers[0][1].db.kind

    @property
    def owner(self) -> str | None:
        """This process's owner token, stamped on the jobs it creates."""
        return self._pool.writers[0][1].jobs.owner

    @classmethod
    async def open(
        cls,
        database: Path | str,
        *,
        defaults: QuotaDefaults,
        data_dir: Path | str | None = None,
        busy_timeout: float = 5.0,
        reconcile: bool = True,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        create: bool = True,
    ) -> Store:
        """Open (creating if needed) the books and apply pending migrations.

        `database`: a SQLite file (a path, or a `sqlite:///path` URL), or a `postgresql://` URL.
        `busy_timeout` (seconds) is how long a write waits for another process's lock before
        StoreBusy; stored inputs and the posted journal live under `data_dir` (default: the
        SQLite file's directory; required with PostgreSQL). With PostgreSQL this process holds
        a lease, renewed every `lease_seconds` / 3, that other processes read as "alive". With
        `reconcile`, the terminal jobs that killed processes left open are closed now
        (`reconcile()` without claiming Discord jobs), so no run of `remixbot remix` or
        `remixbot quota` holds a member's quota for a process that is gone. Without `create`
        only existing books are opened: where there are none (no SQLite file with the books'
        tables, or no remixbot schema in PostgreSQL) BooksMissing is raised and nothing is made.
        """
        database, folder = _locate(database, data_dir)
        if not create and isinstance(database, Path):
            # Checked before the owner lock, whose folder would otherwise be made beside it.
            if not await asyncio.to_thread(has_books, database):
                raise BooksMissing(books_place(database))
        files = _Files(InputStore(folder), InputStore(folder, "results"), PostedJournal(folder))
        store = cls(_Pool(), files)
        store.database = shown_database(database)
        store.lease_seconds = lease_seconds
        try:
            if isinstance(database, Path):
                await store._open_sqlite(database, defaults, int(busy_timeout * 1000), create)
            else:
                await store._open_postgres(database, defaults, int(busy_timeout * 1000), create)
        except BaseException:
            await store._shut()
            raise
        if reconcile:
            try:
                store.reconciled_at_open = await store.reconcile()
            except StoreBusy:  # another process is writing: the next open (or the bot) does it
                log.info("the database was busy; orphaned jobs are reconciled another time")
            except BaseException:
                await store.close()
                raise
        return store

    async def _open_sqlite(
        self, path: Path, defaults: QuotaDefaults, busy_ms: int, create: bool
    ) -> None:
        # One thread owns the connection: SQLite calls never block the event loop, and writes
        # from this process are serialised (and group-committed) before SQLite's own lock.
        # This process's claim on the jobs it creates (see bot/store/owners.py).
        self._owner_lock = lock = await asyncio.to_thread(OwnerLock.acquire, owners_folder(path))
        token = lock.token if lock is not None else None

        def connect() -> _Parts:
            db = Db(path, busy_ms, create=create)
            owners = FileOwners(owners_folder(path))
            return _Parts.build(db, defaults, self._files, token, owners, None)

        writer, parts = await self._add_writer("remixbot-store", connect)
        writer.bind(parts.db.conn)
        self._pool.grouping = True

    async def _open_postgres(
        self, url: str, defaults: QuotaDefaults, busy_ms: int, create: bool
    ) -> None:
        from bot.store.pg import PgDb  # psycopg is only needed by a PostgreSQL store

        token = Leases.new_token()
        for n in range(PG_CONNECTIONS):

            def connect(first: bool = n == 0) -> _Parts:
                # The first checks that the books are there (unless it may make them) and
                # applies the migrations.
                db = PgDb(url, busy_ms, migrate=first, create=create)
                leases = Leases(db, token, self.lease_seconds)
                if first:
                    leases.register()
                return _Parts.build(db, defaults, self._files, token, None, leases)

            await self._add_writer(f"remixbot-store-{n}", connect)
        self._renewing = asyncio.create_task(self._renew_lease(), name="remixbot-lease")

    async def _add_writer(self, name: str, connect: Callable[[], _Parts]) -> tuple[Writer, _Parts]:
        """A worker thread whose connection and parts `connect` makes (on that thread)."""
        writer = Writer(name)
        try:
            parts = await writer.call(connect)
        except BaseException:
            await writer.stop()
            raise
        self._pool.writers.append((writer, parts))
        return writer, parts

    async def _renew_lease(self) -> None:
        """Renew this process's lease until the store closes (a third of its length apart)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self._run(lambda p: p.leases.renew())  # type: ignore[union-attr]
            except Exception:  # the server is away: the next renewal tries again
                log.warning("could not renew this process's lease", exc_info=True)

    @classmethod
    async def from_settings(cls, settings: Settings, *, create: bool = True) -> Store:
        """Open the store of REMIXBOT_DATABASE_URL with the quota settings as defaults; without
        `create`, only books that exist (BooksMissing names the setting that points there)."""
        try:
            return await cls.open(
                settings.database,
                defaults=defaults_from_settings(settings),
                data_dir=settings.data_dir,
                lease_seconds=settings.lease_seconds,
                create=create,
            )
        except BooksMissing as exc:
            raise books_missing(settings, settings.database) from exc

    async def close(self) -> None:
        """Close the connections and stop the writer threads; safe to call twice."""
        if self._closed:
            return
        await self._late.finish()  # cancelled submits being undone
        self._closed = True
        await self._shut()

    async def _shut(self) -> None:
        """Stop the lease, release it, close every connection, then drop the lock file."""
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(BaseException):
                await self._renewing

        def close(parts: _Parts) -> None:
            try:
                if parts.leases is not None and parts is self._pool.writers[0][1]:
                    parts.leases.release()
            finally:
                parts.db.close()

        try:
            await self._pool.each(close)
        finally:
            if self._owner_lock is not None:
                self._owner_lock.release()

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
        self, fn: Callable[[_Parts], T], *, group: bool = False, atomic: bool = False
    ) -> T:
        """Run `fn(parts)` on a writer thread; `group` calls may share one commit (SQLite)."""
        if self._closed:
            raise RuntimeError("The store is closed.")
        return await self._pool.call(fn, group, atomic)

    # --- jobs -------------------------------------------------------------------------------

    async def submit_job(self, new: NewJob, now: datetime | None = None) -> Job:
        """Create the job and reserve its images in one transaction (QuotaRefused if not allowed).

        A replayed interaction id returns the existing job without reserving again.
        """
        call = asyncio.ensure_future(
            self._run(lambda p: p.jobs.submit_job(new, now), group=True, atomic=True)
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
        self._late.spawn(self._cancel_job(call.result()))

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
            lambda p: p.jobs.mark_running(job_id, backend_ref, now), group=True, atomic=True
        )

    async def set_backend_ref(self, job_id: int, ref: str) -> Job:
        """Save the backend's request or task id on an open job."""
        return await self._run(
            lambda p: p.jobs.set_backend_ref(job_id, ref), group=True, atomic=True
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
            lambda p: p.jobs.settle(job_id, delivered, withheld, billed, now),
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
            lambda p: p.jobs.fail(job_id, error, state, billed, now), group=True, atomic=True
        )

    async def record_messages(
        self, job_id: int, message_ids: Sequence[int], channel_id: int | None
    ) -> Job:
        """Remember the messages that carry the job's results."""
        return await self._run(
            lambda p: p.jobs.record_messages(job_id, list(message_ids), channel_id), group=True
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
        job = await self._run(lambda p: p.jobs.settle_posted(record, now), group=True)
        for message_id in record.message_ids:
            self._unrecorded.pop(message_id, None)
        try:
            await self.journal.delete(record.job_id)  # after the commit: the books hold it now
        except OSError:  # the job is settled all the same; the next reconcile deletes the file
            log.warning("job %s: could not delete its posted journal file", job.id, exc_info=True)
        return job

    async def get_job(self, job_id: int) -> Job:
        """The job with this id (JobNotFound otherwise)."""
        return await self._run(lambda p: p.jobs.get_job(job_id), group=True, atomic=True)

    async def find_job(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        return await self._run(lambda p: p.jobs.find_job(job_id), group=True, atomic=True)

    async def job_for_message(self, message_id: int) -> Job | None:
        """The job whose results a message carries (for 🔁 reactions), or None; also a job this
        process posted and journaled whose messages are not in the books yet."""
        job = await self._run(lambda p: p.jobs.job_for_message(message_id), group=True, atomic=True)
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
        return await self._run(lambda p: p.jobs.list_jobs(user_id, state, limit, guild_id))

    async def usage(self, guild_id: int | None = None, since: date | None = None) -> list[UsageRow]:
        """Images and the backend's bill by day, guild and member (bot/store/usage.py)."""
        return await self._run(lambda p: usage_rows(p.db.conn, guild_id, since))

    async def backend_cost(self, job_id: int) -> tuple[str, int | None] | None:
        """('billed', n) or ('unknown', None) once the job is final; None while open."""
        return await self._run(lambda p: p.jobs.backend_cost(job_id))

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
            lambda p: p.rules.quota_status(user_id, guild_id, tuple(role_ids), now),
            group=True,
            atomic=True,
        )

    async def set_default(self, limit: int, period: str | None = None) -> Policies:
        """Store the default limit and (optionally) period."""
        return await self._run(lambda p: p.policies.set_default(limit, period))

    async def set_guild(self, guild_id: int, limit: int | None) -> None:
        """Set a guild's limit override (None removes it)."""
        await self._run(lambda p: p.policies.set_guild(guild_id, limit))

    async def set_role(self, guild_id: int, role_id: int, limit: int | None) -> None:
        """Set a role tier's limit in a guild (None removes it)."""
        await self._run(lambda p: p.policies.set_role(guild_id, role_id, limit))

    async def set_exempt_role(self, guild_id: int, role_id: int, exempt: bool = True) -> None:
        """Make a role unlimited in a guild (or not)."""
        await self._run(lambda p: p.policies.set_exempt_role(guild_id, role_id, exempt))

    async def grant(
        self, user_id: int, guild_id: int | None, n: int, *, now: datetime | None = None
    ) -> QuotaStatus:
        """Add `n` images to the user's allowance for the current period."""
        return await self._run(lambda p: p.rules.grant(user_id, guild_id, n, now))

    async def reset(
        self, user_id: int, guild_id: int | None, *, now: datetime | None = None
    ) -> QuotaStatus:
        """Forgive the user's charges for the current period."""
        return await self._run(lambda p: p.rules.reset(user_id, guild_id, now))

    async def block(self, user_id: int, reason: str, *, guild_id: int | None) -> None:
        """Refuse the user's new jobs with `reason` in the server `guild_id`, or everywhere
        (None: the bot's owner's block, every server and direct messages)."""
        await self._run(lambda p: p.policies.block(user_id, reason, guild_id))

    async def unblock(self, user_id: int, *, guild_id: int | None) -> Unblocked:
        """Lift the user's block in the server `guild_id` (None: the bot-wide one) and no
        other; what was lifted and which blocks still refuse them there."""
        return await self._run(lambda p: p.policies.unblock(user_id, guild_id))

    async def blocks(self, user_id: int | None = None) -> tuple[Block, ...]:
        """Every block, or one user's, with its scope (bot-wide ones first)."""
        return await self._run(lambda p: p.policies.blocks(user_id), group=True, atomic=True)

    async def policies(self) -> Policies:
        """Every stored policy."""
        return await self._run(lambda p: p.policies.policies())

    # --- server settings, kept results, usage (the member and admin controls) -----------------

    async def guild_rules(self, guild_id: int) -> GuildRules:
        """A server's channel list, pause, log channel and prompt block list."""
        return await self._run(lambda p: p.guilds.rules(guild_id), group=True, atomic=True)

    async def set_channel_mode(self, guild_id: int, mode: str) -> GuildRules:
        """Where /remix works: all channels, only the listed ones (allow) or all but them (deny)."""
        return await self._run(lambda p: p.guilds.set_channel_mode(guild_id, mode))

    async def set_channel(self, guild_id: int, channel_id: int, listed: bool) -> GuildRules:
        """Put a channel on the server's list (or take it off)."""
        return await self._run(lambda p: p.guilds.set_channel(guild_id, channel_id, listed))

    async def set_paused(self, guild_id: int, paused: bool) -> GuildRules:
        """Stop (or start again) taking new jobs from a server."""
        return await self._run(lambda p: p.guilds.set_paused(guild_id, paused))

    async def set_log_channel(self, guild_id: int, channel_id: int | None) -> GuildRules:
        """Where a server's moderation events are posted (None: nowhere)."""
        return await self._run(lambda p: p.guilds.set_log_channel(guild_id, channel_id))

    async def set_prompt_block(
        self, guild_id: int, kind: str, text: str, blocked: bool = True
    ) -> GuildRules:
        """Add a word or pattern to a server's prompt block list (or remove it)."""
        return await self._run(lambda p: p.guilds.set_block(guild_id, kind, text, blocked))

    async def keep_results(self, job_id: int, images: Sequence[bytes]) -> list[str]:
        """Store a job's posted result images (off the loop) and list them with the job."""
        keys = [await self.results.put(data) for data in images]
        await self._run(lambda p: p.results.record(job_id, keys), group=True)
        return keys

    async def result_keys(self, job_id: int) -> list[str]:
        """The keys of a job's kept result images, in posted order (empty when none)."""
        return await self._run(lambda p: p.results.keys(job_id), group=True, atomic=True)

    async def result_images(self, job_id: int) -> list[bytes]:
        """A job's kept result images that are still on disk, in posted order."""
        found = [await self.results.get(k) for k in await self.result_keys(job_id)]
        return [data for data in found if data is not None]

    async def guild_usage(self, guild_id: int, now: datetime | None = None) -> GuildUsage:
        """A server's images this period, its top members and the backend's bill."""
        return await self._run(lambda p: guild_usage(p.db.conn, p.policies, guild_id, now))

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
            lambda p: p.reconciler.reconcile(now, frozenset(resumable), claim_discord_jobs)
        )

    async def sweep_inputs(self, now: datetime | None = None) -> int:
        """Delete stored inputs and kept results older than the retention period; how many."""
        return await self._run(lambda p: p.upkeep.sweep_inputs(now))

    async def forget(self, user_id: int) -> ForgetReport:
        """Delete a user's stored inputs, kept results and personal fields, keeping anonymous
        counts; their blocks stay (a moderation record), and the report lists them."""

        def forget(p: _Parts) -> ForgetReport:
            report = p.upkeep.forget(user_id)
            return dataclasses.replace(report, blocks=p.policies.blocks(user_id))

        return await self._run(forget)

    async def ledger_balance(self, job_id: int) -> LedgerBalance:
        """The job's reserved, charged and refunded sums."""
        return await self._run(lambda p: p.upkeep.ledger_balance(job_id))

    # --- the backend's in-flight budget, shared by the processes on one key (PostgreSQL) ------

    def _leases(self, parts: _Parts) -> Leases:
        if parts.leases is None:
            raise RuntimeError("a shared in-flight budget needs the books in PostgreSQL")
        return parts.leases

    async def take_backend_slot(self, key: str, slot: str, images: int, budget: int) -> bool:
        """Hold `images` of backend `key`'s budget for `slot` if every live process's slots
        leave room within `budget`; True if held (see bot/store/leases.py)."""
        return await self._run(lambda p: self._leases(p).take_slot(key, slot, images, budget))

    async def give_backend_slot(self, key: str, slot: str) -> None:
        """Give a slot of backend `key` back."""
        await self._run(lambda p: self._leases(p).give_slot(key, slot))

    async def backend_slots_in_use(self, key: str) -> int:
        """Images of backend `key` at the backend now, over every live process."""
        return await self._run(lambda p: self._leases(p).slots_in_use(key))

    async def check_books(self) -> list[str]:
        """Every inconsistency between jobs and ledger (empty = the books balance)."""
        return await self._run(lambda p: p.upkeep.check_books())
