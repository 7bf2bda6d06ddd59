"""``AsyncCqrsFramework``: load → handle → commit → dispatch, awaiting the store.

Handling a command and building a snapshot are the sync ``CqrsFramework``'s own
steps (``_handle``, ``_snapshot``): only the store calls and the dispatch are
awaited. Sync stores are adapted with threads (``ThreadedEventStore``); sync
dispatchers (``QueryProcessor``, ...) run in a thread, dispatchers whose
``dispatch`` is a coroutine function are awaited.
"""

from __future__ import annotations

import asyncio
import inspect
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable

from pydantic import ValidationError

from cqrs_lab.aio.threaded import ThreadedEventStore
from cqrs_lab.codec import EventCodec
from cqrs_lab.domain import Aggregate, Command, Event
from cqrs_lab.envelope import AggregateContext, Clock, EventEnvelope, IdSource
from cqrs_lab.errors import ConcurrencyError, DispatchError
from cqrs_lab.framework import CqrsFramework, SnapshotIgnoredWarning, _dispatcher_name, _replay_stream
from cqrs_lab.stores.base import EventStore, RecordEventStore, StoredSnapshot

__all__ = ["AsyncCqrsFramework", "AsyncEventStore"]

A = TypeVar("A", bound=Aggregate)


@runtime_checkable
class AsyncEventStore(Protocol):
    """What ``AsyncCqrsFramework`` needs of a store (``AsyncPostgresEventStore``, ``ThreadedEventStore``)."""

    codec: EventCodec

    async def load_stream(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> list[tuple[int, str, Event]]: ...

    async def load_snapshot_and_stream(
        self, aggregate_type: str, aggregate_id: str
    ) -> tuple[StoredSnapshot | None, list[tuple[int, str, Event]]]: ...

    async def load_events(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> list[EventEnvelope]: ...

    async def commit(
        self, envelopes: Sequence[EventEnvelope], *, snapshot: StoredSnapshot | None = None
    ) -> list[EventEnvelope]: ...

    def read_all(
        self, after_position: int = 0, *, batch_size: int = 1000
    ) -> AsyncIterator[EventEnvelope]: ...

    def subscribe(
        self, after_position: int = 0, timeout: float | None = 5.0
    ) -> AbstractAsyncContextManager[AsyncIterator[EventEnvelope]]: ...

    async def close(self) -> None: ...


class AsyncCqrsFramework(Generic[A]):
    """``CqrsFramework`` for asyncio: ``await bank.execute(aggregate_id, command)``.

    ``event_store`` is an ``AsyncPostgresEventStore`` (native asyncio) or any
    sync store of ours (memory, DuckDB, PostgreSQL), which is run in threads.
    ``retries``, ``clock``, ``ids`` and ``snapshot_every`` mean what they mean
    for ``CqrsFramework``; there is no aggregate cache (every load reads the store).
    """

    def __init__(
        self,
        aggregate_cls: type[A],
        event_store: AsyncEventStore | RecordEventStore,
        dispatchers: Sequence[Any] = (),
        *,
        retries: int = 0,
        clock: Clock | None = None,
        ids: IdSource | None = None,
        snapshot_every: int | None = None,
    ) -> None:
        store = ThreadedEventStore(event_store) if isinstance(event_store, RecordEventStore) else event_store
        self.event_store: AsyncEventStore = store
        self.dispatchers = list(dispatchers)
        # The sync framework's pure steps (handle, snapshot); it never calls the store.
        self._core = CqrsFramework(
            aggregate_cls,
            cast(EventStore, store),
            retries=retries,
            clock=clock,
            ids=ids,
            snapshot_every=snapshot_every,
            cache_size=0,
        )

    @property
    def aggregate_cls(self) -> type[A]:
        return self._core.aggregate_cls

    @property
    def aggregate_type(self) -> str:
        return self._core.aggregate_type

    # -- loading -----------------------------------------------------------
    async def load_context(self, aggregate_id: str) -> AggregateContext[A]:
        """The aggregate with its version: the latest snapshot (if enabled) plus later events."""
        core = self._core
        start: A | None = None
        version = 0
        if core.snapshot_every is None:
            stream = await self.event_store.load_stream(self.aggregate_type, aggregate_id)
        else:
            snapshot, stream = await self.event_store.load_snapshot_and_stream(
                self.aggregate_type, aggregate_id
            )
            if snapshot is not None:
                try:
                    start = self.aggregate_cls.model_validate_json(snapshot.payload)
                    version = snapshot.version
                except ValidationError as exc:
                    warnings.warn(
                        f"snapshot of {self.aggregate_type}/{aggregate_id} at version "
                        f"{snapshot.version} no longer decodes as {self.aggregate_cls.__qualname__} "
                        f"({exc.error_count()} error(s)); rebuilding from events. It is replaced at "
                        "the next snapshot.",
                        SnapshotIgnoredWarning,
                        stacklevel=2,
                    )
                    stream = await self.event_store.load_stream(self.aggregate_type, aggregate_id)
        aggregate = _replay_stream(self.aggregate_cls, aggregate_id, stream, start)
        if stream:
            version = stream[-1][0]
        return AggregateContext(aggregate_id=aggregate_id, version=version, payload=aggregate)

    async def load(self, aggregate_id: str) -> A:
        """The current state of one aggregate."""
        return (await self.load_context(aggregate_id)).payload

    async def events(self, aggregate_id: str) -> list[EventEnvelope]:
        """Every committed event of one aggregate."""
        return await self.event_store.load_events(self.aggregate_type, aggregate_id)

    # -- commands ----------------------------------------------------------
    async def execute(self, aggregate_id: str, command: Command) -> list[EventEnvelope]:
        """Handle ``command`` on the aggregate; returns the committed envelopes."""
        return await self.execute_with_metadata(aggregate_id, command, {})

    async def execute_with_metadata(
        self, aggregate_id: str, command: Command, metadata: Mapping[str, str]
    ) -> list[EventEnvelope]:
        """Like ``execute``; ``metadata`` lands on every event (as ``CqrsFramework`` does it)."""
        core = self._core
        command_id = core.ids()
        meta = {str(k): str(v) for k, v in metadata.items()}
        meta["command_id"] = command_id
        meta["command_type"] = type(command).__name__
        meta.setdefault("correlation_id", command_id)
        meta.setdefault("causation_id", command_id)
        attempt = 0
        while True:
            context = await self.load_context(aggregate_id)
            events = core._handle(context, command)
            if not events:
                return []
            envelopes = [
                EventEnvelope(
                    aggregate_type=self.aggregate_type,
                    aggregate_id=aggregate_id,
                    sequence=context.version + i,
                    payload=event,
                    metadata=meta,
                    recorded_at=core.clock(),
                    event_id=core.ids(),
                )
                for i, event in enumerate(events, start=1)
            ]
            try:
                committed = await self.event_store.commit(
                    envelopes, snapshot=core._snapshot(context, envelopes)
                )
            except ConcurrencyError:
                if attempt >= core.retries:
                    raise
                attempt += 1
                continue
            await self._dispatch(aggregate_id, committed)
            return committed

    async def _dispatch(self, aggregate_id: str, committed: list[EventEnvelope]) -> None:
        failures: list[tuple[str, BaseException]] = []
        for dispatcher in self.dispatchers:
            try:
                if inspect.iscoroutinefunction(dispatcher.dispatch):
                    await dispatcher.dispatch(aggregate_id, committed)
                else:
                    await asyncio.to_thread(dispatcher.dispatch, aggregate_id, committed)
            except Exception as exc:
                failures.append((_dispatcher_name(dispatcher), exc))
        if failures:
            raise DispatchError(committed, failures)

    def __repr__(self) -> str:
        return (
            f"AsyncCqrsFramework({self.aggregate_cls.__qualname__}, {self.event_store!r}, "
            f"dispatchers={[_dispatcher_name(d) for d in self.dispatchers]})"
        )
