"""``AsyncSubscription``: ``store.subscribe`` for asyncio (``async for envelope in events``)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Self

from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.subscriptions import POLL_INTERVAL, check_subscription_arguments

__all__ = ["AsyncSubscription"]

AsyncReadBatch = Callable[[int, int], Awaitable[Sequence[EventEnvelope]]]
"""``await read(after_position, limit)``: up to ``limit`` envelopes after the position, in order."""
AsyncWait = Callable[[float], Awaitable[None]]
"""``await wait(seconds)``: returns on a wake-up (a commit may have happened) or after ``seconds``."""


class AsyncSubscription(AsyncIterator[EventEnvelope]):
    """The envelopes after ``after_position``, then every new one as it is committed.

    The asyncio twin of ``cqrs_lab.subscriptions.Subscription``: same order,
    same never-skip, never-twice reading, same ``timeout`` (seconds without a
    new event; ``None``: never). ``close()`` (or leaving ``async with``) stops
    it; a task waiting in it at that moment returns at its next wake-up.
    """

    def __init__(
        self,
        read: AsyncReadBatch,
        wait: AsyncWait,
        *,
        after_position: int = 0,
        timeout: float | None = 5.0,
        poll_interval: float = POLL_INTERVAL,
        batch_size: int = 1000,
    ) -> None:
        check_subscription_arguments(after_position, timeout, poll_interval, batch_size)
        self._read = read
        self._wait = wait
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
        self._closed = True

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> EventEnvelope:
        deadline: float | None = None
        while not self._closed:
            if self._buffer:
                envelope = self._buffer.popleft()
                self.position = envelope.position
                return envelope
            batch = await self._read(self._read_up_to, self.batch_size)
            if batch:
                self._buffer.extend(batch)
                self._read_up_to = batch[-1].position
                continue
            now = time.monotonic()
            if deadline is None and self.timeout is not None:
                deadline = now + self.timeout
            if deadline is not None and now >= deadline:
                break
            await self._wait(
                self.poll_interval if deadline is None else min(self.poll_interval, deadline - now)
            )
        raise StopAsyncIteration

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"AsyncSubscription(position={self.position}, timeout={self.timeout}, {state})"
