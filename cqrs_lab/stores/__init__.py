"""Event and query stores: memory, DuckDB (embedded default) and PostgreSQL.

``DuckDBEventStore`` and ``PostgresEventStore`` (and their query stores) are
imported lazily, so ``import cqrs_lab`` loads neither driver.
"""

from __future__ import annotations

from typing import Any

from cqrs_lab.stores.base import (
    EventStore,
    QueryStore,
    RecordEventStore,
    RecordQueryStore,
    StoredEvent,
    StoredQuery,
    StoredSnapshot,
)
from cqrs_lab.stores.memory import MemoryEventStore, MemoryQueryStore

__all__ = [
    "DuckDBEventStore",
    "DuckDBQueryStore",
    "EventStore",
    "MemoryEventStore",
    "MemoryQueryStore",
    "PostgresEventStore",
    "PostgresQueryStore",
    "QueryStore",
    "RecordEventStore",
    "RecordQueryStore",
    "StoredEvent",
    "StoredQuery",
    "StoredSnapshot",
]

_LAZY = {
    "DuckDBEventStore": "cqrs_lab.stores.duckdb",
    "DuckDBQueryStore": "cqrs_lab.stores.duckdb",
    "PostgresEventStore": "cqrs_lab.stores.postgres",
    "PostgresQueryStore": "cqrs_lab.stores.postgres",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cqrs_lab.stores' has no attribute {name!r}")
