"""A waiting line for the one model: first come, first served, and each waiter knows its place.

The local model writes one answer at a time. A plain lock would serve waiters in no
particular order and could not tell an agent how many answers are ahead of theirs; this
line does both. A place that is given up before its turn (the agent closed the tab) is
skipped.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class WaitingLine:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._issued = 0  # the next place number to hand out
        self._serving = 0  # the place whose turn it is
        self._gone: set[int] = set()  # places given up before their turn

    def join(self) -> Place:
        with self._cond:
            place = Place(self, self._issued)
            self._issued += 1
            return place

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Join, wait for the turn, hold it for the block."""
        place = self.join()
        try:
            place.wait()
            yield
        finally:
            place.leave()

    def busy(self) -> bool:
        with self._cond:
            return self._serving < self._issued

    def _advance(self) -> None:
        self._serving += 1
        while self._serving in self._gone:
            self._gone.discard(self._serving)
            self._serving += 1
        self._cond.notify_all()


class Place:
    def __init__(self, line: WaitingLine, number: int) -> None:
        self._line = line
        self.number = number
        self._left = False

    def ahead(self) -> int:
        """How many places are served before this one (0: its turn)."""
        line = self._line
        with line._cond:
            return sum(1 for n in range(line._serving, self.number) if n not in line._gone)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds (None: as long as it takes); True once it is this place's turn."""
        line = self._line
        with line._cond:
            return line._cond.wait_for(lambda: line._serving == self.number, timeout)

    def leave(self) -> None:
        """Done, or given up: the next place's turn comes. Safe to call twice."""
        line = self._line
        with line._cond:
            if self._left:
                return
            self._left = True
            if line._serving == self.number:
                line._advance()
            else:
                line._gone.add(self.number)
