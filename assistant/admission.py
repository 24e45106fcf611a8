"""Admission for chat turns: a bounded queue, a few turns running at once, and a per-user rate limit.

At most `server.max_running_turns` turns run at once (one per core by default);
the rest wait their turn, first come first served. Twenty turns sharing two cores
all run slowly, their checks run past their timeouts and are blocked (fail
closed); two at a time each run at full speed. Rather than let a request wait
until a client times out, a turn that would make the queue longer than
`server.max_queued_turns` is refused at once with 429 and a `Retry-After`; so is
a user's turn past `server.user_turns_per_minute`. All of it is in memory, per
server process.
"""
from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Iterator

from core.errors import HelpdeskError


class TooBusy(HelpdeskError):
    """Refused for now: the caller should retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Admission:
    def __init__(self, max_queued: int, per_minute: int, max_running: int | None = None,
                 seconds_per_turn: float = 5.0) -> None:
        self.max_queued = max_queued
        self.per_minute = per_minute
        self.max_running = max_running or os.cpu_count() or 1
        self.seconds_per_turn = seconds_per_turn  # a guess for Retry-After, refined as turns finish
        self._lock = threading.Lock()
        self._slot_free = threading.Condition(self._lock)
        self._in_flight = 0
        self._running = 0
        self._tickets = itertools.count()
        self._waiting: deque[int] = deque()  # tickets of admitted turns waiting to run, oldest first
        self._recent: dict[str, deque[float]] = {}

    @contextmanager
    def turn(self, user: str) -> Iterator[int]:
        """Hold a place for one turn; yields how many turns were ahead of it."""
        now = time.monotonic()
        with self._lock:
            recent = self._recent.setdefault(user, deque())
            while recent and now - recent[0] >= 60:
                recent.popleft()
            if len(recent) >= self.per_minute:
                wait = math.ceil(60 - (now - recent[0]))
                raise TooBusy(f"{user} has sent {self.per_minute} messages in the last minute; "
                              f"try again in {wait} s", wait)
            if self._in_flight >= self.max_queued:
                wait = max(1, math.ceil(self.seconds_per_turn * (self._in_flight - self.max_queued + 1)))
                raise TooBusy(f"the assistant is answering {self._in_flight} turns; try again in {wait} s", wait)
            recent.append(now)
            ahead = self._in_flight
            self._in_flight += 1
            ticket = next(self._tickets)
            self._waiting.append(ticket)
            while self._running >= self.max_running or self._waiting[0] != ticket:
                self._slot_free.wait()
            self._waiting.popleft()
            self._running += 1
            self._slot_free.notify_all()  # the next in line may fit too
        started = time.monotonic()
        try:
            yield ahead
        finally:
            with self._lock:
                self._in_flight -= 1
                self._running -= 1
                self._slot_free.notify_all()
                took = time.monotonic() - started
                self.seconds_per_turn = 0.8 * self.seconds_per_turn + 0.2 * took / self.max_running

    @property
    def in_flight(self) -> int:
        return self._in_flight
