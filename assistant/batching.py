"""Generation calls from several threads gathered into one batched generation.

The evaluation gate answers the same items with two adapters. Run as two threads that
share a `BatchWindow`, each item's two answers are decoded together, one batch of two
rows (`LocalGenerator.stream_batch`), instead of one after the other: on a CPU decoding is
bound by reading the weights, so the second row costs little.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator, Sequence

from finetune.registry import AdapterRef


class BatchWindow:
    """A `Generator` for `parties` threads: a call waits until every party still working has
    one waiting, or `wait_s` has passed, and then they all go to the model as one batch."""

    def __init__(self, generator, parties: int, wait_s: float = 2.0) -> None:
        self.generator = generator
        self.model_name = generator.model_name
        self.parties = parties
        self.wait_s = wait_s
        self._cond = threading.Condition()
        self._pending: list[dict] = []

    def stream(self, messages: Sequence[dict], served: dict | None = None,
               adapter: AdapterRef | None = None) -> Iterator[str]:
        slot = {"request": (messages, adapter), "served": served if served is not None else {}, "text": None}
        with self._cond:
            self._pending.append(slot)
            deadline = time.monotonic() + self.wait_s
            while slot["text"] is None and len(self._pending) < self.parties:
                if not self._cond.wait(max(0.0, deadline - time.monotonic())):
                    break
            if slot["text"] is None:
                self._flush()
        yield from slot["text"]

    def leave(self) -> None:
        """A party has no more calls to make: the others stop waiting for it."""
        with self._cond:
            self.parties -= 1
            if self._pending and len(self._pending) >= self.parties:
                self._flush()

    def _flush(self) -> None:
        """Send what waits as one batch (under the lock); wakes the waiters."""
        batch, self._pending = self._pending, []
        try:
            texts = self.generator.stream_batch([s["request"] for s in batch], [s["served"] for s in batch])
        except BaseException as exc:
            texts = [_raise(exc) for _ in batch]
        for slot, text in zip(batch, texts):
            slot["text"] = text
        self._cond.notify_all()


def _raise(exc: BaseException) -> Iterator[str]:
    raise exc
    yield  # a generator: the error reaches each reader when it reads
