"""A fair queue: round-robin across users, FIFO within a user."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator
from itertools import zip_longest
from typing import Generic, TypeVar

T = TypeVar("T")
_GAP = object()


class FairQueue(Generic[T]):
    """Per-user FIFO lanes served in turn; a user goes to the back of the turn order when served.

    The fair order interleaves the lanes: the first item of every user in turn order, then the
    second item of every user, and so on. ``pop`` takes the head of that order.
    """

    def __init__(self) -> None:
        self._lanes: dict[Hashable, deque[T]] = {}
        self._turns: deque[Hashable] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def push(self, user: Hashable, item: T) -> None:
        """Append an item to the user's lane; a user new to the queue takes the last turn."""
        lane = self._lanes.get(user)
        if lane is None:
            lane = self._lanes[user] = deque()
            self._turns.append(user)
        lane.append(item)
        self._size += 1

    def peek(self) -> T | None:
        """The head of the fair order, or None when empty."""
        if not self._turns:
            return None
        return self._lanes[self._turns[0]][0]

    def pop(self) -> T:
        """Remove and return the head; its user moves to the back of the turn order."""
        if not self._turns:
            raise IndexError("pop from an empty FairQueue")
        user = self._turns.popleft()
        lane = self._lanes[user]
        item = lane.popleft()
        self._size -= 1
        if lane:
            self._turns.append(user)
        else:
            del self._lanes[user]
        return item

    def remove(self, user: Hashable, item: T) -> bool:
        """Remove one item from the user's lane; the user keeps their turn if items remain."""
        lane = self._lanes.get(user)
        if lane is None:
            return False
        try:
            lane.remove(item)
        except ValueError:
            return False
        self._size -= 1
        if not lane:
            del self._lanes[user]
            self._turns.remove(user)
        return True

    def count(self, user: Hashable) -> int:
        """How many items the user has queued."""
        lane = self._lanes.get(user)
        return len(lane) if lane else 0

    def order(self) -> list[T]:
        """Every item in the order it would be served if nothing else arrived."""
        lanes = [self._lanes[user] for user in self._turns]
        return [
            item for rnd in zip_longest(*lanes, fillvalue=_GAP) for item in rnd if item is not _GAP
        ]  # type: ignore[misc]

    def __iter__(self) -> Iterator[T]:
        return iter(self.order())

    def clear(self) -> list[T]:
        """Empty the queue; return the items in fair order."""
        items = self.order()
        self._lanes.clear()
        self._turns.clear()
        self._size = 0
        return items
