"""The job store: jobs, the quota ledger, policies, backend costs and stored inputs (SQLite).

Job states: ``queued -> running -> delivered``, or ``failed`` / ``cancelled`` / ``unknown``.
Reconcile at start: queued -> failed and refunded; running on a synchronous backend -> unknown,
refunded, backend cost unknown; running on task-proxy with a task id -> returned for resuming.
"""

from __future__ import annotations

from bot.store.errors import JobNotFound, QuotaExceeded, StoreBusy, UserBlocked
from bot.store.inputs import InputStore
from bot.store.models import (
    ANON_USER_ID,
    CLI_USER_ID,
    FINAL_STATES,
    JOB_STATES,
    ForgetReport,
    Job,
    LedgerBalance,
    NewJob,
    Policies,
    QuotaDefaults,
    QuotaStatus,
    ReconcileReport,
)
from bot.store.store import Store, defaults_from_settings

__all__ = [
    "ANON_USER_ID",
    "CLI_USER_ID",
    "FINAL_STATES",
    "JOB_STATES",
    "ForgetReport",
    "InputStore",
    "Job",
    "JobNotFound",
    "LedgerBalance",
    "NewJob",
    "Policies",
    "QuotaDefaults",
    "QuotaExceeded",
    "QuotaStatus",
    "ReconcileReport",
    "Store",
    "StoreBusy",
    "UserBlocked",
    "defaults_from_settings",
]
