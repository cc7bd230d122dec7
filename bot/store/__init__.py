"""The job store: jobs, the quota ledger, policies, backend costs and stored inputs (SQLite).

Job states: ``queued -> running -> delivered``, or ``failed`` / ``cancelled`` / ``unknown``.
`Store` (store.py) is the async facade; behind it, one connection (db.py) serves the quota rules
(quota_rules.py, policies.py), the jobs (jobs.py, rows.py), reconcile (reconcile.py: the open jobs
of processes that are gone, by rule) and upkeep (maintenance.py); posted results are journaled
to files first (journal.py).
"""

from __future__ import annotations

from bot.store.errors import (
    BooksMissing,
    JobNotFound,
    QuotaExceeded,
    StoreBusy,
    StoreUnavailable,
    UserBlocked,
)
from bot.store.inputs import InputStore
from bot.store.models import (
    ANON_USER_ID,
    CLI_USER_ID,
    FINAL_STATES,
    JOB_STATES,
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
from bot.store.store import Store, defaults_from_settings

__all__ = [
    "ANON_USER_ID",
    "CLI_USER_ID",
    "FINAL_STATES",
    "JOB_STATES",
    "Block",
    "BooksMissing",
    "ForgetReport",
    "InputStore",
    "Job",
    "JobNotFound",
    "LedgerBalance",
    "NewJob",
    "Policies",
    "PostedRecord",
    "QuotaDefaults",
    "QuotaExceeded",
    "QuotaStatus",
    "ReconcileReport",
    "Store",
    "StoreBusy",
    "StoreUnavailable",
    "Unblocked",
    "UserBlocked",
    "defaults_from_settings",
]
