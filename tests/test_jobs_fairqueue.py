"""FairQueue: round-robin across users, FIFO within a user."""

from __future__ import annotations

import pytest

from bot.jobs.fairqueue import FairQueue


def _queue(*items: tuple[str, str]) -> FairQueue[str]:
    q: FairQueue[str] = FairQueue()
    for user, item in items:
        q.push(user, item)
    return q


def test_order_interleaves_users_and_keeps_each_users_fifo() -> None:
    q = _queue(("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"), ("c", "c1"), ("b", "b2"))
    assert q.order() == ["a1", "b1", "c1", "a2", "b2", "a3"]
    assert len(q) == 6
    assert [q.pop() for _ in range(6)] == ["a1", "b1", "c1", "a2", "b2", "a3"]
    assert not q
    assert q.peek() is None
    with pytest.raises(IndexError):
        q.pop()


def test_served_user_goes_to_the_back_and_newcomers_queue_behind_current_turns() -> None:
    q = _queue(("a", "a1"), ("a", "a2"), ("b", "b1"))
    assert q.pop() == "a1"  # a goes behind b
    q.push("c", "c1")  # c takes the last turn, behind a's second job
    assert q.order() == ["b1", "a2", "c1"]


def test_remove_keeps_the_users_turn_and_counts() -> None:
    q = _queue(("a", "a1"), ("a", "a2"), ("b", "b1"))
    assert q.count("a") == 2
    assert q.remove("a", "a1")
    assert q.order() == ["a2", "b1"]  # a has not been served, so keeps the first turn
    assert not q.remove("a", "zz")
    assert not q.remove("nobody", "a2")
    assert q.remove("b", "b1")
    assert q.order() == ["a2"]
    assert q.count("b") == 0
    assert q.clear() == ["a2"]
    assert len(q) == 0
