"""Raw baselines: the least work a correct store must do, straight against each driver.

Each runs on the tables the store itself created (same columns and indexes, and
on Postgres the same ``log_head`` row), with the rows already serialized.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cqrs_lab.bench import data
from cqrs_lab.bench.data import INSERT_COLUMNS, Row
from cqrs_lab.bench.domain import Ledger, Posted
from cqrs_lab.errors import ConfigurationError
from cqrs_lab.stores.base import EVENT_COLUMNS

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["DuckDBRaw", "MemoryRaw", "PostgresRaw", "Raw", "SQLRaw", "in_position_order"]


class Raw(ABC):
    """The raw baseline of one store: direct driver calls on the store's own tables."""

    def prepare(self, aggregate_id: str, first_sequence: int, events: Sequence[Posted]) -> Any:
        """One command's input, prepared before timing starts (rows already serialized)."""
        return data.rows(aggregate_id, first_sequence, events)

    @abstractmethod
    def command(self, aggregate_id: str, prepared: Any) -> None:
        """SELECT the stream, then INSERT the command's rows in one transaction."""

    @abstractmethod
    def floor(self, prepared: Any) -> None:
        """Only INSERT the command's rows in one transaction: the engine's floor for a command
        on an aggregate whose state is already known (nothing is read)."""

    @abstractmethod
    def load(self, aggregate_id: str) -> list[Any]:
        """SELECT one stream's rows and decode their payloads with ``json.loads``."""

    @abstractmethod
    def read_all(self, batch_size: int) -> int:
        """Page through the whole log in position order; returns the rows read."""

    def load_from_snapshot(self, aggregate_id: str) -> list[Any]:
        """SELECT one stream's snapshot and the events after it, and decode every payload with
        ``json.loads``: the snapshot's first, then the events' in sequence order."""
        raise ConfigurationError(f"{type(self).__name__}: raw snapshot loads (W3) run on DuckDB and Postgres")

    def bulk(self, table: pa.Table) -> int:
        """Insert an event table the fastest way the driver offers; returns the count."""
        raise ConfigurationError(f"{type(self).__name__}: bulk import (W5) runs on DuckDB and Postgres only")

    def frame(self) -> pd.DataFrame:
        """The events table as a DataFrame, straight from the driver."""
        raise ConfigurationError(f"{type(self).__name__}: the DataFrame workload (W8) runs on DuckDB only")

    @abstractmethod
    def close(self) -> None: ...


class MemoryRaw(Raw):
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
            for row, event in zip(data.rows(aggregate_id, first_sequence, events), events, strict=True)
        ]

    def command(self, aggregate_id: str, prepared: Any) -> None:
        self.floor(prepared)

    def floor(self, prepared: Any) -> None:
        rows = [(*r[:5], r[5].model_dump_json(), *r[6:]) for r in prepared]
        self.log.extend(rows)
        self.streams.setdefault(rows[0][1], []).extend(rows)

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


def in_position_order(table: pa.Table) -> pa.Table:
    """``table`` sorted by its ``position`` column (as it is, when it already is)."""
    import numpy as np

    positions = table.column("position").to_numpy()
    return table if bool(np.all(positions[1:] > positions[:-1])) else table.sort_by("position")


class SQLRaw(Raw):
    """What the DuckDB and Postgres baselines share: the store's own SELECTs, and a log head.

    The SELECTs are the store's statements from ``cqrs_lab.stores._sql``, so both
    sides read the same columns (the DuckDB store leaves out a stream's ORDER BY
    and sorts in Python; the baseline keeps it). Positions are handed out from a
    head read once, as the stores do.
    """

    load_stream: str
    load_snapshot_and_stream: str
    read_page: str
    events: str
    head: int

    con: Any  # a DuckDB or psycopg connection: both run ``con.execute(sql, params).fetchall()``

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params).fetchall()  # type: ignore[no-any-return]

    def command(self, aggregate_id: str, prepared: Any) -> None:
        """Read the stream's rows, then insert the command's (what a command does uncached)."""
        self._fetch(self.load_stream, (Ledger.aggregate_type, aggregate_id, 0))
        self.floor(prepared)

    def _positioned(self, prepared: Sequence[Row]) -> list[Any]:
        params: list[Any] = []
        for position, row in enumerate(prepared, start=self.head + 1):
            params += (position, *row)
        return params

    def load(self, aggregate_id: str) -> list[Any]:
        rows = self._fetch(self.load_stream, (Ledger.aggregate_type, aggregate_id, 0))
        return [json.loads(r[4]) for r in rows]

    def load_from_snapshot(self, aggregate_id: str) -> list[Any]:
        """The Postgres store's one statement for a snapshot and its tail (the snapshot is the
        row whose ``event_type`` is NULL); the DuckDB store runs none or two."""
        key = (Ledger.aggregate_type, aggregate_id)
        rows = self._fetch(self.load_snapshot_and_stream, key + key)
        rows.sort(key=lambda r: (r[2] is not None, r[0]))
        return [json.loads(r[4]) for r in rows]

    def read_all(self, batch_size: int) -> int:
        done = position = 0
        while rows := self._fetch(self.read_page, (position, batch_size)):
            done += len(rows)
            position = rows[-1][-1]
        return done


class DuckDBRaw(SQLRaw):
    def __init__(self, path: Path) -> None:
        import duckdb

        from cqrs_lab.stores import _sql
        from cqrs_lab.stores.duckdb import commit_cursor

        self.con = duckdb.connect(str(path))
        self.con.execute("SET TimeZone = 'UTC'")
        # INSERTs go through the store's kind of commit connection (the optimizer off):
        # the floor is the least DuckDB needs.
        self.writer = commit_cursor(self.con)
        self.events = "main.events"
        self.load_stream = _sql.render(_sql.LOAD_STREAM_EVENTS, schema="main", json="JSON")
        self.load_snapshot_and_stream = _sql.render(_sql.LOAD_SNAPSHOT_AND_STREAM, schema="main", json="JSON")
        self.read_page = _sql.render(_sql.READ_ALL, schema="main", json="JSON")
        self.head = int(self._fetch(_sql.render(_sql.MAX_POSITION, schema="main", json="JSON"), ())[0][0])

    def floor(self, prepared: Any) -> None:
        # One statement in autocommit mode is one transaction.
        self.writer.execute(_insert_sql(self.events, len(prepared), "?"), self._positioned(prepared))
        self.head += len(prepared)

    def bulk(self, table: pa.Table) -> int:
        """Positions numbered in Arrow, then one streaming ``INSERT ... SELECT`` of the table."""
        import numpy as np
        import pyarrow as pa

        n = int(table.num_rows)
        numbered = in_position_order(table).set_column(
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
        frame: pd.DataFrame = self.con.execute(f"SELECT * FROM {self.events} ORDER BY position").df()
        return frame

    def close(self) -> None:
        self.writer.close()
        self.con.close()


class PostgresRaw(SQLRaw):
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
        self.load_snapshot_and_stream = _sql.render(
            _sql.LOAD_SNAPSHOT_AND_STREAM, schema=quoted, json="JSONB", placeholder="%s"
        )
        self.read_page = _sql.render(_sql.READ_ALL, schema=quoted, json="JSONB", placeholder="%s")
        self.head = 0

    def floor(self, prepared: Any) -> None:
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
            f" FROM head, (VALUES {values}) AS v({', '.join(INSERT_COLUMNS)}, n)"
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
                for batch in in_position_order(table).to_batches(max_chunksize=10_000):
                    columns = [batch.column(c).to_pylist() for c in INSERT_COLUMNS]
                    for values in zip(
                        range(position + 1, position + batch.num_rows + 1), *columns, strict=True
                    ):
                        copy.write_row(values)
                    position += batch.num_rows
        return n

    def close(self) -> None:
        self.con.close()
