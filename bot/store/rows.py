"""The jobs row <-> `Job` mapping, declared once: derived from the dataclass's fields and types.

Every field of `Job` is the column of the same name (a field marked ``metadata={"column": False}``
is not); how a column's value is read back follows from the field's type: a tuple is a JSON list,
a dict a JSON object, a datetime ISO text, and `X | None` leaves NULL as None. Reads build the Job
by column name, never by a hand-kept position.
"""

from __future__ import annotations

import functools
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from types import UnionType
from typing import Any

from bot.store.models import OPEN_STATES, Job


def _json_list(text: str) -> tuple[Any, ...]:
    return () if text == "[]" else tuple(json.loads(text))


@dataclass(frozen=True)
class _Column:
    """One Job field read from the column of its name."""

    name: str
    read: Callable[[Any], Any] | None  # None: the stored value as is
    nullable: bool


def _column(name: str, hint: Any) -> _Column:
    args = typing.get_args(hint)
    nullable = isinstance(hint, UnionType) and type(None) in args
    if nullable:
        (hint,) = (a for a in args if a is not type(None))
    origin = typing.get_origin(hint) or hint
    read = {tuple: _json_list, dict: json.loads, datetime: datetime.fromisoformat}.get(origin)
    return _Column(name, read, nullable)


_HINTS = typing.get_type_hints(Job)
# Every Job field that is a column, in the dataclass's order.
_COLUMNS = tuple(
    _column(f.name, _HINTS[f.name]) for f in fields(Job) if f.metadata.get("column", True)
)
JOB_FIELDS: tuple[str, ...] = tuple(c.name for c in _COLUMNS)
# For SELECT and RETURNING: exactly the columns job_from_row reads.
JOB_COLUMNS = ", ".join(JOB_FIELDS)
# SQL for "the job is still open", from the one list of open states.
OPEN_SQL = "(" + ", ".join(f"'{s}'" for s in OPEN_STATES) + ")"


@functools.cache
def _builder(layout: tuple[str, ...] | None) -> Callable[[Any], Job]:
    """A function building a Job from a row whose columns are named `layout` (None: a mapping).

    Generated once per layout, as dataclasses generates `__init__`: every job read runs code as
    plain as a hand-written constructor call, yet nothing in it is kept by hand.
    """
    env: dict[str, Any] = {"Job": Job}
    args = []
    for c in _COLUMNS:
        value = f"row[{c.name!r}]" if layout is None else f"row[{layout.index(c.name)}]"
        if c.read is not None:
            env[f"read_{c.name}"] = c.read
            read = f"read_{c.name}({value})"
            value = f"(None if {value} is None else {read})" if c.nullable else read
        args.append(value)  # in field order: the order the fields are declared in
    source = "def build(row):\n    return Job(" + ", ".join(args) + ")\n"
    exec(compile(source, f"<job row {layout and len(layout)}>", "exec"), env)
    return env["build"]


def job_from_row(row: Any) -> Job:
    """A Job from a row (sqlite3's or PostgreSQL's, both read by position and name) or a mapping
    of column values as stored, read by column name."""
    layout = None if isinstance(row, Mapping) else tuple(row.keys())
    return _builder(layout)(row)
