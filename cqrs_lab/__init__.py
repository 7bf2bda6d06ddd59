"""cqrs_lab: CQRS and event sourcing for Python, built to be explored in Jupyter.

Public names are re-exported here; the DuckDB and PostgreSQL stores load their
drivers only when first used.
"""

from __future__ import annotations

from typing import Any

from cqrs_lab.codec import EventCodec, default_codec
from cqrs_lab.decider import Decider
from cqrs_lab.domain import Aggregate, Command, Event, Query
from cqrs_lab.envelope import (
    AggregateContext,
    EventContext,
    EventEnvelope,
    FixedClock,
    QueryContext,
    SequentialIds,
    caused_by,
)
from cqrs_lab.errors import (
    AggregateError,
    ConcurrencyError,
    ConfigurationError,
    CorruptRecordError,
    CqrsLabError,
    DispatchError,
    DuplicateCommandError,
    InvalidImportError,
    ProjectionLagError,
    SchemaVersionError,
    StoreError,
    StoreLockedError,
    StoreUnavailableError,
    TechnicalError,
    UnknownEventTypeError,
    UnstorableEventError,
    UserError,
    UserErrorPayload,
)
from cqrs_lab.framework import CqrsFramework, EventDispatcher, QueryProcessor, SnapshotIgnoredWarning
from cqrs_lab.process import CancelSchedule, ProcessManager, ProcessRunner, Schedule, Send
from cqrs_lab.projections import Projection
from cqrs_lab.stores.base import EventStore, QueryStore
from cqrs_lab.stores.memory import MemoryEventStore, MemoryQueryStore
from cqrs_lab.testing import ProcessTester, QueryTester, SpecResult, TestFramework
from cqrs_lab.worker import ProjectionWorker

__version__ = "0.1.0"

# PostgresEventStore and PostgresQueryStore are importable from here too, but
# are left out of __all__: they need the optional `postgres` extra (psycopg).

__all__ = [
    "Aggregate",
    "AggregateContext",
    "AggregateError",
    "CancelSchedule",
    "Command",
    "ConcurrencyError",
    "ConfigurationError",
    "CorruptRecordError",
    "CqrsFramework",
    "CqrsLabError",
    "Decider",
    "DispatchError",
    "DuckDBEventStore",
    "DuckDBQueryStore",
    "DuplicateCommandError",
    "Event",
    "EventCodec",
    "EventContext",
    "EventDispatcher",
    "EventEnvelope",
    "EventStore",
    "FixedClock",
    "InvalidImportError",
    "MemoryEventStore",
    "MemoryQueryStore",
    "ProcessManager",
    "ProcessRunner",
    "ProcessTester",
    "Projection",
    "ProjectionLagError",
    "ProjectionWorker",
    "Query",
    "QueryContext",
    "QueryProcessor",
    "QueryStore",
    "QueryTester",
    "Schedule",
    "SchemaVersionError",
    "Send",
    "SequentialIds",
    "SnapshotIgnoredWarning",
    "SpecResult",
    "StoreError",
    "StoreLockedError",
    "StoreUnavailableError",
    "TechnicalError",
    "TestFramework",
    "UnknownEventTypeError",
    "UnstorableEventError",
    "UserError",
    "UserErrorPayload",
    "caused_by",
    "default_codec",
]


def __getattr__(name: str) -> Any:
    if name in ("DuckDBEventStore", "DuckDBQueryStore", "PostgresEventStore", "PostgresQueryStore"):
        from cqrs_lab import stores

        return getattr(stores, name)
    raise AttributeError(f"module 'cqrs_lab' has no attribute {name!r}")
