"""The store's data types: frozen dataclasses handed across the async facade."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The local terminal user: `remixbot remix` and the CLI's USER word `cli` mean this id.
CLI_USER_ID = 0
# What `forget(user)` writes over a user's id: keeps anonymous counts, names nobody.
ANON_USER_ID = -1

JOB_KINDS = ("remix", "reroll")
OPEN_STATES = ("queued", "running")
FINAL_STATES = ("delivered", "failed", "cancelled", "unknown")
JOB_STATES = OPEN_STATES + FINAL_STATES
FAIL_STATES = ("failed", "cancelled", "unknown")
LEDGER_KINDS = ("reserve", "settle", "refund", "grant", "reset")
# Backends that hand back a task id we can poll after a restart; the others are synchronous calls.
RESUMABLE_BACKENDS = frozenset({"task-proxy"})


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
    # Not a column: True when submit_job found this job under a replayed interaction id (a double
    # click or a redelivery); whoever got it first runs it, the replay must not.
    replayed: bool = field(default=False, compare=False)

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
    blocked_reason: str | None = None
    exempt: bool = False


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
class ReconcileReport:
    """What `reconcile` did at start: jobs refunded and failed, jobs marked unknown, jobs to resume."""

    failed: tuple[int, ...] = ()
    unknown: tuple[int, ...] = ()
    resumable: tuple[Job, ...] = field(default_factory=tuple)
    # Open jobs of another process that is still running on the same file: left alone.
    elsewhere: tuple[int, ...] = ()


@dataclass(frozen=True)
class ForgetReport:
    """What `forget(user)` did: jobs anonymised, stored inputs deleted."""

    jobs: int
    ledger_rows: int
    inputs_deleted: int


@dataclass(frozen=True)
class Policies:
    """Every stored quota policy, for display (`remixbot quota show` and admin commands)."""

    default_limit: int
    period: str
    reset_hour: int
    guilds: dict[int, int]
    roles: dict[tuple[int, int], int]
    exempt_roles: tuple[tuple[int, int], ...]
    blocked: dict[int, str]
