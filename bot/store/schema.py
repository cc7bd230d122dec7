"""The one place where table shapes are defined: sqlite-utils migrations, applied at open."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("remixbot.store")


@MIGRATIONS(name="0001_jobs_ledger_policies")
def _initial(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            interaction_id INTEGER UNIQUE,
            guild_id INTEGER,
            scope INTEGER NOT NULL,                -- guild id, or 0 for direct messages
            channel_id INTEGER,
            user_id INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('remix', 'reroll')),
            parent_job_id INTEGER REFERENCES jobs(id),
            request TEXT NOT NULL DEFAULT '{}',
            input_key TEXT,
            style_ref_keys TEXT NOT NULL DEFAULT '[]',
            state TEXT NOT NULL CHECK (state IN
                ('queued', 'running', 'delivered', 'failed', 'cancelled', 'unknown')),
            created_at TEXT NOT NULL,              -- also when it was queued and reserved
            started_at TEXT,                       -- entered running
            finished_at TEXT,                      -- entered a final state
            backend TEXT NOT NULL,
            backend_ref TEXT,                      -- request id or task id at the backend
            images_requested INTEGER NOT NULL CHECK (images_requested >= 1),
            images_reserved INTEGER NOT NULL CHECK (images_reserved >= 0),
            images_delivered INTEGER NOT NULL DEFAULT 0 CHECK (images_delivered >= 0),
            images_withheld INTEGER NOT NULL DEFAULT 0 CHECK (images_withheld >= 0),
            message_ids TEXT NOT NULL DEFAULT '[]',
            message_channel_id INTEGER,
            request_message_id INTEGER,            -- the message to reply to
            error TEXT
        )
        """
    )
    db.execute("CREATE INDEX jobs_user ON jobs (user_id, id)")
    db.execute("CREATE INDEX jobs_state ON jobs (state)")
    # No index on created_at: only the daily retention sweep reads it, and every index costs
    # each job insert.
    # Result message -> job, so a 🔁 reaction on any result message finds its job.
    db.execute(
        "CREATE TABLE job_messages ("
        " message_id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL REFERENCES jobs(id))"
    )
    # Every stored input a job uses (input image and style references), for sweeps and forget.
    db.execute(
        "CREATE TABLE job_inputs ("
        " job_id INTEGER NOT NULL REFERENCES jobs(id), key TEXT NOT NULL,"
        " PRIMARY KEY (job_id, key)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX job_inputs_key ON job_inputs (key)")
    db.execute(
        """
        CREATE TABLE quota_ledger (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            period_ts TEXT NOT NULL,   -- the time the row counts at (a job's rows: its reservation)
            scope INTEGER NOT NULL,    -- guild id, or 0 for direct messages
            user_id INTEGER NOT NULL,
            job_id INTEGER REFERENCES jobs(id),
            kind TEXT NOT NULL CHECK (kind IN ('reserve', 'settle', 'refund', 'grant', 'reset')),
            amount INTEGER NOT NULL CHECK (amount >= 0)
        )
        """
    )
    # Quota checks read the hourly summary (quota_usage), not the ledger: no scope index here.
    db.execute("CREATE INDEX quota_ledger_job ON quota_ledger (job_id)")
    # Append-only: no deletes; the only update allowed is forget() anonymising the user id.
    db.execute(
        """
        CREATE TRIGGER quota_ledger_no_delete BEFORE DELETE ON quota_ledger
        BEGIN SELECT RAISE(ABORT, 'quota_ledger is append-only'); END
        """
    )
    db.execute(
        """
        CREATE TRIGGER quota_ledger_no_update BEFORE UPDATE ON quota_ledger
        WHEN NOT (NEW.user_id = -1 AND NEW.id = OLD.id AND NEW.ts = OLD.ts
                  AND NEW.period_ts = OLD.period_ts AND NEW.scope = OLD.scope
                  AND NEW.job_id IS OLD.job_id AND NEW.kind = OLD.kind
                  AND NEW.amount = OLD.amount)
        BEGIN SELECT RAISE(ABORT, 'quota_ledger is append-only'); END
        """
    )
    db.execute(
        """
        CREATE TABLE backend_costs (
            job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
            backend TEXT NOT NULL,
            images_billed INTEGER CHECK (images_billed >= 0),   -- NULL when unknown
            status TEXT NOT NULL CHECK (status IN ('billed', 'unknown')),
            recorded_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE policy_defaults (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            limit_images INTEGER NOT NULL CHECK (limit_images >= 0),
            period TEXT NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly')),
            updated_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        "CREATE TABLE policy_guilds ("
        " guild_id INTEGER PRIMARY KEY,"
        " limit_images INTEGER NOT NULL CHECK (limit_images >= 0))"
    )
    db.execute(
        "CREATE TABLE policy_roles ("
        " guild_id INTEGER NOT NULL, role_id INTEGER NOT NULL,"
        " limit_images INTEGER NOT NULL CHECK (limit_images >= 0),"
        " PRIMARY KEY (guild_id, role_id))"
    )
    db.execute(
        "CREATE TABLE policy_exempt_roles ("
        " guild_id INTEGER NOT NULL, role_id INTEGER NOT NULL, PRIMARY KEY (guild_id, role_id))"
    )
    db.execute(
        "CREATE TABLE policy_blocked ("
        " user_id INTEGER PRIMARY KEY, reason TEXT NOT NULL, blocked_at TEXT NOT NULL)"
    )


@MIGRATIONS(name="0002_quota_usage")
def _quota_usage(db: Database) -> None:
    # Hourly sums of the ledger, kept by triggers in the same transaction as each ledger row.
    # Periods always start on an hour, so a period's totals are a sum of at most 744 rows
    # (a month), however long the ledger grows; the ledger stays the record, this a summary.
    db.execute(
        """
        CREATE TABLE quota_usage (
            user_id INTEGER NOT NULL,
            scope INTEGER NOT NULL,
            hour TEXT NOT NULL,                     -- 'YYYY-MM-DDTHH' of the rows' period_ts
            reserved INTEGER NOT NULL DEFAULT 0,
            settled INTEGER NOT NULL DEFAULT 0,
            refunded INTEGER NOT NULL DEFAULT 0,
            granted INTEGER NOT NULL DEFAULT 0,
            reset INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (user_id, scope, hour)
        ) WITHOUT ROWID
        """
    )
    columns = "reserved, settled, refunded, granted, reset"

    def split(sign: str, row: str) -> str:
        return ", ".join(
            f"{sign}CASE {row}.kind WHEN '{kind}' THEN {row}.amount ELSE 0 END"
            for kind in ("reserve", "settle", "refund", "grant", "reset")
        )

    def upsert(sign: str, row: str) -> str:
        return (
            f"INSERT INTO quota_usage (user_id, scope, hour, {columns})"
            f" VALUES ({row}.user_id, {row}.scope, substr({row}.period_ts, 1, 13),"
            f" {split(sign, row)})"
            " ON CONFLICT (user_id, scope, hour) DO UPDATE SET"
            " reserved = reserved + excluded.reserved, settled = settled + excluded.settled,"
            " refunded = refunded + excluded.refunded, granted = granted + excluded.granted,"
            " reset = reset + excluded.reset;"
        )

    db.execute(
        f"CREATE TRIGGER quota_usage_insert AFTER INSERT ON quota_ledger BEGIN {upsert('', 'NEW')}"
        " END"
    )
    # forget() moves a user's rows to the anonymous id: move the sums with them.
    db.execute(
        "CREATE TRIGGER quota_usage_move AFTER UPDATE OF user_id ON quota_ledger"
        f" BEGIN {upsert('-', 'OLD')} {upsert('', 'NEW')} END"
    )
    # Rows written before this migration (none in a fresh database).
    db.execute(
        f"INSERT INTO quota_usage (user_id, scope, hour, {columns})"
        " SELECT user_id, scope, substr(period_ts, 1, 13),"
        " sum(CASE kind WHEN 'reserve' THEN amount ELSE 0 END),"
        " sum(CASE kind WHEN 'settle' THEN amount ELSE 0 END),"
        " sum(CASE kind WHEN 'refund' THEN amount ELSE 0 END),"
        " sum(CASE kind WHEN 'grant' THEN amount ELSE 0 END),"
        " sum(CASE kind WHEN 'reset' THEN amount ELSE 0 END)"
        " FROM quota_ledger GROUP BY 1, 2, 3"
    )


def _close_trigger(also: str = "") -> str:
    """The trigger that settles a job's books when it closes, then runs `also` (more SQL)."""
    return f"""
        CREATE TRIGGER jobs_close AFTER UPDATE OF state ON jobs
        WHEN OLD.state IN ('queued', 'running')
         AND NEW.state IN ('delivered', 'failed', 'cancelled', 'unknown')
        BEGIN
            INSERT INTO quota_ledger (ts, period_ts, scope, user_id, job_id, kind, amount)
            VALUES (NEW.finished_at, NEW.created_at, NEW.scope, NEW.user_id, NEW.id, 'settle',
                    min(NEW.images_delivered, NEW.images_reserved));
            INSERT INTO quota_ledger (ts, period_ts, scope, user_id, job_id, kind, amount)
            SELECT NEW.finished_at, NEW.created_at, NEW.scope, NEW.user_id, NEW.id, 'refund',
                   NEW.images_reserved - min(NEW.images_delivered, NEW.images_reserved)
            WHERE NEW.images_reserved > NEW.images_delivered;
            {also}
        END
        """


@MIGRATIONS(name="0003_ledger_by_triggers")
def _ledger_triggers(db: Database) -> None:
    # The job row and its ledger rows are written by ONE statement: inserting a job reserves,
    # moving it to a final state settles and refunds and records the backend cost. A single
    # statement is atomic on its own, so the books cannot be half-written, and no caller can
    # forget a ledger row.
    db.execute("ALTER TABLE jobs ADD COLUMN images_billed INTEGER")  # NULL: unknown
    db.execute(
        """
        CREATE TRIGGER jobs_reserve AFTER INSERT ON jobs
        BEGIN
            INSERT INTO quota_ledger (ts, period_ts, scope, user_id, job_id, kind, amount)
            VALUES (NEW.created_at, NEW.created_at, NEW.scope, NEW.user_id, NEW.id, 'reserve',
                    NEW.images_reserved);
        END
        """
    )
    # Charge what was delivered (never more than reserved), refund the rest, record the cost.
    db.execute(
        _close_trigger(
            """
            INSERT INTO backend_costs (job_id, backend, images_billed, status, recorded_at)
            VALUES (NEW.id, NEW.backend, NEW.images_billed,
                    CASE WHEN NEW.images_billed IS NULL THEN 'unknown' ELSE 'billed' END,
                    NEW.finished_at)
            ON CONFLICT (job_id) DO NOTHING;
            """
        )
    )
    # Every stored input a job uses, from the row itself (style references are a JSON list).
    db.execute(
        """
        CREATE TRIGGER jobs_inputs AFTER INSERT ON jobs
        BEGIN
            INSERT OR IGNORE INTO job_inputs (job_id, key)
            SELECT NEW.id, NEW.input_key WHERE NEW.input_key IS NOT NULL;
            INSERT OR IGNORE INTO job_inputs (job_id, key)
            SELECT NEW.id, value FROM json_each(NEW.style_ref_keys);
        END
        """
    )
    # A final job never changes state again.
    db.execute(
        """
        CREATE TRIGGER jobs_final AFTER UPDATE OF state ON jobs
        WHEN OLD.state IN ('delivered', 'failed', 'cancelled', 'unknown')
         AND NEW.state IS NOT OLD.state
        BEGIN SELECT RAISE(ABORT, 'a final job cannot change state'); END
        """
    )


@MIGRATIONS(name="0004_leaner_job_writes")
def _leaner_job_writes(db: Database) -> None:
    # Every job is inserted once and closed once; these make both writes cheaper.
    # Only open jobs are looked up by state (reconcile at start, the queue): index just those,
    # so a job leaves the index when it closes instead of moving within it.
    db.execute("DROP INDEX jobs_state")
    db.execute("CREATE INDEX jobs_open ON jobs (state) WHERE state IN ('queued', 'running')")
    # Run the input-reference inserts only for jobs that have inputs (json_each costs each time).
    db.execute("DROP TRIGGER jobs_inputs")
    db.execute(
        """
        CREATE TRIGGER jobs_input_key AFTER INSERT ON jobs WHEN NEW.input_key IS NOT NULL
        BEGIN
            INSERT OR IGNORE INTO job_inputs (job_id, key) VALUES (NEW.id, NEW.input_key);
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER jobs_style_refs AFTER INSERT ON jobs WHEN NEW.style_ref_keys <> '[]'
        BEGIN
            INSERT OR IGNORE INTO job_inputs (job_id, key)
            SELECT NEW.id, value FROM json_each(NEW.style_ref_keys);
        END
        """
    )


@MIGRATIONS(name="0005_backend_costs_from_jobs")
def _backend_costs_view(db: Database) -> None:
    # The backend's bill already lives on the job row (images_billed, set when the job closes);
    # the table copied it. A view keeps one source of truth and one fewer write per job.
    # Rows written before 0003 may have the bill only in the table: carry it over first.
    db.execute(
        "UPDATE jobs SET images_billed = (SELECT images_billed FROM backend_costs"
        " WHERE job_id = jobs.id) WHERE id IN (SELECT job_id FROM backend_costs)"
    )
    db.execute("DROP TRIGGER jobs_close")
    db.execute(_close_trigger())
    db.execute("DROP TABLE backend_costs")
    # What each final job cost at the backend, apart from the user's quota (NULL: unknown).
    db.execute(
        """
        CREATE VIEW backend_costs AS
        SELECT id AS job_id, backend, images_billed,
               CASE WHEN images_billed IS NULL THEN 'unknown' ELSE 'billed' END AS status,
               finished_at AS recorded_at
        FROM jobs WHERE state IN ('delivered', 'failed', 'cancelled', 'unknown')
        """
    )


@MIGRATIONS(name="0006_job_owner")
def _job_owner(db: Database) -> None:
    # The process (its lock-file token, bot/store/owners.py) whose Store created the job, so a
    # restart reconciles only the jobs of processes that are gone. NULL: from before owners.
    db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")


@MIGRATIONS(name="0007_job_mask")
def _job_mask(db: Database) -> None:
    # An edit's mask (prepared to the input's exact size) is stored like the input, so a reroll
    # of an edit edits the same region; retention and forget find it through job_inputs.
    db.execute("ALTER TABLE jobs ADD COLUMN mask_key TEXT")
    db.execute(
        """
        CREATE TRIGGER jobs_mask_key AFTER INSERT ON jobs WHEN NEW.mask_key IS NOT NULL
        BEGIN
            INSERT OR IGNORE INTO job_inputs (job_id, key) VALUES (NEW.id, NEW.mask_key);
        END
        """
    )


@MIGRATIONS(name="0008_guild_controls")
def _guild_controls(db: Database) -> None:
    # What a server's admins set from Discord (cogs/admin.py): where /remix and the controls
    # work, whether the server's queue takes new jobs, where moderation events are logged, and
    # the prompt block list. A server without a row has every channel open and nothing blocked.
    db.execute(
        """
        CREATE TABLE guild_settings (
            guild_id INTEGER PRIMARY KEY,
            channel_mode TEXT NOT NULL DEFAULT 'all' CHECK (channel_mode IN ('all', 'allow', 'deny')),
            paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
            log_channel_id INTEGER
        )
        """
    )
    db.execute(
        "CREATE TABLE guild_channels ("
        " guild_id INTEGER NOT NULL, channel_id INTEGER NOT NULL,"
        " PRIMARY KEY (guild_id, channel_id)) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE prompt_blocks ("
        " guild_id INTEGER NOT NULL,"
        " kind TEXT NOT NULL CHECK (kind IN ('word', 'pattern')),"
        " text TEXT NOT NULL,"
        " PRIMARY KEY (guild_id, kind, text)) WITHOUT ROWID"
    )


@MIGRATIONS(name="0009_job_results")
def _job_results(db: Database) -> None:
    # The posted result images of a job, stored content-addressed under results/ like inputs,
    # so /show, Vary and the DM control work without a Discord CDN link; the retention sweep
    # and forget find them here.
    db.execute(
        "CREATE TABLE job_results ("
        " job_id INTEGER NOT NULL REFERENCES jobs(id), position INTEGER NOT NULL,"
        " key TEXT NOT NULL, PRIMARY KEY (job_id, position)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX job_results_key ON job_results (key)")


@MIGRATIONS(name="0010_blocks_per_server")
def _blocks_per_server(db: Database) -> None:
    # A block belongs to a scope: one server's (its admins', /remixadmin quota block), or
    # everywhere (guild_id 0: the bot's owner's, `remixbot quota block` without --guild). The
    # blocks stored before were bot-wide, and stay so. SQLite cannot change a primary key in
    # place: the table is made again, in this migration's transaction.
    db.execute(
        "CREATE TABLE policy_blocked_new ("
        " user_id INTEGER NOT NULL,"
        " guild_id INTEGER NOT NULL,"
        " reason TEXT NOT NULL, blocked_at TEXT NOT NULL,"
        " PRIMARY KEY (user_id, guild_id)) WITHOUT ROWID"
    )
    db.execute(
        "INSERT INTO policy_blocked_new (user_id, guild_id, reason, blocked_at)"
        " SELECT user_id, 0, reason, blocked_at FROM policy_blocked"
    )
    db.execute("DROP TABLE policy_blocked")
    db.execute("ALTER TABLE policy_blocked_new RENAME TO policy_blocked")


def apply_migrations(db: Database) -> None:
    """Apply pending migrations inside one BEGIN IMMEDIATE, so concurrent openers take turns."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        MIGRATIONS.apply(db)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
