"""The writer thread: owns the SQLite connection, runs calls in order, group-commits bursts.

Calls queued while a transaction runs are taken together (up to MAX_GROUP) into ONE
`BEGIN IMMEDIATE … COMMIT`, each inside its own SAVEPOINT: a call that raises (a quota refusal)
rolls back only its own changes, and every caller gets its answer after the COMMIT. One commit
instead of many is what makes bursts cheap; a lone call is a plain transaction of its own.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.store.errors import StoreBusy, is_busy

MAX_GROUP = 64


@dataclass
class _Call:
    fn: Callable[[], Any]
    group: bool  # may share a transaction with other calls
    atomic: bool  # writes at most one statement per outcome: needs no savepoint of its own
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _deliver(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in results:
        if future.done():  # the caller was cancelled; nothing to tell
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class Writer:
    """A thread running calls against one connection; `await call(fn)` from the event loop.

    Group commit is SQLite's (`bind` its connection); a PostgreSQL connection's writer runs
    every call as a transaction of its own, beside the other connections' writers.
    """

    def __init__(self, name: str = "remixbot-store") -> None:
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._conn: sqlite3.Connection | None = None
        self.pending = 0  # calls sent and not yet answered (counted on the event loop)
        self._thread.start()

    def bind(self, conn: sqlite3.Connection) -> None:
        """The connection group commits run on (set from the writer thread by the first call)."""
        self._conn = conn

    async def call(
        self, fn: Callable[[], Any], *, group: bool = False, atomic: bool = False
    ) -> Any:
        """Run `fn()` on the writer thread and return its result (or raise its exception).

        `group`: may share a transaction with calls queued at the same time. `atomic`: the call
        writes a single statement (SQLite undoes a failed statement by itself) or only reads,
        so it needs no savepoint inside a group.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Call(fn, group, atomic, loop, future))
        self.pending += 1
        try:
            return await future
        finally:
            self.pending -= 1

    async def stop(self, wait: float = 30.0) -> None:
        """Finish queued calls, then end the thread (bounded wait)."""
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join, wait)

    def _main(self) -> None:
        carry: _Call | None = None
        while True:
            call = carry if carry is not None else self._queue.get()
            carry = None
            if call is None:
                return
            batch, stop = [call], False
            if call.group and self._conn is not None:
                while len(batch) < MAX_GROUP:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    if not nxt.group:  # runs alone, right after this group
                        carry = nxt
                        break
                    batch.append(nxt)
            self._finish(batch)
            if stop:
                return

    def _finish(self, batch: list[_Call]) -> None:
        try:
            results = self._run_one(batch[0]) if len(batch) == 1 else self._run_group(batch)
        except BaseException as exc:  # a bug here must not kill the thread and strand callers
            results = [(False, exc) for _ in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for call, (ok, value) in zip(batch, results, strict=True):
            by_loop.setdefault(call.loop, []).append((call.future, ok, value))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the loop is closed; nobody is waiting
                pass

    @staticmethod
    def _run_one(call: _Call) -> list[tuple[bool, Any]]:
        try:
            return [(True, call.fn())]
        except BaseException as exc:
            return [(False, exc)]

    def _run_group(self, batch: list[_Call]) -> list[tuple[bool, Any]]:
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            err: BaseException = StoreBusy() if is_busy(exc) else exc
            return [(False, err) for _ in batch]
        results: list[tuple[bool, Any]] = []
        try:
            for call in batch:
                if call.atomic:
                    try:
                        results.append((True, call.fn()))
                    except Exception as exc:
                        results.append((False, _busy_as_store_busy(exc)))
                else:
                    conn.execute("SAVEPOINT call")
                    try:
                        results.append((True, call.fn()))
                    except Exception as exc:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK TO call")
                        results.append((False, _busy_as_store_busy(exc)))
                    if conn.in_transaction:
                        conn.execute("RELEASE call")
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back (disk full, I/O error): every call
                    # of the group so far was undone, so none of them may report success.
                    raise sqlite3.OperationalError("the transaction was rolled back by SQLite")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            exc = _busy_as_store_busy(exc)
            return [(False, exc) for _ in batch]
        return results


def _busy_as_store_busy(exc: BaseException) -> BaseException:
    """SQLite's "database is locked" as the store's one busy error, wherever in a group it came."""
    if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
        return StoreBusy()
    return exc
