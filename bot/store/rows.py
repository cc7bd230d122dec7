"""The jobs row <-> `Job` mapping, declared once: derived from the dataclass's fields and types.

Every field of `Job` is the column of the same name (a field marked ``metadata={"column": False}``
is not); how a column's value is read back follows from the field's type: a tuple is a JSON list,
a dict a JSON object, a datetime ISO text. Reads build the Job by column name, never by position.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from types import UnionType
from typing import Any

from bot.store.models import OPEN_STATES, Job


def _json_list(text: str) -> tuple[Any, ...]:
    return () if text == "[]" else tuple(json.loads(text))


def _optional(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else read(value)


def _reader(hint: Any) -> Callable[[Any], Any] | None:
    """How a column stored for a field of type `hint` becomes the field's value (None: as is)."""
    args = typing.get_args(hint)
    if isinstance(hint, UnionType) and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        read = _reader(inner)
        return None if read is None else _optional(read)
    origin = typing.get_origin(hint) or hint
    if origin is tuple:
        return _json_list
    if origin is dict:
        return json.loads
    if origin is datetime:
        return datetime.fromisoformat
    return None


_HINTS = typing.get_type_hints(Job)
# (column, reader) for every Job field that is a column, in the dataclass's order.
_READERS: tuple[tuple[str, Callable[[Any], Any] | None], ...] = tuple(
    (f.name, _reader(_HINTS[f.name])) for f in fields(Job) if f.metadata.get("column", True)
)
JOB_FIELDS: tuple[str, ...] = tuple(name for name, _ in _READERS)
# For SELECT and RETURNING: exactly the columns job_from_row reads.
JOB_COLUMNS = ", ".join(JOB_FIELDS)
# SQL for "the job is still open", from the one list of open states.
OPEN_SQL = "(" + ", ".join(f"'{s}'" for s in OPEN_STATES) + ")"


_BY_NAME = tuple(_READERS)  # a mapping is read by the column names themselves


@functools.cache
def _by_position(columns: tuple[str, ...]) -> tuple[tuple[int, Callable[[Any], Any] | None], ...]:
    """Where each Job field is in a row with these column names (resolved once per shape)."""
    index = {name: i for i, name in enumerate(columns)}
    return tuple((index[name], read) for name, read in _READERS)


def job_from_row(row: sqlite3.Row | Mapping[str, Any]) -> Job:
    """A Job from a row (or a mapping of column values as stored), read by column name.

    A row's names are resolved to positions once per column layout: a lookup by name on each
    read would cost every job read a scan of the row's names.
    """
    plan: Sequence[tuple[int | str, Callable[[Any], Any] | None]]
    plan = _by_position(tuple(row.keys())) if isinstance(row, sqlite3.Row) else _BY_NAME
    return Job(*[row[k] if read is None else read(row[k]) for k, read in plan])
