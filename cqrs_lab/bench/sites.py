"""Sites: a fresh, empty database for each run (a memory store, a DuckDB file, a Postgres schema)."""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cqrs_lab.bench.baselines import DuckDBRaw, MemoryRaw, PostgresRaw, Raw
from cqrs_lab.stores.base import EVENT_COLUMNS, EventStore, QueryStore

__all__ = [
    "ArrowStore",
    "DuckDBSite",
    "MemorySite",
    "Places",
    "PostgresSite",
    "Site",
    "create_tables",
    "fresh_site",
]


class ArrowStore(EventStore, Protocol):
    def import_arrow(self, data: Any) -> int: ...


class Site(ABC):
    """A fresh, empty database for one run, with the store's tables and raw access."""

    @abstractmethod
    def event_store(self) -> ArrowStore: ...

    @abstractmethod
    def query_store(self, event_store: Any) -> QueryStore: ...

    @abstractmethod
    def raw(self) -> Raw:
        """Raw access to the tables the store created (open and close a store first)."""

    @abstractmethod
    def count_events(self) -> int:
        """Rows in the events table (every store of this site closed)."""

    @abstractmethod
    def close(self) -> None:
        """Drop what the run created."""


class MemorySite(Site):
    def __init__(self) -> None:
        from cqrs_lab.stores.memory import MemoryEventStore

        self.store = MemoryEventStore()
        self.baseline: MemoryRaw | None = None

    def event_store(self) -> ArrowStore:
        return self.store

    def query_store(self, event_store: Any) -> QueryStore:
        from cqrs_lab.stores.memory import MemoryQueryStore

        return MemoryQueryStore()

    def raw(self) -> Raw:
        rows = [tuple(r[c] for c in EVENT_COLUMNS[1:]) for r in self.store.export_arrow().to_pylist()]
        self.baseline = MemoryRaw(rows)
        return self.baseline

    def count_events(self) -> int:
        if self.baseline is not None:
            return len(self.baseline.log)
        return int(self.store.export_arrow().num_rows)

    def close(self) -> None:
        """Nothing to drop: the data goes with the objects."""


class DuckDBSite(Site):
    def __init__(self, path: Path) -> None:
        self.path = path

    def event_store(self) -> ArrowStore:
        from cqrs_lab.stores.duckdb import DuckDBEventStore

        return DuckDBEventStore(str(self.path))

    def query_store(self, event_store: Any) -> QueryStore:
        from cqrs_lab.stores.duckdb import DuckDBQueryStore

        return DuckDBQueryStore(event_store)

    def raw(self) -> Raw:
        return DuckDBRaw(self.path)

    def count_events(self) -> int:
        import duckdb

        with duckdb.connect(str(self.path), read_only=True) as con:
            row = con.execute("SELECT count(*) FROM events").fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            path.unlink(missing_ok=True)


class PostgresSite(Site):
    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema

    def event_store(self) -> ArrowStore:
        from cqrs_lab.stores.postgres import PostgresEventStore

        return PostgresEventStore(self.dsn, schema=self.schema)

    def query_store(self, event_store: Any) -> QueryStore:
        from cqrs_lab.stores.postgres import PostgresQueryStore

        return PostgresQueryStore(event_store, schema=self.schema)

    def raw(self) -> Raw:
        return PostgresRaw(self.dsn, self.schema)

    def count_events(self) -> int:
        import psycopg

        with psycopg.connect(self.dsn) as con:
            row = con.execute(f'SELECT count(*) FROM "{self.schema}".events').fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


@dataclass(frozen=True, slots=True)
class Places:
    """Where the runs of one store live; picklable, so child processes get it too."""

    store: str
    workdir: str
    dsn: str | None

    def new_site(self) -> Site:
        name = f"bench_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        if self.store == "memory":
            return MemorySite()
        if self.store == "duckdb":
            return DuckDBSite(Path(self.workdir) / f"{name}.duckdb")
        assert self.dsn is not None
        return PostgresSite(self.dsn, name)


@contextmanager
def fresh_site(places: Places) -> Iterator[Site]:
    """A new site of ``places``, dropped when the block ends."""
    opened = places.new_site()
    try:
        yield opened
    finally:
        opened.close()


def create_tables(site: Site) -> None:
    """Let the store create its tables, so the raw baseline writes to the same layout."""
    site.event_store().close()
