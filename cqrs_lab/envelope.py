"""Envelopes and contexts around domain objects, plus the injectable clock and ids."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from cqrs_lab.domain import Aggregate, Event, Query
from cqrs_lab.errors import ConfigurationError

__all__ = [
    "AggregateContext",
    "Clock",
    "EventContext",
    "EventEnvelope",
    "FixedClock",
    "IdSource",
    "QueryContext",
    "SequentialIds",
    "caused_by",
    "envelope_of",
    "system_clock",
    "uuid4_ids",
]

A = TypeVar("A", bound=Aggregate)
Q = TypeVar("Q", bound=Query)

Clock = Callable[[], datetime]
"""Returns the time to record on new events (timezone-aware)."""

IdSource = Callable[[], str]
"""Returns a new unique id (event ids and command ids)."""


def system_clock() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def uuid4_ids() -> str:
    """A random UUID as text."""
    return str(uuid.uuid4())


class FixedClock:
    """A deterministic clock: ``start``, then ``start + step``, ``start + 2*step``, ...

    ``advance(delta)`` moves it forward (time passing in a notebook or a test).
    """

    def __init__(
        self,
        start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
        step: timedelta = timedelta(seconds=1),
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware start, e.g. datetime(..., tzinfo=UTC)")
        self._next = start
        self._step = step
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            now = self._next
            self._next = now + self._step
            return now

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward by ``delta``: the next reading is ``delta`` later than it was."""
        if delta < timedelta(0):
            raise ConfigurationError(f"a FixedClock only moves forward; advance({delta!r}) is negative")
        with self._lock:
            self._next += delta

    def __repr__(self) -> str:
        return f"FixedClock(next={self._next.isoformat()}, step={self._step})"


class SequentialIds:
    """Deterministic ids that are valid UUIDs: ``00000000-0000-0000-0000-000000000001``, ..."""

    def __init__(self, start: int = 1) -> None:
        self._counter = itertools.count(start)
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=next(self._counter)))

    def __repr__(self) -> str:
        return "SequentialIds()"


@dataclass(frozen=True, slots=True)
class EventEnvelope:
    """An event with everything stored beside it (the seed's ``EventContext``).

    ``position`` is the global commit order, set by the store on commit
    (0 before that).
    """

    aggregate_type: str
    aggregate_id: str
    sequence: int
    payload: Event
    metadata: Mapping[str, str] = field(default_factory=dict)
    recorded_at: datetime = field(default_factory=system_clock)
    event_id: str = field(default_factory=uuid4_ids)
    position: int = 0

    @property
    def event_type(self) -> str:
        return self.payload.event_type

    @property
    def event_version(self) -> str:
        return self.payload.event_version

    def with_position(self, position: int) -> EventEnvelope:
        # Field by field: dataclasses.replace costs four times as much, once per committed event.
        return envelope_of(
            self.aggregate_type,
            self.aggregate_id,
            self.sequence,
            self.payload,
            self.metadata,
            self.recorded_at,
            self.event_id,
            position,
        )

    def __repr__(self) -> str:
        return (
            f"EventEnvelope({self.aggregate_type}/{self.aggregate_id}#{self.sequence} "
            f"@{self.position} {self.payload!r})"
        )

    def _repr_html_(self) -> str:
        from cqrs_lab._render import envelope_html

        return envelope_html(self)


EventContext = EventEnvelope
"""The seed's name for ``EventEnvelope``."""

_NEW = object.__new__
(
    _SET_TYPE,
    _SET_ID,
    _SET_SEQUENCE,
    _SET_PAYLOAD,
    _SET_METADATA,
    _SET_RECORDED_AT,
    _SET_EVENT_ID,
    _SET_POSITION,
) = (getattr(EventEnvelope, f.name).__set__ for f in fields(EventEnvelope))  # in field order; a test compares


def envelope_of(
    aggregate_type: str,
    aggregate_id: str,
    sequence: int,
    payload: Event,
    metadata: Mapping[str, str],
    recorded_at: datetime,
    event_id: str,
    position: int,
) -> EventEnvelope:
    """``EventEnvelope(...)`` with every field given, without the generated ``__init__``.

    The generated ``__init__`` of a frozen dataclass sets each field through
    ``object.__setattr__`` and checks for default factories; stores build one
    envelope per row read, so they set the slots directly instead.
    """
    envelope: EventEnvelope = _NEW(EventEnvelope)
    _SET_TYPE(envelope, aggregate_type)
    _SET_ID(envelope, aggregate_id)
    _SET_SEQUENCE(envelope, sequence)
    _SET_PAYLOAD(envelope, payload)
    _SET_METADATA(envelope, metadata)
    _SET_RECORDED_AT(envelope, recorded_at)
    _SET_EVENT_ID(envelope, event_id)
    _SET_POSITION(envelope, position)
    return envelope


def caused_by(envelope: EventEnvelope) -> dict[str, str]:
    """Metadata for a command caused by ``envelope``: same correlation, causation = that event."""
    return {
        "correlation_id": envelope.metadata.get("correlation_id", envelope.event_id),
        "causation_id": envelope.event_id,
    }


@dataclass(frozen=True, slots=True)
class AggregateContext(Generic[A]):
    """An aggregate as loaded: its id, its version (last sequence) and its state."""

    aggregate_id: str
    version: int
    payload: A


@dataclass(frozen=True, slots=True)
class QueryContext(Generic[Q]):
    """A view as loaded: its id, its version (number of commits) and the query."""

    view_id: str
    version: int
    payload: Q

    @property
    def query_type(self) -> str:
        return self.payload.query_type
