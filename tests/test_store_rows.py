"""The jobs row <-> Job mapping: every field round-trips, by column name, whatever the order."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

from bot.store import QuotaDefaults, Store
from bot.store.models import Job
from bot.store.rows import JOB_COLUMNS, JOB_FIELDS, job_from_row

T = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)

# A job with every field set to a value that is not a default of its type.
FULL = Job(
    id=7,
    interaction_id=900_000_000_000_000_001,
    guild_id=111,
    channel_id=222,
    user_id=333,
    kind="reroll",
    parent_job_id=6,
    request={"prompt": "a fox", "seed": 5, "nested": {"a": [1, 2]}},
    input_key="a" * 64,
    style_ref_keys=("b" * 64, "c" * 64),
    state="delivered",
    created_at=T,
    started_at=T.replace(second=3),
    finished_at=T.replace(second=4),
    backend="task-proxy",
    backend_ref="task-xyz",
    images_requested=4,
    images_reserved=4,
    images_delivered=3,
    images_withheld=1,
    message_ids=(444, 555),
    message_channel_id=666,
    request_message_id=777,
    error="kept for the round trip",
    mask_key="b" * 64,
)


def test_the_columns_are_the_job_fields() -> None:
    names = [f.name for f in fields(Job) if f.name != "replayed"]
    assert list(JOB_FIELDS) == names
    assert JOB_COLUMNS == ", ".join(names)


def test_every_field_is_set_in_the_example() -> None:
    # So that the round trips below cover each field with a real value.
    for f in fields(Job):
        if f.name != "replayed":
            assert getattr(FULL, f.name) not in (None, (), {}, 0, ""), f.name


async def test_every_field_round_trips_through_the_table(tmp_path: Path) -> None:
    db = tmp_path / "remixbot.sqlite3"
    async with await Store.open(db, defaults=QuotaDefaults()):
        pass
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys = OFF")  # parent job 6 is not part of this test
    # Write the row the way the store does: JSON for lists and mappings, ISO text for times.
    values = {
        **{name: getattr(FULL, name) for name in JOB_FIELDS},
        "request": '{"nested": {"a": [1, 2]}, "prompt": "a fox", "seed": 5}',
        "style_ref_keys": f'["{"b" * 64}", "{"c" * 64}"]',
        "message_ids": "[444, 555]",
        "created_at": FULL.created_at.isoformat(timespec="microseconds"),
        "started_at": FULL.started_at.isoformat(timespec="microseconds"),
        "finished_at": FULL.finished_at.isoformat(timespec="microseconds"),
        "scope": 111,
    }
    # Inserted open, then closed, as the triggers allow (a job is never inserted final).
    opened = {**values, "state": "running"}
    conn.execute(
        f"INSERT INTO jobs ({', '.join(opened)}) VALUES ({', '.join('?' * len(opened))})",
        list(opened.values()),
    )
    conn.execute("UPDATE jobs SET state = 'delivered' WHERE id = 7")
    conn.commit()
    conn.row_factory = sqlite3.Row
    forward = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs").fetchone()
    # Built by name: the same job whatever order the columns come in.
    backward = conn.execute(f"SELECT {', '.join(reversed(JOB_FIELDS))}, owner FROM jobs").fetchone()
    conn.close()
    assert job_from_row(forward) == FULL
    assert job_from_row(backward) == FULL
    async with await Store.open(db, defaults=QuotaDefaults(), reconcile=False) as s:
        assert await s.get_job(7) == FULL
        assert (await s.list_jobs())[0] == FULL
        assert (await s.job_for_message(555)) is None  # job_messages is the store's to write
