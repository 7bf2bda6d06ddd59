"""``CqrsFramework``: load → handle → commit → dispatch; snapshots; ``QueryProcessor``."""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, overload, runtime_checkable

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from cqrs_lab.domain import Aggregate, AggregateSource, Command, Event, Query, aggregate_class
from cqrs_lab.envelope import (
    AggregateContext,
    Clock,
    EventEnvelope,
    IdSource,
    system_clock,
    uuid4_ids,
)
from cqrs_lab.errors import (
    AggregateError,
    ConcurrencyError,
    ConfigurationError,
    DispatchError,
    DuplicateCommandError,
    TechnicalError,
    UserError,
)
from cqrs_lab.stores.base import (
    EventStore,
    IdempotentEventStore,
    QueryStore,
    RecordEventStore,
    StoredCommand,
    StoredSnapshot,
)

__all__ = [
    "CqrsFramework",
    "EventDispatcher",
    "QueryProcessor",
    "SnapshotIgnoredWarning",
    "replay",
]

A = TypeVar("A", bound=Aggregate)
Q = TypeVar("Q", bound=Query)


class SnapshotIgnoredWarning(UserWarning):
    """A stored snapshot no longer decodes (the aggregate was rebuilt from its events),
    or a state could not be written as a snapshot (the commit went ahead without it)."""


@runtime_checkable
class EventDispatcher(Protocol):
    """Receives a command's committed events (the seed's ``IEventDispatcher``)."""

    def dispatch(self, aggregate_id: str, envelopes: Sequence[EventEnvelope]) -> None: ...


def replay(aggregate_cls: type[A], envelopes: Sequence[EventEnvelope], start: A | None = None) -> A:
    """Apply ``envelopes`` in order to ``start`` (default: a fresh aggregate); returns it."""
    aggregate = aggregate_cls() if start is None else start
    for envelope in envelopes:
        try:
            aggregate.apply(envelope.payload)
        except Exception as exc:
            raise _apply_failed(
                aggregate_cls,
                envelope.payload,
                envelope.aggregate_type,
                envelope.aggregate_id,
                envelope.sequence,
                exc,
            ) from exc
    return aggregate


def _replay_stream(
    aggregate_cls: type[A],
    aggregate_id: str,
    stream: Iterable[tuple[int, str, Event]],
    start: A | None = None,
) -> tuple[A, tuple[int, str] | None]:
    """``replay`` for the ``(sequence, event_id, event)`` rows of ``RecordEventStore.load_stream``
    (or ``iter_stream``); the aggregate, and the last row's (sequence, event_id) if any."""
    aggregate = aggregate_cls() if start is None else start
    apply = aggregate.apply
    last = None
    for last in stream:
        try:
            apply(last[2])
        except Exception as exc:
            raise _apply_failed(
                aggregate_cls, last[2], aggregate_cls.aggregate_type, aggregate_id, last[0], exc
            ) from exc
    return aggregate, None if last is None else (last[0], last[1])


def _apply_failed(
    aggregate_cls: type[Aggregate],
    event: Event,
    aggregate_type: str,
    aggregate_id: str,
    sequence: int,
    exc: Exception,
) -> TechnicalError:
    return TechnicalError(
        f"{aggregate_cls.__qualname__}.apply failed on {event.event_type} "
        f"({aggregate_type}/{aggregate_id} sequence {sequence}): {exc!r}. "
        "apply() must accept every stored event."
    )


@dataclass(slots=True)
class _Cached(Generic[A]):
    """An aggregate's state after the event ``event_id`` at sequence ``version``.

    ``state`` is never handed out (callers get deep copies), so nothing but the
    cache changes it, and only while the entry is taken out of the cache.
    """

    version: int
    event_id: str
    state: A


class _AggregateCache(Generic[A]):
    """The latest known state of up to ``size`` aggregates (least recently used go first).

    An entry is *taken* (removed) by whoever updates its state and *put* back
    after, so two threads never change one state object; a thread that finds
    nothing simply loads from the store.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, _Cached[A]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, aggregate_id: str) -> _Cached[A] | None:
        with self._lock:
            return self._entries.pop(aggregate_id, None)

    def put(self, aggregate_id: str, entry: _Cached[A]) -> None:
        with self._lock:
            current = self._entries.get(aggregate_id)
            if current is not None and current.version >= entry.version:
                return
            self._entries[aggregate_id] = entry
            self._entries.move_to_end(aggregate_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def _dispatcher_name(dispatcher: object) -> str:
    return str(getattr(dispatcher, "name", None) or type(dispatcher).__name__)


class CqrsFramework(Generic[A]):
    """Applies commands to aggregates of one class, or of a ``Decider`` (the seed's ``CqrsFramework``).

    With a ``Decider``, ``load`` returns its state; ``aggregate_cls`` is the
    aggregate class that runs it.

    ``retries`` reloads and re-handles a command that lost a race up to that many
    times. ``snapshot_every=N`` stores the aggregate's state with the commit that
    crosses each multiple of N events, and loads from the latest snapshot.
    ``clock`` and ``ids`` make runs repeatable (``FixedClock``, ``SequentialIds``).

    ``cache_size`` keeps the state of that many recently used aggregates in
    memory (0 turns the cache off). A cached aggregate is still checked against
    the store on every load: when the store knows without a query that the
    stream still ends with the event the state was built from
    (``RecordEventStore.stream_head``: the memory store, and a writable DuckDB
    database, whose only writer is this process), nothing is read; otherwise
    one query fetches the stream from the cached version on, and the cached
    state is used only if the event stored at that version is the one it was
    built from; newer events (from other processes too) are applied to it, and
    anything else means a full reload. Committed events are applied to the
    cache as the store's codec decodes them, so the cached state is the state a
    reload would give. Callers (and ``handle``) always get a copy.

    ``execute(..., command_id=...)`` makes a command idempotent: the store keeps the
    id with the command's events, and a repeat returns those events.
    """

    @overload
    def __init__(
        self: CqrsFramework[A],
        aggregate_cls: type[A],
        event_store: EventStore,
        dispatchers: Sequence[EventDispatcher] = (),
        *,
        retries: int = 0,
        clock: Clock | None = None,
        ids: IdSource | None = None,
        snapshot_every: int | None = None,
        cache_size: int = 256,
    ) -> None: ...

    @overload
    def __init__(
        self: CqrsFramework[Any],
        aggregate_cls: AggregateSource,
        event_store: EventStore,
        dispatchers: Sequence[EventDispatcher] = (),
        *,
        retries: int = 0,
        clock: Clock | None = None,
        ids: IdSource | None = None,
        snapshot_every: int | None = None,
        cache_size: int = 256,
    ) -> None: ...

    def __init__(
        self,
        aggregate_cls: type[A] | AggregateSource,
        event_store: EventStore,
        dispatchers: Sequence[EventDispatcher] = (),
        *,
        retries: int = 0,
        clock: Clock | None = None,
        ids: IdSource | None = None,
        snapshot_every: int | None = None,
        cache_size: int = 256,
    ) -> None:
        if retries < 0:
            raise ConfigurationError(f"retries must be 0 or more, not {retries}")
        if snapshot_every is not None and snapshot_every < 1:
            raise ConfigurationError(f"snapshot_every must be 1 or more (or None), not {snapshot_every}")
        if cache_size < 0:
            raise ConfigurationError(f"cache_size must be 0 (no cache) or more, not {cache_size}")
        self.aggregate_cls: type[A] = aggregate_class(aggregate_cls)  # type: ignore[assignment]
        self.decider = None if isinstance(aggregate_cls, type) else aggregate_cls
        """The ``Decider`` given instead of an aggregate class, else None."""
        self.event_store = event_store
        self.dispatchers = list(dispatchers)
        self.retries = retries
        self.clock: Clock = clock or system_clock
        self.ids: IdSource = ids or uuid4_ids
        self.snapshot_every = snapshot_every
        self.cache: _AggregateCache[A] | None = _AggregateCache(cache_size) if cache_size else None

    @property
    def aggregate_type(self) -> str:
        return self.aggregate_cls.aggregate_type

    # -- loading -----------------------------------------------------------
    def load_context(self, aggregate_id: str) -> AggregateContext[A]:
        """The aggregate with its version: from the cache, or the latest snapshot (if
        enabled) plus later events. The payload is the caller's own copy."""
        cache = self.cache
        if cache is not None:
            entry = cache.take(aggregate_id)
            if entry is not None:
                context = self._load_cached(aggregate_id, entry, cache)
                if context is not None:
                    return context
        context, last_event_id = self._load_stored(aggregate_id)
        if cache is not None and last_event_id is not None:
            state = context.payload.model_copy(deep=True)
            cache.put(aggregate_id, _Cached(context.version, last_event_id, state))
        return context

    def _load_cached(
        self, aggregate_id: str, entry: _Cached[A], cache: _AggregateCache[A]
    ) -> AggregateContext[A] | None:
        """The cached state brought up to date (``entry`` is taken out), or None when stale."""
        store = self.event_store
        head = None
        if isinstance(store, RecordEventStore):
            head = store.stream_head(self.aggregate_type, aggregate_id)
        if head == (entry.version, entry.event_id):
            # The store knows, without a query, that the stream still ends where the state does.
            cache.put(aggregate_id, entry)
            return AggregateContext(aggregate_id, entry.version, entry.state.model_copy(deep=True))
        stream = list(self._stream(aggregate_id, entry.version - 1))  # the tail after the cached state
        if not stream or stream[0][0] != entry.version or stream[0][1] != entry.event_id:
            return None  # the stream is not the one the state was built from
        if len(stream) > 1:
            # If apply() fails, the exception propagates and the taken entry is dropped.
            _replay_stream(self.aggregate_cls, aggregate_id, stream[1:], entry.state)
            entry = _Cached(stream[-1][0], stream[-1][1], entry.state)
        cache.put(aggregate_id, entry)
        return AggregateContext(aggregate_id, entry.version, entry.state.model_copy(deep=True))

    def _load_stored(self, aggregate_id: str) -> tuple[AggregateContext[A], str | None]:
        """Snapshot plus events, and the id of the last event applied (None if unknown)."""
        start: A | None = None
        version = 0
        stream: Iterable[tuple[int, str, Event]] | None = None
        if self.snapshot_every is not None:
            store = self.event_store
            if isinstance(store, RecordEventStore):  # one round trip for both
                snapshot, stream = store.load_snapshot_and_stream(self.aggregate_type, aggregate_id)
            else:
                snapshot = store.load_snapshot(self.aggregate_type, aggregate_id)
            if snapshot is not None:
                try:
                    start = self.aggregate_cls.model_validate_json(snapshot.payload)
                    version = snapshot.version
                except ValidationError as exc:
                    stream = None  # read again from the start
                    warnings.warn(
                        f"snapshot of {self.aggregate_type}/{aggregate_id} at version "
                        f"{snapshot.version} no longer decodes as "
                        f"{self.aggregate_cls.__qualname__} ({exc.error_count()} error(s)); "
                        "rebuilding from events. It is replaced at the next snapshot.",
                        SnapshotIgnoredWarning,
                        stacklevel=4,
                    )
        if stream is None:
            stream = self._stream(aggregate_id, version)
        aggregate, last = _replay_stream(self.aggregate_cls, aggregate_id, stream, start)
        last_event_id = None
        if last is not None:
            version, last_event_id = last
        return AggregateContext(aggregate_id=aggregate_id, version=version, payload=aggregate), last_event_id

    def _stream(self, aggregate_id: str, after_sequence: int) -> Iterable[tuple[int, str, Event]]:
        """``(sequence, event_id, event)`` after ``after_sequence``: without envelopes on our
        stores, each event decoded as it is asked for (so an applied event is freed)."""
        store = self.event_store
        if isinstance(store, RecordEventStore):
            return store.iter_stream(self.aggregate_type, aggregate_id, after_sequence=after_sequence)
        envelopes = store.load_events(self.aggregate_type, aggregate_id, after_sequence=after_sequence)
        return [(e.sequence, e.event_id, e.payload) for e in envelopes]

    def load(self, aggregate_id: str) -> A:
        """The current state of one aggregate (a ``Decider``'s state, for a decider)."""
        aggregate = self.load_context(aggregate_id).payload
        return aggregate if self.decider is None else self.decider.state_of(aggregate)

    def events(self, aggregate_id: str) -> list[EventEnvelope]:
        """Every committed event of one aggregate."""
        return self.event_store.load_events(self.aggregate_type, aggregate_id)

    # -- commands ----------------------------------------------------------
    def execute(
        self, aggregate_id: str, command: Command, command_id: str | None = None
    ) -> list[EventEnvelope]:
        """Handle ``command`` on the aggregate; returns the committed envelopes.

        With ``command_id``, the command runs at most once on this aggregate: when
        the id is already committed, the events committed then are returned and
        nothing is handled, committed or dispatched (``DuplicateCommandError`` if
        the id was used by a different command).
        """
        return self.execute_with_metadata(aggregate_id, command, {}, command_id)

    def execute_with_metadata(
        self,
        aggregate_id: str,
        command: Command,
        metadata: Mapping[str, str],
        command_id: str | None = None,
    ) -> list[EventEnvelope]:
        """Like ``execute``; ``metadata`` lands on every event of the command.

        Each command gets a ``command_id`` (the one given, else a new id) and
        ``command_type`` (its class name) in the metadata; its events carry
        ``correlation_id`` and ``causation_id`` (both the command id unless the
        caller passes them, e.g. with ``caused_by(envelope)``).
        """
        if command_id is not None:
            return self._execute_once(aggregate_id, command, metadata, command_id)
        return self._execute(aggregate_id, command, metadata, self.ids(), None)

    def _execute(
        self,
        aggregate_id: str,
        command: Command,
        metadata: Mapping[str, str],
        command_id: str,
        store: IdempotentEventStore | None,
    ) -> list[EventEnvelope]:
        """Load, handle, commit (with the command's row when ``store`` is given), dispatch."""
        meta = self._metadata(command, metadata, command_id)
        attempt = 0
        while True:
            context = self.load_context(aggregate_id)
            events = self._handle(context, command)
            if not events:
                return []
            envelopes = self._envelopes(context, events, meta)
            try:
                snapshot = self._snapshot(context, envelopes)
                if store is None:
                    committed = self.event_store.commit(envelopes, snapshot=snapshot)
                else:
                    record = self._command_record(aggregate_id, command, command_id, envelopes)
                    committed = store.commit(envelopes, snapshot=snapshot, command=record)
            except ConcurrencyError:
                if store is not None:
                    earlier = self._committed(store, aggregate_id, command, command_id)
                    if earlier is not None:
                        return earlier  # the same command won a race, or was committed meanwhile
                if attempt >= self.retries:
                    raise
                attempt += 1
                continue
            if self.cache is not None:
                self._cache_commit(aggregate_id, context.version, committed, self.cache)
            self._dispatch(aggregate_id, committed)
            return committed

    @staticmethod
    def _metadata(command: Command, metadata: Mapping[str, str], command_id: str) -> dict[str, str]:
        """What every event of a command carries: ``metadata``, the command's id and type, and
        ``correlation_id`` and ``causation_id`` (the command id unless ``metadata`` has them)."""
        meta = {str(k): str(v) for k, v in metadata.items()}
        meta["command_id"] = command_id
        meta["command_type"] = type(command).__name__
        meta.setdefault("correlation_id", command_id)
        meta.setdefault("causation_id", command_id)
        return meta

    def _envelopes(
        self, context: AggregateContext[A], events: Sequence[Event], metadata: dict[str, str]
    ) -> list[EventEnvelope]:
        """The envelopes of ``events`` decided on ``context``: the next sequences, one
        ``metadata`` mapping shared by all (stores encode it once), a time and an id each."""
        return [
            EventEnvelope(
                aggregate_type=self.aggregate_type,
                aggregate_id=context.aggregate_id,
                sequence=context.version + i,
                payload=event,
                metadata=metadata,
                recorded_at=self.clock(),
                event_id=self.ids(),
            )
            for i, event in enumerate(events, start=1)
        ]

    def _execute_once(
        self, aggregate_id: str, command: Command, metadata: Mapping[str, str], command_id: str
    ) -> list[EventEnvelope]:
        store = self.event_store
        if not isinstance(store, IdempotentEventStore):
            raise ConfigurationError(
                f"{store!r} does not keep command ids, so execute(..., command_id=...) cannot "
                "promise to run the command once: use a cqrs_lab store, or leave command_id out"
            )
        earlier = self._committed(store, aggregate_id, command, command_id)
        if earlier is not None:
            return earlier
        # A twin executing the same command id may commit between the lookup above and
        # this load; then this one is rejected or decides nothing, and returns the twin's.
        try:
            committed = self._execute(aggregate_id, command, metadata, command_id, store)
        except UserError:
            earlier = self._committed(store, aggregate_id, command, command_id)
            if earlier is not None:
                return earlier
            raise
        if not committed:
            earlier = self._committed(store, aggregate_id, command, command_id)
            if earlier is not None:
                return earlier
        return committed

    def _command_record(
        self, aggregate_id: str, command: Command, command_id: str, envelopes: Sequence[EventEnvelope]
    ) -> StoredCommand:
        return StoredCommand(
            aggregate_type=self.aggregate_type,
            aggregate_id=aggregate_id,
            command_id=command_id,
            command_type=type(command).__name__,
            payload=command.model_dump_json(),
            first_sequence=envelopes[0].sequence,
            last_sequence=envelopes[-1].sequence,
        )

    def _committed(
        self, store: IdempotentEventStore, aggregate_id: str, command: Command, command_id: str
    ) -> list[EventEnvelope] | None:
        """The envelopes committed under ``command_id`` on the aggregate, if it was used.

        Raises ``DuplicateCommandError`` when it was used by a different command.
        """
        stored = store.load_command(self.aggregate_type, aggregate_id, command_id)
        if stored is None:
            return None
        self._same_command(stored, command)
        after = stored.first_sequence - 1
        return stored.of(store.load_events(self.aggregate_type, aggregate_id, after_sequence=after))

    def _same_command(self, stored: StoredCommand, command: Command) -> None:
        """Raise ``DuplicateCommandError`` unless ``stored`` (found under ``command``'s id) is ``command``."""
        cls = type(command)
        same = stored.command_type == cls.__name__
        if same:
            try:
                same = cls.model_validate_json(stored.payload) == command
            except ValidationError:
                same = False
        if not same:
            raise DuplicateCommandError(
                f"command id {stored.command_id!r} was already used on {self.aggregate_type}/"
                f"{stored.aggregate_id} by another command ({stored.command_type} {stored.payload}), "
                f"not by {cls.__name__} {command.model_dump_json()}; nothing was done. A command id "
                "names one command: give this command an id of its own.",
                stored.command_id,
            )

    def _cache_commit(
        self,
        aggregate_id: str,
        version: int,
        committed: Sequence[EventEnvelope],
        cache: _AggregateCache[A],
    ) -> None:
        """Apply a command's committed events to the cached state it was handled on.

        ``commit`` returns the events as the store's codec reads them back, so the
        state is exactly what a reload would build. Any failure just drops the entry.
        """
        entry = cache.take(aggregate_id)
        if entry is None:
            if version != 0:
                return
            entry = _Cached(0, "", self.aggregate_cls())  # a new aggregate: known without a load
        if entry.version != version:
            cache.put(aggregate_id, entry)  # not the state it was handled on: checked at its next load
            return
        try:
            for envelope in committed:
                entry.state.apply(envelope.payload)  # the event as the store reads it back
        except Exception:
            return
        last = committed[-1]
        cache.put(aggregate_id, _Cached(last.sequence, last.event_id, entry.state))

    def _handle(self, context: AggregateContext[A], command: Command) -> list[Event]:
        try:
            events = context.payload.handle(command)
        except AggregateError:
            raise
        except Exception as exc:
            raise TechnicalError(
                f"{self.aggregate_cls.__qualname__}.handle({type(command).__name__}) raised "
                f"{exc!r} on {self.aggregate_type}/{context.aggregate_id}; nothing was "
                "committed. Raise UserError for a rejected command."
            ) from exc
        if events is None:
            return []
        bad = [e for e in events if not isinstance(e, Event)]
        if bad:
            raise TechnicalError(
                f"{self.aggregate_cls.__qualname__}.handle({type(command).__name__}) returned "
                f"{bad[0]!r}, which is not an Event; nothing was committed."
            )
        return list(events)

    def _snapshot(
        self, context: AggregateContext[A], envelopes: Sequence[EventEnvelope]
    ) -> StoredSnapshot | None:
        every = self.snapshot_every
        new_version = envelopes[-1].sequence
        if every is None or new_version // every == context.version // every:
            return None
        state = replay(self.aggregate_cls, envelopes, context.payload)
        try:
            payload = state.model_dump_json()
        except PydanticSerializationError as exc:
            warnings.warn(
                f"the state of {self.aggregate_type}/{context.aggregate_id} at version {new_version} "
                f"cannot be written as JSON ({exc}); committing without a snapshot (loads replay the "
                "events instead).",
                SnapshotIgnoredWarning,
                stacklevel=4,
            )
            return None
        return StoredSnapshot(self.aggregate_type, context.aggregate_id, new_version, payload)

    def _dispatch(self, aggregate_id: str, committed: list[EventEnvelope]) -> None:
        failures: list[tuple[str, BaseException]] = []
        for dispatcher in self.dispatchers:
            try:
                dispatcher.dispatch(aggregate_id, committed)
            except Exception as exc:
                failures.append((_dispatcher_name(dispatcher), exc))
        if failures:
            raise DispatchError(committed, failures)

    def __repr__(self) -> str:
        return (
            f"CqrsFramework({self.aggregate_cls.__qualname__}, {self.event_store!r}, "
            f"dispatchers={[_dispatcher_name(d) for d in self.dispatchers]})"
        )


def _default_view_id(envelope: EventEnvelope) -> str:
    return envelope.aggregate_id


class QueryProcessor(Generic[Q]):
    """Keeps one view per aggregate (by default) up to date: an ``EventDispatcher``.

    For each dispatch it loads the view (``QueryCls()`` at version 0 when absent),
    calls ``update`` for each envelope and commits with a version check, so a
    stale update raises ``ConcurrencyError`` instead of overwriting.
    ``view_id`` maps an envelope to the view it updates.
    """

    def __init__(
        self,
        query_cls: type[Q],
        query_store: QueryStore,
        *,
        view_id: Callable[[EventEnvelope], str] = _default_view_id,
    ) -> None:
        self.query_cls = query_cls
        self.query_store = query_store
        self.view_id = view_id
        self.name = f"QueryProcessor({query_cls.query_type})"

    def dispatch(self, aggregate_id: str, envelopes: Sequence[EventEnvelope]) -> None:
        view_ids = [self.view_id(e) for e in envelopes]
        views = self.query_store.load_many(self.query_cls, view_ids)
        for envelope, vid in zip(envelopes, view_ids, strict=True):
            views[vid].payload.update(envelope)
        self.query_store.commit_batch(list(views.values()))

    def load(self, view_id: str) -> Q:
        """The current view."""
        return self.query_store.load(self.query_cls, view_id).payload

    def __repr__(self) -> str:
        return self.name
