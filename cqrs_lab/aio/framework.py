"""``AsyncCqrsFramework``: load → handle → commit → dispatch, awaiting the store.

Handling a command, its metadata and envelopes, its snapshot and its command
record are the sync ``CqrsFramework``'s own steps: only the store calls and the
dispatch are awaited. Sync stores are adapted with threads (``ThreadedEventStore``); sync
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
from cqrs_lab.errors import ConcurrencyError, DispatchError, UserError
from cqrs_lab.framework import CqrsFramework, SnapshotIgnoredWarning, _dispatcher_name, _replay_stream
from cqrs_lab.stores.base import EventStore, RecordEventStore, StoredCommand, StoredSnapshot

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
        self,
        envelopes: Sequence[EventEnvelope],
        *,
        snapshot: StoredSnapshot | None = None,
        command: StoredCommand | None = None,
    ) -> list[EventEnvelope]: ...

    async def load_command(
        self, aggregate_type: str, aggregate_id: str, command_id: str
    ) -> StoredCommand | None: ...

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
    for ``CqrsFramework``, and so does ``execute(..., command_id=...)``; there is no
    aggregate cache (every load reads the store).
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
        aggregate, last = _replay_stream(self.aggregate_cls, aggregate_id, stream, start)
        if last is not None:
            version = last[0]
        return AggregateContext(aggregate_id=aggregate_id, version=version, payload=aggregate)

    async def load(self, aggregate_id: str) -> A:
        """The current state of one aggregate."""
        return (await self.load_context(aggregate_id)).payload

    async def events(self, aggregate_id: str) -> list[EventEnvelope]:
        """Every committed event of one aggregate."""
        return await self.event_store.load_events(self.aggregate_type, aggregate_id)

    # -- commands ----------------------------------------------------------
    async def execute(
        self, aggregate_id: str, command: Command, command_id: str | None = None
    ) -> list[EventEnvelope]:
        """Handle ``command`` on the aggregate; returns the committed envelopes.

        With ``command_id``, the command runs at most once on this aggregate, as with
        ``CqrsFramework.execute``: a repeat returns the events committed the first time
        and does nothing else (``DuplicateCommandError`` if the id named another command).
        """
        return await self.execute_with_metadata(aggregate_id, command, {}, command_id)

    async def execute_with_metadata(
        self,
        aggregate_id: str,
        command: Command,
        metadata: Mapping[str, str],
        command_id: str | None = None,
    ) -> list[EventEnvelope]:
        """Like ``execute``; ``metadata`` lands on every event (as ``CqrsFramework`` does it)."""
        if command_id is None:
            return await self._execute(aggregate_id, command, metadata, self._core.ids(), once=False)
        earlier = await self._committed(aggregate_id, command, command_id)
        if earlier is not None:
            return earlier
        # A twin task or process may commit the id between the lookup above and the load:
        # then this one is rejected or decides nothing, and returns the twin's events.
        try:
            committed = await self._execute(aggregate_id, command, metadata, command_id, once=True)
        except UserError:
            earlier = await self._committed(aggregate_id, command, command_id)
            if earlier is not None:
                return earlier
            raise
        if not committed:
            earlier = await self._committed(aggregate_id, command, command_id)
            if earlier is not None:
                return earlier
        return committed

    async def _execute(
        self, aggregate_id: str, command: Command, metadata: Mapping[str, str], command_id: str, *, once: bool
    ) -> list[EventEnvelope]:
        """Load, handle, commit (with the command's id when ``once``), dispatch."""
        core = self._core
        meta = core._metadata(command, metadata, command_id)
        attempt = 0
        while True:
            context = await self.load_context(aggregate_id)
            events = core._handle(context, command)
            if not events:
                return []
            envelopes = core._envelopes(context, events, meta)
            snapshot = core._snapshot(context, envelopes)
            try:
                if once:
                    record = core._command_record(aggregate_id, command, command_id, envelopes)
                    committed = await self.event_store.commit(envelopes, snapshot=snapshot, command=record)
                else:
                    committed = await self.event_store.commit(envelopes, snapshot=snapshot)
            except ConcurrencyError:
                if once:
                    earlier = await self._committed(aggregate_id, command, command_id)
                    if earlier is not None:
                        return earlier  # the same command won a race, or was committed meanwhile
                if attempt >= core.retries:
                    raise
                attempt += 1
                continue
            await self._dispatch(aggregate_id, committed)
            return committed

    async def _committed(
        self, aggregate_id: str, command: Command, command_id: str
    ) -> list[EventEnvelope] | None:
        """The envelopes committed under ``command_id`` on the aggregate, if it was used
        (``DuplicateCommandError`` when it was used by a different command)."""
        stored = await self.event_store.load_command(self.aggregate_type, aggregate_id, command_id)
        if stored is None:
            return None
        self._core._same_command(stored, command)
        after = stored.first_sequence - 1
        return stored.of(
            await self.event_store.load_events(self.aggregate_type, aggregate_id, after_sequence=after)
        )

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
