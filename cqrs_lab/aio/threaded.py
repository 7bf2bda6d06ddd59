"""``ThreadedEventStore``: any sync store of ours behind the asyncio API, one thread per call.

For memory and DuckDB (whose drivers are not asynchronous): each call runs in
``asyncio.to_thread``, so the event loop is never blocked, and a subscription
waits in a thread on the store's commit signal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Self

from cqrs_lab.domain import Event
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.stores.base import RecordEventStore, StoredCommand, StoredSnapshot
from cqrs_lab.subscriptions import POLL_INTERVAL, Subscription

__all__ = ["ThreadedEventStore"]


class _ThreadedSubscription(AsyncIterator[EventEnvelope]):
    """A sync ``Subscription`` iterated in a thread."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription

    @property
    def position(self) -> int:
        return self.subscription.position

    def close(self) -> None:
        self.subscription.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> EventEnvelope:
        envelope = await asyncio.to_thread(next, self.subscription, None)
        if envelope is None:
            raise StopAsyncIteration
        return envelope


class ThreadedEventStore:
    """``store`` (a memory, DuckDB or sync PostgreSQL store) with the asyncio API."""

    def __init__(self, store: RecordEventStore) -> None:
        self.store = store
        self.codec = store.codec

    async def load_stream(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> list[tuple[int, str, Event]]:
        return await asyncio.to_thread(
            self.store.load_stream, aggregate_type, aggregate_id, after_sequence=after_sequence
        )

    async def load_snapshot_and_stream(
        self, aggregate_type: str, aggregate_id: str
    ) -> tuple[StoredSnapshot | None, list[tuple[int, str, Event]]]:
        return await asyncio.to_thread(self.store.load_snapshot_and_stream, aggregate_type, aggregate_id)

    async def load_events(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> list[EventEnvelope]:
        return await asyncio.to_thread(
            self.store.load_events, aggregate_type, aggregate_id, after_sequence=after_sequence
        )

    async def load_command(
        self, aggregate_type: str, aggregate_id: str, command_id: str
    ) -> StoredCommand | None:
        return await asyncio.to_thread(self.store.load_command, aggregate_type, aggregate_id, command_id)

    async def commit(
        self,
        envelopes: Sequence[EventEnvelope],
        *,
        snapshot: StoredSnapshot | None = None,
        command: StoredCommand | None = None,
    ) -> list[EventEnvelope]:
        return await asyncio.to_thread(self.store.commit, envelopes, snapshot=snapshot, command=command)

    async def read_all(
        self, after_position: int = 0, *, batch_size: int = 1000
    ) -> AsyncIterator[EventEnvelope]:
        position = after_position
        while True:
            batch = await asyncio.to_thread(self.store._read_envelopes, position, batch_size)
            for envelope in batch:
                yield envelope
            if len(batch) < batch_size:
                return
            position = batch[-1].position

    @asynccontextmanager
    async def subscribe(
        self,
        after_position: int = 0,
        timeout: float | None = 5.0,
        *,
        poll_interval: float = POLL_INTERVAL,
        batch_size: int = 1000,
    ) -> AsyncIterator[_ThreadedSubscription]:
        """``store.subscribe`` for ``async for``; leaving the block stops the waiting thread."""
        opened = self.store.subscribe(
            after_position, timeout, poll_interval=poll_interval, batch_size=batch_size
        )
        subscription = await asyncio.to_thread(opened.__enter__)
        try:
            yield _ThreadedSubscription(subscription)
        finally:
            await asyncio.to_thread(opened.__exit__, None, None, None)

    async def close(self) -> None:
        await asyncio.to_thread(self.store.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"ThreadedEventStore({self.store!r})"
