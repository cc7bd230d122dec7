"""The store's data types: frozen dataclasses handed across the async facade."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.errors import InvalidRequest

# The local terminal user: `remixbot remix` and the CLI's USER word `cli` mean this id.
CLI_USER_ID = 0
# What `forget(user)` writes over a user's id: keeps anonymous counts, names nobody.
ANON_USER_ID = -1

JOB_KINDS = ("remix", "reroll")
# The job states, declared once: open ones may still change, final ones never do (a trigger
# enforces it); a job ends either delivered (settle) or in one of the FAIL_STATES (fail).
OPEN_STATES = ("queued", "running")
FAIL_STATES = ("failed", "cancelled", "unknown")
FINAL_STATES = ("delivered", *FAIL_STATES)
JOB_STATES = OPEN_STATES + FINAL_STATES
LEDGER_KINDS = ("reserve", "settle", "refund", "grant", "reset")


def check_fail_state(state: str) -> str:
    """`state` if a job may end in it without delivering; otherwise one sentence."""
    if state not in FAIL_STATES:
        raise InvalidRequest(f"A job can fail as {', '.join(FAIL_STATES)}, not {state!r}.")
    return state


def check_count(n: Any, name: str, lo: int = 0) -> int:
    """`n` if it is a whole number of at least `lo` (not a bool); otherwise one sentence."""
    if isinstance(n, bool) or not isinstance(n, int) or n < lo:
        raise InvalidRequest(f"{name} must be a whole number of at least {lo}, not {n!r}.")
    return n


@dataclass(frozen=True)
class QuotaDefaults:
    """Quota settings used until an admin stores a default with `set_default`."""

    limit: int = 25
    period: str = "daily"
    reset_hour: int = 0
    retention_days: int = 30


@dataclass(frozen=True)
class NewJob:
    """What a caller knows when it accepts a request: enough to create the job and reserve."""

    interaction_id: int | None
    guild_id: int | None
    channel_id: int | None
    user_id: int
    kind: str
    parent_job_id: int | None
    request: Mapping[str, Any]
    input_key: str | None
    style_ref_keys: Sequence[str]
    backend: str
    images: int
    role_ids: Sequence[int] = ()
    request_message_id: int | None = None
    mask_key: str | None = None  # an edit's prepared mask, stored like the input


@dataclass(frozen=True)
class Job:
    """One row of the jobs table."""

    id: int
    interaction_id: int | None
    guild_id: int | None
    channel_id: int | None
    user_id: int
    kind: str
    parent_job_id: int | None
    request: dict[str, Any]
    input_key: str | None
    style_ref_keys: tuple[str, ...]
    state: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    backend: str
    backend_ref: str | None
    images_requested: int
    images_reserved: int
    images_delivered: int
    images_withheld: int
    message_ids: tuple[int, ...]
    message_channel_id: int | None
    request_message_id: int | None
    error: str | None
    mask_key: str | None = None
    # Not a column (bot/store/rows.py maps every other field to the column of its name): True
    # when submit_job found this job under a replayed interaction id (a double click or a
    # redelivery); whoever got it first runs it, the replay must not.
    replayed: bool = field(default=False, compare=False, metadata={"column": False})

    @property
    def final(self) -> bool:
        """True once the job is delivered, failed, cancelled or unknown."""
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class QuotaStatus:
    """A user's quota in one scope for the current period (limit None = unlimited)."""

    user_id: int
    guild_id: int | None
    limit: int | None
    granted: int
    used: int
    reserved: int
    remaining: int | None
    period: str
    period_start: datetime
    resets_at: datetime
    # The reasons of the blocks that refuse the user here: the bot's owner's, which holds in
    # every server and in direct messages, and this server's own (None in direct messages).
    blocked_everywhere: str | None = None
    blocked_here: str | None = None
    exempt: bool = False

    @property
    def blocked_reason(self) -> str | None:
        """The reason the user is shown when refused: the owner's block first (a server's
        admins cannot lift it), else this server's; None when not blocked here."""
        return self.blocked_everywhere if self.blocked_everywhere is not None else self.blocked_here


@dataclass(frozen=True)
class LedgerBalance:
    """Sums of one job's ledger rows; a final job balances when reserved == charged + refunded."""

    job_id: int
    reserved: int
    charged: int
    refunded: int

    @property
    def balanced(self) -> bool:
        """True when every reserved image was either charged or refunded."""
        return self.reserved == self.charged + self.refunded


@dataclass(frozen=True)
class PostedRecord:
    """What was posted for a job: enough to record its messages and settle it, even later.

    Written to the posted journal before the books are touched, so a result that reached the
    channel is charged as posted however the database or the process fails afterwards.
    """

    job_id: int
    message_ids: tuple[int, ...]
    channel_id: int | None
    images: int  # posted: what the member is charged
    withheld: int = 0
    billed: int | None = None  # what the backend billed; None = unknown

    def __post_init__(self) -> None:
        check_count(self.job_id, "A job id", 1)
        check_count(self.images, "Posted images")
        check_count(self.withheld, "Withheld images")
        if self.billed is not None:
            check_count(self.billed, "Billed images")
        ids = tuple(check_count(m, "A message id", 1) for m in self.message_ids)
        object.__setattr__(self, "message_ids", ids)
        if self.channel_id is not None:
            check_count(self.channel_id, "A channel id", 1)


@dataclass(frozen=True)
class ReconcileReport:
    """What `reconcile` did with the open jobs of processes that are gone ("orphans").

    A Discord job has a channel; a terminal job (`remixbot remix`) has none. Ids in `failed`,
    `unknown` and `delivered` were closed; Job objects are handed back where the caller acts.
    """

    failed: tuple[int, ...] = ()  # queued terminal jobs: failed, refunded
    unknown: tuple[int, ...] = ()  # running orphans that cannot resume: unknown, refunded
    # Running Discord jobs with a task id on a resumable backend: claimed, to poll again.
    resumable: tuple[Job, ...] = ()
    # Open jobs of another process that is still running on the same file: left alone.
    elsewhere: tuple[int, ...] = ()
    # Queued Discord jobs: claimed, still queued and reserved; the bot runs them again.
    requeue: tuple[Job, ...] = ()
    # The Discord jobs among `unknown`, as closed: the bot tells their members.
    closed_unknown: tuple[Job, ...] = ()
    # Orphans whose results were already posted: settled delivered, charged as posted.
    delivered: tuple[int, ...] = ()
    # Discord orphans a reconcile without `claim_discord_jobs` left for the bot.
    for_bot: tuple[int, ...] = ()

    @property
    def touched(self) -> int:
        """How many jobs this reconcile closed or claimed."""
        return (
            len(self.failed)
            + len(self.unknown)
            + len(self.resumable)
            + len(self.requeue)
            + len(self.delivered)
        )


@dataclass(frozen=True)
class Block:
    """A user refused with a reason: in one server (`guild_id`), or everywhere (None: the bot's
    owner's block, in every server and in direct messages)."""

    user_id: int
    guild_id: int | None
    reason: str
    blocked_at: datetime

    @property
    def everywhere(self) -> bool:
        """True for the owner's bot-wide block."""
        return self.guild_id is None


@dataclass(frozen=True)
class Unblocked:
    """What `unblock` did in one scope, and the user's blocks that still refuse them: for a
    server, the owner's bot-wide block (its admins cannot lift it); for the bot-wide scope, each
    server's own."""

    lifted: bool
    still: tuple[Block, ...] = ()


@dataclass(frozen=True)
class ForgetReport:
    """What `forget(user)` did: jobs anonymised, stored inputs (and kept results) deleted; the
    user's blocks are kept (a moderation record, not personal content)."""

    jobs: int
    ledger_rows: int
    inputs_deleted: int
    blocks: tuple[Block, ...] = ()


@dataclass(frozen=True)
class Policies:
    """Every stored quota policy, for display (`remixbot quota show` and admin commands)."""

    default_limit: int
    period: str
    reset_hour: int
    guilds: dict[int, int]
    roles: dict[tuple[int, int], int]
    exempt_roles: tuple[tuple[int, int], ...]
    blocks: tuple[Block, ...]  # the bot-wide ones first, then by server, then by user
