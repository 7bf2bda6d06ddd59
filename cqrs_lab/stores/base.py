"""The store contract: ``EventStore`` and ``QueryStore`` protocols and their shared base.

Backends implement a handful of raw-record hooks (rows with JSON text); the
bases here turn rows into envelopes and queries, so decoding, upcasting and
the error messages for bad rows are written once for every store.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, runtime_checkable

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from cqrs_lab.codec import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_KEY_BYTES,
    EventCodec,
    StoredEvent,
    Where,
    decode_metadata,
    default_codec,
    encode_metadata,
    where_text,
)
from cqrs_lab.domain import Aggregate, Event, Query
from cqrs_lab.envelope import EventEnvelope, QueryContext, envelope_of
from cqrs_lab.errors import (
    ConfigurationError,
    CorruptRecordError,
    CqrsLabError,
    StoreError,
    UnstorableEventError,
)
from cqrs_lab.subscriptions import POLL_INTERVAL, Signal, Subscription

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "EVENT_COLUMNS",
    "EventStore",
    "IdempotentEventStore",
    "ProcessStore",
    "QueryStore",
    "RecordCodec",
    "RecordEventStore",
    "RecordQueryStore",
    "StoredCommand",
    "StoredDeadline",
    "StoredEvent",
    "StoredProcess",
    "StoredQuery",
    "StoredSnapshot",
    "checkpoint_conflict",
    "command_conflict",
    "import_conflict",
    "process_conflict",
    "validate_identifier",
]

Q = TypeVar("Q", bound=Query)
A = TypeVar("A", bound=Aggregate)

EVENT_COLUMNS = (
    "position",
    "aggregate_type",
    "aggregate_id",
    "sequence",
    "event_type",
    "event_version",
    "payload",
    "metadata",
    "recorded_at",
    "event_id",
)
"""Column order of the ``events`` table and of every export (Arrow, Parquet, JSON Lines, CSV)."""

_UNSEEN: Any = object()
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def validate_identifier(name: str, what: str = "schema name") -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise ``ConfigurationError``."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ConfigurationError(
            f"{what} {name!r} is not allowed: use 1-63 letters, digits or underscores, "
            "not starting with a digit (it is quoted into SQL, so nothing else is accepted)"
        )
    return name


def import_conflict(aggregate_type: str, aggregate_id: str, sequence: object, stored: bool) -> str:
    """The message of an import refused for one key: ``stored`` (else it is twice in the input)."""
    why = "is already stored" if stored else "appears twice in the input"
    return (
        f"cannot import: event {aggregate_type}/{aggregate_id} sequence {sequence} {why}. "
        "Nothing was imported; remove the events that are already stored or repeated."
    )


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """An aggregate's state at ``version`` as JSON text."""

    aggregate_type: str
    aggregate_id: str
    version: int
    payload: str


def command_conflict(command: StoredCommand) -> str:
    """The message of a commit refused because its command id is already committed."""
    return (
        f"command id {command.command_id!r} is already committed on "
        f"{command.aggregate_type}/{command.aggregate_id}; nothing of this commit was stored. "
        "CqrsFramework.execute(..., command_id=...) returns the events committed the first time."
    )


def checkpoint_conflict(name: str, expected: int) -> str:
    """The message of a projection batch refused because another runner moved its checkpoint."""
    return (
        f"projection {name!r}: its checkpoint is no longer at position {expected}: another runner "
        "of this projection committed first, and nothing of this batch was stored. "
        "Projection.run goes on from the checkpoint that runner left."
    )


def process_conflict(name: str) -> str:
    """The message of a process runner's commit refused because another runner moved on."""
    return (
        f"process runner {name!r}: another runner committed the same process states or "
        "checkpoint first; nothing of this batch was stored. Run one runner per name; this one "
        "can run again (the commands it sent carry command ids, so none is applied twice)."
    )


@dataclass(frozen=True, slots=True)
class StoredCommand:
    """A command committed with a caller-chosen id: which events it committed.

    One row per (aggregate_type, aggregate_id, command_id), written in the same
    transaction as the events, so a second commit of the same id is refused.
    ``payload`` is the command as JSON text; its events are the stream's
    ``first_sequence`` to ``last_sequence``.
    """

    aggregate_type: str
    aggregate_id: str
    command_id: str
    command_type: str
    payload: str
    first_sequence: int
    last_sequence: int

    def key(self) -> tuple[str, str, str]:
        """``(aggregate_type, aggregate_id, command_id)``: what the store keeps unique."""
        return (self.aggregate_type, self.aggregate_id, self.command_id)

    def values(self) -> tuple[Any, ...]:
        """Every column, in field order (what a commit inserts)."""
        return (*self.key(), self.command_type, self.payload, self.first_sequence, self.last_sequence)

    def of(self, envelopes: Iterable[EventEnvelope]) -> list[EventEnvelope]:
        """The events this command committed, among ``envelopes`` (its stream from ``first_sequence`` on)."""
        return [e for e in envelopes if self.first_sequence <= e.sequence <= self.last_sequence]


@dataclass(frozen=True, slots=True)
class StoredProcess:
    """A process manager instance's state: ``version`` counts its commits; ``payload`` is JSON text."""

    name: str
    process_id: str
    version: int
    payload: str


@dataclass(frozen=True, slots=True)
class StoredDeadline:
    """A pending deadline of one process instance: the command to send at ``due_at``.

    ``origin`` names what scheduled it (it makes the command's id); ``command_type``
    is ``command_class_name`` of the command's class; ``command`` and ``metadata``
    are JSON text.
    """

    name: str
    process_id: str
    deadline: str
    due_at: datetime
    origin: str
    aggregate_type: str
    aggregate_id: str
    command_type: str
    command: str
    metadata: str


@dataclass(frozen=True, slots=True)
class StoredQuery:
    """A view row: ``version`` counts its commits; ``payload`` is JSON text."""

    query_type: str
    view_id: str
    version: int
    payload: str


@runtime_checkable
class EventStore(Protocol):
    """Loads and commits events (the seed's ``IEventStore``)."""

    codec: EventCodec

    def load_events(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> list[EventEnvelope]:
        """The stream's events after ``after_sequence``, in sequence order."""
        ...

    def commit(
        self, envelopes: Sequence[EventEnvelope], *, snapshot: StoredSnapshot | None = None
    ) -> list[EventEnvelope]:
        """Store one command's events (and optionally a snapshot) atomically.

        Raises ``ConcurrencyError`` (storing nothing) when any sequence is taken, and
        ``UnstorableEventError`` (storing nothing) for an event it could not read back.
        Returns the envelopes with their global ``position`` set, each carrying its
        event as the store reads it back (what a later load gives).
        """
        ...

    def read_all(self, after_position: int = 0, *, batch_size: int = 1000) -> Iterator[EventEnvelope]:
        """Every event after ``after_position`` in global (commit) order."""
        ...

    def load_snapshot(self, aggregate_type: str, aggregate_id: str) -> StoredSnapshot | None: ...

    def close(self) -> None: ...


@runtime_checkable
class QueryStore(Protocol):
    """Loads and commits views, and keeps projection checkpoints (the seed's ``IQueryStore``)."""

    def load(self, query_cls: type[Q], view_id: str) -> QueryContext[Q]:
        """The view, or ``query_cls()`` at version 0 when there is none."""
        ...

    def load_many(self, query_cls: type[Q], view_ids: Iterable[str]) -> dict[str, QueryContext[Q]]:
        """Several views at once (one round trip on SQL stores), keyed by view id."""
        ...

    def commit(self, context: QueryContext[Any]) -> QueryContext[Any]:
        """Store ``context.payload`` as version ``context.version + 1``.

        Raises ``ConcurrencyError`` when the stored version is not ``context.version``.
        """
        ...

    def commit_batch(
        self,
        contexts: Sequence[QueryContext[Any]],
        *,
        checkpoint: tuple[str, int, int] | None = None,
    ) -> list[QueryContext[Any]]:
        """Commit several views and a projection checkpoint in one transaction.

        ``checkpoint`` is ``(name, expected, new)``: the checkpoint moves from
        ``expected`` (0 also when there is none) to ``new``. When it is not at
        ``expected`` (another runner of the projection moved it), or a view is
        not at its version, ``ConcurrencyError`` is raised and nothing is written.
        """
        ...

    def load_checkpoint(self, name: str) -> int:
        """The last position the projection ``name`` applied (0 when never run)."""
        ...

    def reset(self, query_types: Sequence[str], *, checkpoint: str | None = None) -> None:
        """Delete every view of ``query_types`` and the checkpoint, in one transaction."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class IdempotentEventStore(EventStore, Protocol):
    """An ``EventStore`` that keeps the ids of commands (every cqrs_lab store does).

    ``CqrsFramework.execute(..., command_id=...)`` needs one.
    """

    def commit(
        self,
        envelopes: Sequence[EventEnvelope],
        *,
        snapshot: StoredSnapshot | None = None,
        command: StoredCommand | None = None,
    ) -> list[EventEnvelope]:
        """Like ``EventStore.commit``, and stores ``command`` (its id) in the same transaction.

        Raises ``ConcurrencyError`` (storing nothing) when any sequence is taken,
        or when ``command``'s id is already committed on that aggregate.
        """
        ...

    def load_command(self, aggregate_type: str, aggregate_id: str, command_id: str) -> StoredCommand | None:
        """The command committed with ``command_id`` on that aggregate, if any."""
        ...


@runtime_checkable
class ProcessStore(QueryStore, Protocol):
    """A ``QueryStore`` that also keeps process managers' states, deadlines and checkpoints
    (every cqrs_lab query store does); ``ProcessRunner`` needs one."""

    def load_processes(self, name: str, process_ids: Iterable[str]) -> list[StoredProcess]:
        """The stored states among ``process_ids`` of the process runner ``name`` (any order)."""
        ...

    def load_deadlines(self, name: str, *, due_by: datetime | None = None) -> list[StoredDeadline]:
        """The runner's pending deadlines (those due at or before ``due_by``, when given),
        ordered by due time, then process id and deadline name."""
        ...

    def commit_processes(
        self,
        name: str,
        states: Sequence[StoredProcess],
        *,
        deadlines: Sequence[StoredDeadline] = (),
        cancelled: Sequence[tuple[str, str]] = (),
        checkpoint: tuple[int, int] | None = None,
    ) -> None:
        """Commit a process runner's batch in one transaction.

        Each state is written iff the stored version is ``version - 1`` (absent
        counts as 0); the ``(process_id, deadline)`` pairs in ``cancelled`` and of
        ``deadlines`` are deleted, then ``deadlines`` are inserted; the checkpoint
        ``(expected, new)`` moves from ``expected`` to ``new``. When any check
        fails, ``ConcurrencyError`` is raised and nothing is written.
        """
        ...


def _where(record: StoredEvent) -> str:
    return (
        f"event {record.aggregate_type}/{record.aggregate_id} sequence {record.sequence}"
        f" (position {record.position})"
    )


def _stream_where(aggregate_type: str, aggregate_id: str, sequence: int) -> str:
    return f"event {aggregate_type}/{aggregate_id} sequence {sequence}"


def _shown(text: object, limit: int = 80) -> str:
    """``text`` for a message: surrogates and control characters escaped, long text cut."""
    shown = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    shown = shown.replace("\x00", "\\x00")
    if len(shown) > limit:
        shown = f"{shown[: limit - 20]}... ({len(str(text)):,} characters)"
    return shown


def _commit_where(envelope: EventEnvelope) -> str:
    return (
        f"event {_shown(envelope.aggregate_type)}/{_shown(envelope.aggregate_id)} sequence "
        f"{envelope.sequence} ({_shown(envelope.payload.event_type)})"
    )


def _unstorable(where: Where, reason: str) -> UnstorableEventError:
    return UnstorableEventError(
        f"cannot store {where_text(where)}: {reason}. Nothing of this commit was stored."
    )


def _check_text(where: Where, what: str, value: object, limit: int | None = None) -> None:
    """Refuse text no store can keep: not a string, a NUL, an unpaired surrogate, too long."""
    if not isinstance(value, str):
        raise _unstorable(where, f"its {what} is a {type(value).__name__}, not text")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            bad = exc.object[exc.start : exc.end].encode("utf-8", "backslashreplace").decode()
            raise _unstorable(
                where, f"its {what} contains an unpaired surrogate ({bad}), which is not valid Unicode text"
            ) from exc
    if "\x00" in value:
        raise _unstorable(where, f"its {what} contains a NUL character (\\x00)")
    if limit is not None and len(value) > limit // 4 and len(value.encode()) > limit:
        raise _unstorable(
            where, f"its {what} is {len(value.encode()):,} bytes of UTF-8; the limit is {limit} bytes"
        )


def _check_json_size(where: Where, what: str, text: str) -> None:
    if len(text) > MAX_JSON_BYTES // 4 and len(text.encode()) > MAX_JSON_BYTES:
        raise _unstorable(
            where,
            f"its {what} is {len(text.encode()):,} bytes of JSON; the limit is {MAX_JSON_BYTES:,} "
            "bytes (cqrs_lab.codec.MAX_JSON_BYTES): keep large data outside the event and store a reference",
        )


def _too_deep(error: BaseException) -> bool:
    text = str(error)
    # pydantic before 2.13 says "Circular reference detected (depth exceeded)" for a deep payload
    return any(
        sign in text
        for sign in ("recursion limit exceeded", "Maximum serialization depth exceeded", "(depth exceeded)")
    )


def _aware(value: object, where: Where) -> datetime:
    """``recorded_at`` as an aware datetime (naive values from a driver are UTC)."""
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise CorruptRecordError(
                f"{where_text(where)}: recorded_at {value!r} is not a timestamp"
            ) from exc
    else:
        raise CorruptRecordError(f"{where_text(where)}: recorded_at {value!r} is not a timestamp")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class RecordCodec:
    """Rows to envelopes and back with a codec: what every store of ours shares, sync or asyncio."""

    codec: EventCodec

    def __init__(self, codec: EventCodec | None = None) -> None:
        self.codec = codec if codec is not None else default_codec

    def decode(self, record: StoredEvent) -> EventEnvelope:
        """Turn a stored row into an envelope (clear errors for bad rows)."""
        return self._decode_rows([record])[0]

    def _event_decoder(self) -> Callable[[str, str, Any], Event | None]:
        """The fast path of every read, for one batch of rows: (type, version, payload)
        to the event, or None when the row needs ``codec.decode`` (an upcast, an
        unknown type, a bad payload: it upcasts, or raises the error naming the row).

        Each (event type, version) gets the codec's validator once per batch.
        """
        codec = self.codec
        validators: dict[tuple[str, str], Callable[[str], Event] | None] = {}

        def decode(event_type: str, event_version: str, payload: Any) -> Event | None:
            key = (event_type, event_version)
            validate = validators.get(key, _UNSEEN)
            if validate is _UNSEEN:
                validate = validators[key] = codec.validator(event_type, event_version)
            if validate is None or not isinstance(payload, str):
                return None
            try:
                event: Event = validate(payload)
            except (ValidationError, ValueError):
                return None
            return event

        return decode

    def _decode_rows(self, records: Iterable[StoredEvent]) -> list[EventEnvelope]:
        """Envelopes of ``records``, all at once (see ``_iter_decode``)."""
        return list(self._iter_decode(records))

    def _iter_decode(self, records: Iterable[StoredEvent]) -> Iterator[EventEnvelope]:
        """Envelopes of ``records``, each made as it is asked for. Each metadata text is
        parsed once per batch (the events of one command share it, as ``CqrsFramework``
        shares one mapping on commit).

        Made one at a time, an envelope a reader is done with is freed before the next
        is made: a page of the log then never holds thousands of live envelopes and
        events, which the garbage collector would otherwise walk again and again
        (reading a long log went a third faster)."""
        decode = self._event_decoder()
        metadata_seen: dict[Any, dict[str, str]] = {}
        for record in records:
            event = decode(record.event_type, record.event_version, record.payload)
            if event is None:
                where = partial(_where, record)
                event = self.codec.decode(record.event_type, record.event_version, record.payload, where)
            text = record.metadata
            metadata = metadata_seen.get(text) if isinstance(text, str) else None
            if metadata is None:
                metadata = decode_metadata(text, partial(_where, record))
                if isinstance(text, str):
                    metadata_seen[text] = metadata
            recorded_at = record.recorded_at
            if type(recorded_at) is not datetime or recorded_at.tzinfo is None:
                recorded_at = _aware(recorded_at, partial(_where, record))
            yield envelope_of(
                record.aggregate_type,
                record.aggregate_id,
                record.sequence,
                event,
                metadata,
                recorded_at,
                str(record.event_id),
                record.position,
            )

    def _decode_stream(
        self, aggregate_type: str, aggregate_id: str, rows: Iterable[tuple[int, Any, str, str, Any]]
    ) -> list[tuple[int, str, Event]]:
        """``(sequence, event_id, event)`` of stream rows, all at once (see ``_iter_stream``)."""
        return list(self._iter_stream(aggregate_type, aggregate_id, rows))

    def _iter_stream(
        self, aggregate_type: str, aggregate_id: str, rows: Iterable[tuple[int, Any, str, str, Any]]
    ) -> Iterator[tuple[int, str, Event]]:
        """``(sequence, event_id, event)`` of stream rows, each decoded as it is asked for.

        Rebuilding an aggregate applies each event and drops it, so none outlives the
        next: a stream decoded whole kept thousands of events alive, which the garbage
        collector then walked again and again (a fresh load of 5,000 events took half
        again as long in a process with many modules loaded)."""
        decode = self._event_decoder()
        codec = self.codec
        for sequence, event_id, event_type, event_version, payload in rows:
            event = decode(event_type, event_version, payload)
            if event is None:
                where = partial(_stream_where, aggregate_type, aggregate_id, sequence)
                event = codec.decode(event_type, event_version, payload, where)
            yield sequence, str(event_id), event

    def encode(self, envelope: EventEnvelope) -> StoredEvent:
        """The row stored for ``envelope``; ``UnstorableEventError`` for an event no store can keep."""
        return self._encode(envelope, {})

    def _encode(self, envelope: EventEnvelope, metadata_done: dict[int, str]) -> StoredEvent:
        """``encode``, encoding (and checking) a metadata mapping shared by several envelopes once.

        ``metadata_done`` is keyed by ``id()``, so it must not outlive the envelopes.
        """
        where = partial(_commit_where, envelope)  # called only to name the event in an error
        metadata = metadata_done.get(id(envelope.metadata))
        if metadata is None:
            metadata = encode_metadata(envelope.metadata, where)
            _check_text(where, "metadata", metadata)
            _check_json_size(where, "metadata", metadata)
            metadata_done[id(envelope.metadata)] = metadata
        event = envelope.payload
        try:
            payload = self.codec.encode(event)
        except PydanticSerializationError as exc:
            reason = (
                f"its payload is nested deeper than {MAX_JSON_DEPTH} levels"
                if _too_deep(exc)
                else "a text in its payload contains an unpaired surrogate, which is not valid Unicode"
                if "surrogates not allowed" in str(exc)
                else f"its payload cannot be written as JSON ({exc})"
            )
            raise _unstorable(where, reason) from exc
        record = StoredEvent(
            aggregate_type=envelope.aggregate_type,
            aggregate_id=envelope.aggregate_id,
            sequence=envelope.sequence,
            event_type=event.event_type,
            event_version=event.event_version,
            payload=payload,
            metadata=metadata,
            recorded_at=envelope.recorded_at,
            event_id=str(envelope.event_id),
        )
        _check_text(where, "aggregate type", record.aggregate_type, MAX_KEY_BYTES)
        _check_text(where, "aggregate id", record.aggregate_id, MAX_KEY_BYTES)
        _check_text(where, "event type", record.event_type)
        _check_text(where, "event version", record.event_version)
        _check_text(where, "event id", record.event_id)
        _check_json_size(where, "payload", payload)
        return record

    def _read_back(self, records: Sequence[StoredEvent], envelopes: Sequence[EventEnvelope]) -> list[Event]:
        """Each record's event as this store's codec reads it back; ``UnstorableEventError``
        for one it cannot (so nothing is acknowledged that a load would fail on)."""
        codec = self.codec
        decode = self._event_decoder()
        events = []
        for record, envelope in zip(records, envelopes, strict=True):
            event = decode(record.event_type, record.event_version, record.payload)
            if event is None:
                where = partial(_commit_where, envelope)
                if codec.event_class(record.event_type) is None:
                    raise _unstorable(
                        where,
                        f"event type {record.event_type!r} is not registered with this store's codec, "
                        "so it could not be loaded: register its class (codec.register(cls))",
                    )
                try:
                    event = codec.decode(record.event_type, record.event_version, record.payload, where)
                except CqrsLabError as exc:
                    cause = exc.__cause__ if exc.__cause__ is not None else exc
                    reason = (
                        f"its payload is nested deeper than {MAX_JSON_DEPTH} levels, which the JSON "
                        "reader refuses"
                        if _too_deep(cause)
                        else f"its payload does not read back: {cause}"
                    )
                    raise _unstorable(where, reason) from cause
            events.append(event)
        return events


class RecordEventStore(RecordCodec, ABC):
    """Implements ``EventStore`` on top of three raw-record hooks."""

    # -- backend hooks ---------------------------------------------------
    @abstractmethod
    def _load_records(self, aggregate_type: str, aggregate_id: str, after_sequence: int) -> list[StoredEvent]:
        """Rows of one stream after ``after_sequence`` in sequence order."""

    @abstractmethod
    def _append_records(
        self,
        records: Sequence[StoredEvent],
        snapshot: StoredSnapshot | None,
        command: StoredCommand | None = None,
    ) -> list[int]:
        """Insert rows (and the snapshot and the command row, if any) in one transaction;
        return their positions.

        Raise ``ConcurrencyError`` (inserting nothing) when a sequence or the
        command id is taken.
        """

    @abstractmethod
    def load_command(self, aggregate_type: str, aggregate_id: str, command_id: str) -> StoredCommand | None:
        """The command committed with ``command_id`` on that aggregate, if any."""

    @abstractmethod
    def _read_records(self, after_position: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` rows after ``after_position`` in position order."""

    @abstractmethod
    def load_snapshot(self, aggregate_type: str, aggregate_id: str) -> StoredSnapshot | None: ...

    @abstractmethod
    def _stream_heads(self, aggregate_types: list[str], aggregate_ids: list[str]) -> Sequence[int]:
        """The last stored sequence of each stream (0 for one without events), in one query."""

    @abstractmethod
    def _insert_import(self, table: pa.Table) -> int:
        """Append a checked, non-empty event table atomically; returns the count.

        Positions are assigned anew, in the order of the input's ``position``
        column. A (aggregate_type, aggregate_id, sequence) taken since the check
        (a lost race) raises ``ConcurrencyError`` and nothing is imported.
        """

    @abstractmethod
    def export_arrow(self, after_position: int = 0) -> pa.Table:
        """The log after ``after_position`` as an Arrow table with ``event_arrow_schema()``."""

    @abstractmethod
    def _watch_commits(self) -> AbstractContextManager[Signal]:
        """A ``Signal`` that fires on commits (and imports) while the block runs: this
        process's own ones on memory and DuckDB, every process's on PostgreSQL."""

    @abstractmethod
    def close(self) -> None: ...

    # -- the contract ----------------------------------------------------
    def _load_stream_rows(
        self, aggregate_type: str, aggregate_id: str, after_sequence: int
    ) -> Sequence[tuple[int, Any, str, str, Any]]:
        """``(sequence, event_id, event_type, event_version, payload)`` of one stream after
        ``after_sequence`` in sequence order. SQL stores override it with a narrower SELECT."""
        return [
            (r.sequence, r.event_id, r.event_type, r.event_version, r.payload)
            for r in self._load_records(aggregate_type, aggregate_id, after_sequence)
        ]

    def stream_head(self, aggregate_type: str, aggregate_id: str) -> tuple[int, str] | None:
        """The stream's last ``(sequence, event_id)`` when the store knows it without a query,
        else None (unknown; the default). ``CqrsFramework`` uses it to check a cached
        aggregate: when the store knows the stream still ends with the event the cached
        state was built from, the command reads nothing."""
        return None

    def load_stream(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> list[tuple[int, str, Event]]:
        """``(sequence, event_id, event)`` of the stream's events after ``after_sequence``.

        What rebuilding an aggregate needs and no more: no envelopes, and neither
        metadata nor ``recorded_at`` is read (``load_events`` and ``read_all`` check
        them). ``CqrsFramework`` loads aggregates with it.
        """
        rows = self._load_stream_rows(aggregate_type, aggregate_id, after_sequence)
        return self._decode_stream(aggregate_type, aggregate_id, rows)

    def iter_stream(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> Iterator[tuple[int, str, Event]]:
        """``load_stream``, each event decoded as it is asked for (the rows are read at once).

        ``CqrsFramework`` rebuilds aggregates with it, so an applied event is freed
        before the next is decoded; a bad row raises when it is reached.
        """
        rows = self._load_stream_rows(aggregate_type, aggregate_id, after_sequence)
        return self._iter_stream(aggregate_type, aggregate_id, rows)

    def load_snapshot_and_stream(
        self, aggregate_type: str, aggregate_id: str
    ) -> tuple[StoredSnapshot | None, list[tuple[int, str, Event]]]:
        """The latest snapshot and ``load_stream`` after it (after 0 when there is none).

        Postgres answers both in one round trip; the other stores make two reads.
        """
        snapshot = self.load_snapshot(aggregate_type, aggregate_id)
        after = 0 if snapshot is None else snapshot.version
        return snapshot, self.load_stream(aggregate_type, aggregate_id, after_sequence=after)

    def load_events(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> list[EventEnvelope]:
        return self._decode_rows(self._load_records(aggregate_type, aggregate_id, after_sequence))

    def commit(
        self,
        envelopes: Sequence[EventEnvelope],
        *,
        snapshot: StoredSnapshot | None = None,
        command: StoredCommand | None = None,
    ) -> list[EventEnvelope]:
        if not envelopes:
            return []
        done: dict[int, str] = {}  # a command's envelopes share one metadata mapping
        records = [self._encode(e, done) for e in envelopes]
        events = self._read_back(records, envelopes)
        positions = self._append_records(records, snapshot, command)
        return [
            envelope_of(
                e.aggregate_type, e.aggregate_id, e.sequence, event, e.metadata, e.recorded_at, e.event_id, p
            )
            for e, event, p in zip(envelopes, events, positions, strict=True)
        ]

    def read_all(self, after_position: int = 0, *, batch_size: int = 1000) -> Iterator[EventEnvelope]:
        position = after_position
        while True:
            records = self._read_records(position, batch_size)
            yield from self._iter_decode(records)
            if len(records) < batch_size:
                return
            position = records[-1].position

    @contextmanager
    def subscribe(
        self,
        after_position: int = 0,
        timeout: float | None = 5.0,
        *,
        poll_interval: float = POLL_INTERVAL,
        batch_size: int = 1000,
    ) -> Iterator[Subscription]:
        """Every event after ``after_position`` in position order, then each new one as
        it is committed: ``with store.subscribe() as events: for envelope in events: ...``.

        Iteration ends after ``timeout`` seconds without a new event (``None``:
        never) or when the ``with`` block is left (``events.close()`` stops it
        from any thread). A waiting subscription is woken by commits and
        re-reads the log every ``poll_interval`` seconds in any case.
        """
        with self._watch_commits() as signal:
            subscription = Subscription(
                self._read_envelopes,
                signal,
                after_position=after_position,
                timeout=timeout,
                poll_interval=poll_interval,
                batch_size=batch_size,
            )
            try:
                yield subscription
            finally:
                subscription.close()

    def _read_envelopes(self, after_position: int, limit: int) -> list[EventEnvelope]:
        return self._decode_rows(self._read_records(after_position, limit))

    def import_arrow(self, data: Any) -> int:
        """Append an event table (an Arrow table, a pandas DataFrame or a list of dicts with
        the columns of ``cqrs_lab.stores.arrow.event_arrow_schema()``) atomically.

        The input is checked first (``cqrs_lab.stores.arrow.check_import``): a rule it
        breaks is an ``InvalidImportError`` naming the row and column, and nothing is
        imported. Positions are assigned anew, in the order of the input's ``position``
        column. Returns the count.
        """
        from cqrs_lab.stores.arrow import check_import, to_event_table

        table = to_event_table(data)
        if table.num_rows == 0:
            return 0
        check_import(table, self._stream_heads)
        return self._insert_import(table)

    def import_events(self, path_or_data: str | Path | Any, format: str | None = None) -> int:
        """Import a Parquet, JSON Lines or CSV file (format from ``format`` or the suffix),
        or anything ``import_arrow`` takes; atomic. Returns the count."""
        from cqrs_lab.stores.arrow import read_events_file

        if isinstance(path_or_data, str | Path):
            return self.import_arrow(read_events_file(path_or_data, format))
        return self.import_arrow(path_or_data)

    def export_events(self, path: str | Path, format: str | None = None) -> int:
        """Write the whole log to a Parquet, JSON Lines or CSV file; returns the count."""
        from cqrs_lab.stores.arrow import write_events_file

        return write_events_file(self.export_arrow(), path, format)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordQueryStore(ABC):
    """Implements ``QueryStore`` on top of raw-record hooks."""

    @abstractmethod
    def _load_query(self, query_type: str, view_id: str) -> StoredQuery | None: ...

    @abstractmethod
    def _commit_queries(
        self, records: Sequence[StoredQuery], checkpoint: tuple[str, int, int] | None
    ) -> None:
        """Write each record (its ``version`` is the new one) iff the stored version is
        ``version - 1`` (absent counts as 0), and move the checkpoint ``(name, expected,
        new)`` iff it is at ``expected`` (as ``commit_processes`` does), in one transaction.
        Raise ``ConcurrencyError`` and write nothing when any check fails."""

    @abstractmethod
    def load_checkpoint(self, name: str) -> int: ...

    @abstractmethod
    def reset(self, query_types: Sequence[str], *, checkpoint: str | None = None) -> None: ...

    @abstractmethod
    def _watch_checkpoints(self) -> AbstractContextManager[Signal]:
        """A ``Signal`` that fires when a checkpoint is saved while the block runs: in this
        process on memory and DuckDB, in any process on PostgreSQL."""

    @abstractmethod
    def load_processes(self, name: str, process_ids: Iterable[str]) -> list[StoredProcess]: ...

    @abstractmethod
    def load_deadlines(self, name: str, *, due_by: datetime | None = None) -> list[StoredDeadline]: ...

    @abstractmethod
    def commit_processes(
        self,
        name: str,
        states: Sequence[StoredProcess],
        *,
        deadlines: Sequence[StoredDeadline] = (),
        cancelled: Sequence[tuple[str, str]] = (),
        checkpoint: tuple[int, int] | None = None,
    ) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def _load_queries(self, query_type: str, view_ids: Sequence[str]) -> list[StoredQuery]:
        """The stored views among ``view_ids`` (any order). SQL stores override this with one query."""
        return [r for r in (self._load_query(query_type, v) for v in view_ids) if r is not None]

    def load(self, query_cls: type[Q], view_id: str) -> QueryContext[Q]:
        return self._context(query_cls, view_id, self._load_query(query_cls.query_type, view_id))

    def load_many(self, query_cls: type[Q], view_ids: Iterable[str]) -> dict[str, QueryContext[Q]]:
        """Several views of one query class at once (absent ones at version 0), keyed by view id."""
        wanted = list(dict.fromkeys(view_ids))
        found = {r.view_id: r for r in self._load_queries(query_cls.query_type, wanted)} if wanted else {}
        return {v: self._context(query_cls, v, found.get(v)) for v in wanted}

    @staticmethod
    def _context(query_cls: type[Q], view_id: str, record: StoredQuery | None) -> QueryContext[Q]:
        if record is None:
            return QueryContext(view_id=view_id, version=0, payload=query_cls())
        try:
            payload = query_cls.model_validate_json(record.payload)
        except ValidationError as exc:
            raise CorruptRecordError(
                f"view {query_cls.query_type}/{view_id} (version {record.version}) does not "
                f"decode as {query_cls.__qualname__}: {exc}. Rebuild the projection "
                "(Projection.rebuild) to recreate it from the event log."
            ) from exc
        return QueryContext(view_id=view_id, version=record.version, payload=payload)

    def commit(self, context: QueryContext[Any]) -> QueryContext[Any]:
        return self.commit_batch([context])[0]

    def commit_batch(
        self,
        contexts: Sequence[QueryContext[Any]],
        *,
        checkpoint: tuple[str, int, int] | None = None,
    ) -> list[QueryContext[Any]]:
        records = [StoredQuery(c.query_type, c.view_id, c.version + 1, _view_json(c)) for c in contexts]
        self._commit_queries(records, checkpoint)
        return [QueryContext(c.view_id, c.version + 1, c.payload) for c in contexts]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _view_json(context: QueryContext[Any]) -> str:
    try:
        text: str = context.payload.model_dump_json()
    except PydanticSerializationError as exc:
        raise StoreError(
            f"cannot store view {context.query_type}/{_shown(context.view_id)}: it cannot be written as "
            f"JSON ({exc}). Nothing of this batch was written; views are kept as JSON, so keep their "
            f"fields JSON-serializable and nested at most {MAX_JSON_DEPTH} levels."
        ) from exc
    return text
