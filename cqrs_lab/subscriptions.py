"""Live subscriptions: ``store.subscribe(...)`` and what wakes a waiting reader.

A ``Subscription`` reads the global log after a position, in position order,
and when it has read everything it waits for a wake-up instead of polling hard:

- memory and DuckDB: a commit in this process fires the store's ``Signal``;
- PostgreSQL: each commit sends ``NOTIFY cqrs_lab_events`` from its own
  transaction, and one listening connection per store and process fires the
  ``Signal`` when a notification for the store's schema arrives.

Whatever wakes it (or nothing), a waiting reader re-reads the log at least
every ``POLL_INTERVAL`` seconds, so a lost notification (a dropped listening
connection, rows written with plain SQL) delays an event by that much at most
and never stalls a reader. Reading is always ``position > last ORDER BY
position``, and the stores make positions visible in order, so a subscription
never skips an event and never yields one twice.

This module depends only on the envelope and error layers, so the stores
(which offer ``subscribe``) can use it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Self

from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import ConfigurationError

__all__ = ["POLL_INTERVAL", "Signal", "Subscription", "check_subscription_arguments", "check_wait_arguments"]

POLL_INTERVAL = 1.0
"""Seconds between re-reads of a waiting reader when no wake-up comes (the fallback)."""

ReadBatch = Callable[[int, int], Sequence[EventEnvelope]]
"""``read(after_position, limit)``: up to ``limit`` envelopes after the position, in order."""


def check_wait_arguments(timeout: float | None, poll_interval: float) -> None:
    """Refuse a negative timeout or a poll interval that is not positive."""
    if timeout is not None and timeout < 0:
        raise ConfigurationError(f"timeout must be 0 or more seconds (or None: forever), not {timeout}")
    if poll_interval <= 0:
        raise ConfigurationError(f"poll_interval must be a positive number of seconds, not {poll_interval}")


def check_subscription_arguments(
    after_position: int, timeout: float | None, poll_interval: float, batch_size: int
) -> None:
    """Refuse arguments ``subscribe`` cannot work with, saying which."""
    check_wait_arguments(timeout, poll_interval)
    if after_position < 0:
        raise ConfigurationError(f"after_position must be 0 or more, not {after_position}")
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be 1 or more, not {batch_size}")


class Signal:
    """A counter that wakes its waiters when it moves: "something was committed".

    A waiter reads ``count`` *before* it looks at the data, then calls
    ``wait(seen, timeout)``: a commit between the look and the wait has already
    moved the counter, so ``wait`` returns at once and nothing is missed.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._count = 0

    @property
    def count(self) -> int:
        with self._changed:
            return self._count

    def fire(self) -> None:
        """Move the counter and wake every waiter (from any thread)."""
        with self._changed:
            self._count += 1
            self._changed.notify_all()

    def wait(self, seen: int, timeout: float | None) -> bool:
        """Block until the counter is no longer ``seen`` or ``timeout`` passes; True if it moved."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count != seen, timeout)


class Subscription(Iterator[EventEnvelope]):
    """The envelopes after ``after_position``, then every new one as it is committed.

    Iteration ends when nothing new came for ``timeout`` seconds (``None``:
    never) or when ``close()`` is called, from any thread. ``position`` is the
    position of the last envelope yielded.
    """

    def __init__(
        self,
        read: ReadBatch,
        signal: Signal,
        *,
        after_position: int = 0,
        timeout: float | None = 5.0,
        poll_interval: float = POLL_INTERVAL,
        batch_size: int = 1000,
    ) -> None:
        check_subscription_arguments(after_position, timeout, poll_interval, batch_size)
        self._read = read
        self._signal = signal
        self.position = after_position
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self._buffer: deque[EventEnvelope] = deque()
        self._read_up_to = after_position
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the subscription; a thread blocked in ``next()`` returns at once."""
        self._closed = True
        self._signal.fire()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> EventEnvelope:
        deadline: float | None = None
        while not self._closed:
            if self._buffer:
                envelope = self._buffer.popleft()
                self.position = envelope.position
                return envelope
            seen = self._signal.count  # before reading: a commit after this wakes the wait below
            batch = self._read(self._read_up_to, self.batch_size)
            if batch:
                self._buffer.extend(batch)
                self._read_up_to = batch[-1].position
                continue
            now = time.monotonic()
            if deadline is None and self.timeout is not None:
                deadline = now + self.timeout
            if deadline is not None and now >= deadline:
                break
            wait = self.poll_interval if deadline is None else min(self.poll_interval, deadline - now)
            self._signal.wait(seen, wait)
        raise StopIteration

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"Subscription(position={self.position}, timeout={self.timeout}, {state})"
