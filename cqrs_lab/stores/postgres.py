"""PostgreSQL stores: for many processes (and machines) sharing one event log.

psycopg 3 with a ``psycopg_pool.ConnectionPool``; the DSN comes from the
constructor or ``CQRS_LAB_POSTGRES_DSN``. All tables live in one schema
(``cqrs_lab`` by default), created on first use. Payloads are JSONB, read back
as text so they decode exactly as they were written (Decimal as JSON text,
never through a float).

Global order. ``position`` is the order in which commits become visible, and a
reader tailing it (``read_all(after_position=last_seen)``) must never skip an
event that a concurrent transaction commits later. With a plain sequence that
could happen: transaction A takes position 7, B takes 8 and commits first, a
reader sees 8, moves its checkpoint past 7, and A's event is lost to it. Here
every commit (and import) is ONE statement that first updates the single row of
``log_head`` and takes its positions from it::

    WITH head AS (UPDATE log_head SET position = position + n RETURNING ...)
    INSERT INTO events SELECT head.base + e.n, ... FROM head, (VALUES (1, ...), (2, ...)) AS e

The row lock on ``log_head`` is held until the transaction ends, and PostgreSQL
makes a commit visible before it releases the transaction's locks. So the next
writer gets its positions only after the previous one is visible (READ
COMMITTED re-reads the updated row after waiting for it): positions become
visible strictly in order, without gaps, and a failed commit gives its
positions back. The price is that commits to one schema are serialized, for
the few milliseconds of the insert — the same trade-off as a table lock, at
row granularity, in the same round trip as the insert. ``GREATEST(position,
max(events.position))`` keeps the head right even if rows were inserted around
it with plain SQL.

Live readers. The same statement sends ``NOTIFY cqrs_lab_events`` (payload: the
quoted schema) from the commit's own transaction, so PostgreSQL delivers it
only once the events are visible; a projection's batch sends
``cqrs_lab_checkpoints`` the same way. In each process, one connection per
store pool and schema LISTENs while anybody waits (``subscribe``,
``Projection.wait_for``, workers) and wakes them; they also re-read every
``POLL_INTERVAL`` seconds (``cqrs_lab.subscriptions``), so a notification lost
with a dropped connection delays a reader, never stalls it.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from cqrs_lab.codec import EventCodec, StoredEvent
from cqrs_lab.domain import Event
from cqrs_lab.errors import (
    ConcurrencyError,
    ConfigurationError,
    CqrsLabError,
    InvalidImportError,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
    UnstorableEventError,
)
from cqrs_lab.pg_server import DSN_ENV
from cqrs_lab.stores import _sql
from cqrs_lab.stores.base import (
    EVENT_COLUMNS,
    RecordCodec,
    RecordEventStore,
    RecordQueryStore,
    StoredCommand,
    StoredDeadline,
    StoredProcess,
    StoredQuery,
    StoredSnapshot,
    checkpoint_conflict,
    command_conflict,
    import_conflict,
    process_conflict,
    validate_identifier,
)
from cqrs_lab.subscriptions import POLL_INTERVAL, Signal

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "DSN_ENV",
    "DSN_SOURCES",
    "NOT_CREATED",
    "PostgresEventStore",
    "PostgresQueryStore",
    "ProjectionLeases",
    "classify_error",
]

DSN_SOURCES = f"the dsn argument or ${DSN_ENV}"
"""Where a DSN comes from, as error messages say it (the command line says ``--dsn``)."""
NOT_CREATED = "check the schema name (a store opened with create=False does not create it)"
"""What the error for a missing schema says to do (the command line says ``--schema``)."""

DEFAULT_SCHEMA = "cqrs_lab"
_IMPORT_BATCH = 10_000
_FIRST = itemgetter(0)
_EXPORT_BATCH = 10_000
_log = logging.getLogger(__name__)

EVENTS_CHANNEL = "cqrs_lab_events"
CHECKPOINTS_CHANNEL = "cqrs_lab_checkpoints"

# PostgreSQL only: the log head, and commits that take their positions from it.
_HEAD_TABLES = (
    """CREATE TABLE IF NOT EXISTS {schema}.log_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        position BIGINT NOT NULL
    )""",
    "INSERT INTO {schema}.log_head (id, position) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
)
_TAKE_POSITIONS = """
    WITH head AS (
        UPDATE {schema}.log_head
        SET position = GREATEST(position, (SELECT coalesce(max(position), 0) FROM {schema}.events)) + ?
        RETURNING position - ? AS base, pg_notify('cqrs_lab_events', '{schema}')
    )"""
_INSERT_EVENTS = f"""{_TAKE_POSITIONS}
    INSERT INTO {{schema}}.events ({_sql.EVENT_COLUMN_LIST})
    SELECT head.base + e.n, e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version,
           e.payload::JSONB, e.metadata::JSONB, e.recorded_at, e.event_id
    FROM head, unnest(?::TEXT[], ?::TEXT[], ?::BIGINT[], ?::TEXT[], ?::TEXT[], ?::TEXT[], ?::TEXT[],
                      ?::TIMESTAMPTZ[], ?::TEXT[])
        WITH ORDINALITY AS e(aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata, recorded_at, event_id, n)
    RETURNING position"""
# Commits of up to this many events use one multi-row VALUES statement per row
# count (cached, so psycopg prepares it on the server after a few uses); the
# parameters are plain scalars, which psycopg adapts much faster than lists.
# Larger ones (PostgreSQL allows 65,535 parameters) send one array per column.
_VALUES_ROWS = 1000
_VALUES_ROW = "(%s, %s, %s, %s::BIGINT, %s, %s, %s::JSONB, %s::JSONB, %s::TIMESTAMPTZ, %s)"


@lru_cache(maxsize=64)
def _insert_values(schema: str, rows: int) -> str:
    """The commit of ``rows`` events as one statement: positions from the log head, then VALUES."""
    quoted = sql.Identifier(schema).as_string()
    head = _sql.render(_TAKE_POSITIONS, schema=quoted, json="JSONB").replace("?", str(rows))
    values = ", ".join(_VALUES_ROW.replace("(%s,", f"({n},", 1) for n in range(1, rows + 1))
    return f"""{head}
    INSERT INTO {quoted}.events ({_sql.EVENT_COLUMN_LIST})
    SELECT head.base + e.n, e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version,
           e.payload, e.metadata, e.recorded_at, e.event_id
    FROM head, (VALUES {values})
        AS e(n, aggregate_type, aggregate_id, sequence, event_type, event_version,
             payload, metadata, recorded_at, event_id)
    RETURNING position"""


def insert_statement(q: _Statements, records: Sequence[StoredEvent]) -> tuple[str, list[Any]]:
    """The statement committing ``records`` (positions from the log head, NOTIFY) and its parameters."""
    n = len(records)
    if n <= _VALUES_ROWS:
        return _insert_values(q.schema, n), [value for r in records for value in r.values()]
    columns = zip(*(r.values() for r in records), strict=True)
    return q.insert_events, [n, n, *(list(column) for column in columns)]


_TAKE_IMPORT_POSITIONS = _TAKE_POSITIONS + " SELECT base FROM head"
_COPY_EVENTS = f"COPY {{schema}}.events ({_sql.EVENT_COLUMN_LIST}) FROM STDIN"
_EVENT_EXISTS = "SELECT 1 FROM {schema}.events WHERE aggregate_type = ? AND aggregate_id = ? AND sequence = ?"
# "Key (aggregate_type, aggregate_id, sequence)=(Ledger, a-1, 3) already exists."
_KEY_DETAIL = re.compile(r"\)=\(([^,]*), (.*), (\d+)\) already exists")
_NOTIFY_CHECKPOINT = "SELECT pg_notify('cqrs_lab_checkpoints', '{schema}')"
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('cqrs_lab migrate ' || ?))"
# The last stored sequence of each stream an import writes to, for all of them at once.
_STREAM_HEADS = """
    SELECT s.n, max(e.sequence) FROM unnest(?::TEXT[], ?::TEXT[]) WITH ORDINALITY AS s(t, id, n)
    JOIN {schema}.events AS e ON e.aggregate_type = s.t AND e.aggregate_id = s.id GROUP BY s.n"""
# A pooled connection unused this long is checked (one empty query) before it is handed
# out, so connections a restarted server or pg_terminate_backend closed are replaced
# instead of failing a call; a busy store pays nothing.
_CHECK_IDLE_AFTER = 1.0


@dataclass(frozen=True)
class _Statements:
    """Every statement of one schema, rendered once."""

    schema: str
    create: tuple[str, ...]
    table_exists: str
    schema_version: str
    stamp: str
    migration_lock: str
    load_stream: str
    load_stream_events: str
    load_snapshot_and_stream: str
    read_all: str
    stream_version: str
    insert_events: str
    export: str
    take_positions: str
    copy_events: str
    event_exists: str
    stream_heads: str
    load_snapshot: str
    upsert_snapshot: str
    load_query: str
    load_queries: str
    update_queries: str
    insert_queries: str
    delete_queries: str
    load_checkpoint: str
    notify_checkpoint: str
    delete_checkpoint: str
    insert_command: str
    load_command: str
    load_processes: str
    update_processes: str
    insert_processes: str
    start_checkpoint: str
    move_checkpoint: str
    delete_deadlines: str
    insert_deadlines: str
    load_deadlines: str
    load_due_deadlines: str


@lru_cache(maxsize=32)
def _statements(schema: str) -> _Statements:
    quoted = sql.Identifier(schema).as_string()

    def r(template: str) -> str:
        return _sql.render(template, schema=quoted, json="JSONB", placeholder="%s")

    return _Statements(
        schema=schema,
        create=(
            f"CREATE SCHEMA IF NOT EXISTS {quoted}",
            *(r(t) for t in _sql.CREATE_TABLES),
            *(r(t) for t in _HEAD_TABLES),
        ),
        table_exists=r(_sql.TABLE_EXISTS),
        schema_version=r(_sql.LOAD_SCHEMA_VERSION),
        stamp=r(_sql.STAMP_SCHEMA_VERSION),
        migration_lock=r(_MIGRATION_LOCK),
        load_stream=r(_sql.LOAD_STREAM),
        load_stream_events=r(_sql.LOAD_STREAM_EVENTS),
        load_snapshot_and_stream=r(_sql.LOAD_SNAPSHOT_AND_STREAM),
        read_all=r(_sql.READ_ALL),
        stream_version=r(_sql.STREAM_VERSION),
        insert_events=r(_INSERT_EVENTS),
        export=r(_sql.EXPORT),
        take_positions=r(_TAKE_IMPORT_POSITIONS),
        copy_events=r(_COPY_EVENTS),
        event_exists=r(_EVENT_EXISTS),
        stream_heads=r(_STREAM_HEADS),
        load_snapshot=r(_sql.LOAD_SNAPSHOT),
        upsert_snapshot=r(_sql.UPSERT_SNAPSHOT),
        load_query=r(_sql.LOAD_QUERY),
        load_queries=r(_sql.LOAD_QUERIES),
        update_queries=r(_sql.UPDATE_QUERIES),
        insert_queries=r(_sql.INSERT_QUERIES),
        delete_queries=r(_sql.DELETE_QUERIES),
        load_checkpoint=r(_sql.LOAD_CHECKPOINT),
        notify_checkpoint=r(_NOTIFY_CHECKPOINT),
        delete_checkpoint=r(_sql.DELETE_CHECKPOINT),
        insert_command=r(_sql.INSERT_COMMAND),
        load_command=r(_sql.LOAD_COMMAND),
        load_processes=r(_sql.LOAD_PROCESSES),
        update_processes=r(_sql.UPDATE_PROCESSES),
        insert_processes=r(_sql.INSERT_PROCESSES),
        start_checkpoint=r(_sql.START_CHECKPOINT),
        move_checkpoint=r(_sql.MOVE_CHECKPOINT),
        delete_deadlines=r(_sql.DELETE_DEADLINES),
        insert_deadlines=r(_sql.INSERT_DEADLINES),
        load_deadlines=r(_sql.LOAD_DEADLINES),
        load_due_deadlines=r(_sql.LOAD_DUE_DEADLINES),
    )


def _resolve_dsn(dsn: str | None) -> str:
    value = dsn if dsn is not None else os.environ.get(DSN_ENV)
    if not value:
        raise ConfigurationError(
            f"no PostgreSQL DSN: give one ({DSN_SOURCES}), e.g. postgresql://user:password@host:5432/dbname"
        )
    return value


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def classify_error(exc: psycopg.Error, label: str, what: str) -> CqrsLabError:
    """A psycopg error as the cqrs_lab error that says what to do, by its SQLSTATE class:
    connection trouble is transient (``StoreUnavailableError``), a serialization failure
    or deadlock is a lost race (``ConcurrencyError``), a value PostgreSQL cannot hold is
    ``UnstorableEventError``, and the rest (timeouts, a full disk, missing rights) is a
    ``StoreError`` saying which."""
    state = exc.sqlstate or ""
    text = _one_line(exc)
    on = f"({label}) trying to {what}"
    if state.startswith("08") or state in ("57P01", "57P02", "57P03") or (
        not state and isinstance(exc, psycopg.OperationalError)
    ):
        unsure = (
            " If the connection dropped while the commit was being confirmed, it may have been "
            "stored: repeat the command with the same command_id (it is then stored once), or "
            "load the aggregate (or read the log) before repeating it."
            if "commit" in what or "import" in what
            else ""
        )
        return StoreUnavailableError(
            f"lost the PostgreSQL connection {on}: {text}.{unsure} Check that the server is up; "
            "the store reconnects by itself when it is back."
        )
    if state == "53300":
        return StoreUnavailableError(
            f"PostgreSQL has no connection free {on}: {text}. Retry later, or lower pool_size "
            "(or raise the server's max_connections)."
        )
    if state.startswith("40"):
        return ConcurrencyError(
            f"PostgreSQL aborted the transaction {on} because of a concurrent one ({text}); nothing "
            "was written. Retry."
        )
    if state == "57014":
        return StoreError(
            f"PostgreSQL cancelled the statement {on}: {text}. That is the statement_timeout of the "
            "server, database or user (or a cancel request); nothing was written. Raise "
            "statement_timeout, or find what held the locks it waited for."
        )
    if state == "55P03":
        return StoreError(
            f"PostgreSQL could not get a lock in time {on}: {text}. That is lock_timeout; nothing was "
            "written. Raise lock_timeout, or find the transaction that held the lock."
        )
    if state == "53100":
        return StoreError(
            f"the PostgreSQL server's disk is full {on}: {text}. Nothing was written; free space on the "
            "server and try again."
        )
    if state.startswith("53"):
        return StoreError(f"the PostgreSQL server ran out of resources {on}: {text}. Nothing was written.")
    if state == "42501":
        return StoreError(
            f"the PostgreSQL user lacks the rights {on}: {text}. Grant it USAGE and CREATE on the schema "
            "and SELECT, INSERT, UPDATE, DELETE on its tables, or use another user."
        )
    if state == "25006":
        return StoreError(
            f"the PostgreSQL server is read-only {on} (a standby?): {text}. Connect to the primary."
        )
    if state == "22P05":
        return UnstorableEventError(
            f"PostgreSQL refused the data {on}: {text}. JSONB cannot hold the NUL character (\\u0000) "
            "in strings; remove it from the event or view. Nothing was stored."
        )
    if state.startswith("54"):
        return UnstorableEventError(
            f"PostgreSQL refused the data {on}: {text}. A value is beyond a PostgreSQL limit (an index "
            "entry, or a JSON document too large or too deep); nothing was stored."
        )
    if state.startswith("22") or isinstance(exc, psycopg.DataError):
        return UnstorableEventError(
            f"PostgreSQL refused a value {on}: {text}. Nothing was stored."
        )
    if state.startswith("23"):
        return StoreError(f"a PostgreSQL constraint refused the write {on}: {text}. Nothing was written.")
    return StoreError(f"PostgreSQL failed {on}: {text}")


def _describe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"the PostgreSQL DSN is not valid: {exc}") from exc
    shown = [f"{k}={parts[k]}" for k in ("host", "port", "dbname", "user") if parts.get(k)]
    return " ".join(shown) or "the default server"


def connect(dsn: str, label: str, timeout: float, **options: Any) -> psycopg.Connection[Any]:
    """A direct autocommit connection; a failure says why, as a cqrs_lab error."""
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, math.ceil(timeout)), **options)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(
            f"cannot connect to PostgreSQL ({label}): {_one_line(exc)}. Check the DSN "
            f"({DSN_SOURCES}) and that the server is running."
        ) from exc
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"the PostgreSQL DSN is not valid: {exc}") from exc


class _Pool:
    """A connection pool shared by the stores of one database; closed with its last user."""

    def __init__(self, dsn: str, pool_size: int, connect_timeout: float) -> None:
        if pool_size < 1:
            raise ConfigurationError(f"pool_size must be 1 or more, not {pool_size}")
        if connect_timeout <= 0:
            raise ConfigurationError(f"connect_timeout must be positive, not {connect_timeout}")
        self.label = _describe(dsn)
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self.users = 1
        self.lock = threading.Lock()
        self.listeners: dict[str, _Listener] = {}
        self.used_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float]
        self.used_at = weakref.WeakKeyDictionary()  # a pooled connection's last checkout
        # One direct connection first: it fails fast with the server's own reason
        # (refused, unknown database, bad password) instead of a pool timeout.
        with self.connect():
            pass
        # Bounded and self-healing while the server is away: a call waits at most
        # connect_timeout for a connection (then StoreUnavailableError), and the pool
        # gives up its own reconnection attempts after connect_timeout / 2, so the
        # next call after the server is back starts a fresh attempt at once instead of
        # waiting out an exponential backoff.
        self.pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": self._timeout_seconds()},
            configure=self._configure,
            check=self._check,
            open=False,
            timeout=connect_timeout,
            reconnect_timeout=connect_timeout / 2,
            name=f"cqrs_lab {self.label}",
        )
        try:
            self.pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            self.pool.close()
            raise StoreUnavailableError(
                f"no PostgreSQL connection to {self.label} within {connect_timeout}s. "
                "Check that the server is running and reachable."
            ) from exc

    def _timeout_seconds(self) -> int:
        return max(1, math.ceil(self.connect_timeout))

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Each pooled connection works in UTC, whatever the server's default time zone."""
        conn.execute("SET TIME ZONE 'UTC'")
        self.used_at[conn] = time.monotonic()

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """Before handing out a connection unused for a while, make sure it still works.

        (Timed from its last checkout: a ``reset`` callback would time it from its
        return, but makes the pool return every connection through a worker thread.)
        """
        now = time.monotonic()
        if now - self.used_at.get(conn, 0.0) >= _CHECK_IDLE_AFTER:
            ConnectionPool.check_connection(conn)
        self.used_at[conn] = now

    def connect(self, **options: Any) -> psycopg.Connection[Any]:
        """A connection outside the pool (autocommit); ``options`` are more libpq parameters."""
        return connect(self.dsn, self.label, self.connect_timeout, **options)

    def listener(self, schema: str) -> _Listener:
        """The listening connection of ``schema`` (one per pool and schema)."""
        with self.lock:
            found = self.listeners.get(schema)
            if found is None:
                found = self.listeners[schema] = _Listener(self, schema)
            return found

    def acquire(self) -> _Pool:
        with self.lock:
            if self.users == 0:
                raise StoreError(f"the PostgreSQL store on {self.label} is closed; open a new one")
            self.users += 1
        return self

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0:
                self.pool.close()


class _Listener:
    """LISTENs to one schema's notifications while anybody in this process waits on them.

    A thread owns the connection and fires the ``Signal`` of each channel when a
    notification for the schema arrives. It stops (and closes the connection)
    within ``POLL_INTERVAL`` after the last waiter leaves. If the connection
    breaks it fires every signal (notifications may have been lost: the
    waiters re-read) and reconnects.
    """

    def __init__(self, pool: _Pool, schema: str) -> None:
        self.pool = pool
        self.schema = schema
        self.payload = sql.Identifier(schema).as_string()
        self.signals = {EVENTS_CHANNEL: Signal(), CHECKPOINTS_CHANNEL: Signal()}
        self.lock = threading.Lock()
        self.users = 0
        self.running = False

    @contextmanager
    def watch(self, channel: str) -> Iterator[Signal]:
        """The channel's signal, listened to for the duration of the block."""
        with self.lock:
            if not self.running:
                conn = self._listen()  # in the caller: a failure to connect is the caller's error
                name = f"cqrs_lab listen {self.schema}"
                threading.Thread(target=self._run, args=(conn,), name=name, daemon=True).start()
                self.running = True
            self.users += 1
        try:
            yield self.signals[channel]
        finally:
            with self.lock:
                self.users -= 1

    def _listen(self) -> psycopg.Connection[Any]:
        conn = self.pool.connect()
        try:
            for channel in self.signals:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except psycopg.Error as exc:
            conn.close()
            raise StoreUnavailableError(
                f"cannot LISTEN on PostgreSQL ({self.pool.label}): {str(exc).strip()}"
            ) from exc
        return conn

    def _fire_all(self) -> None:
        for signal in self.signals.values():
            signal.fire()

    def _run(self, conn: psycopg.Connection[Any] | None) -> None:
        while True:
            try:
                if conn is None:
                    conn = self._listen()
                    self._fire_all()  # anything committed while we were away is read now
                for note in conn.notifies(timeout=POLL_INTERVAL):
                    if note.payload == self.payload and note.channel in self.signals:
                        self.signals[note.channel].fire()
            except (psycopg.Error, CqrsLabError) as exc:
                if conn is not None:
                    conn.close()
                    conn = None
                with self.lock:
                    if self.users == 0:  # nobody waits: no need to reconnect (or to say so)
                        self.running = False
                        return
                _log.warning("listening connection to %s lost (%s); reconnecting", self.pool.label, exc)
                self._fire_all()
                time.sleep(POLL_INTERVAL)
            with self.lock:
                if self.users == 0:
                    self.running = False
                    if conn is not None:
                        conn.close()
                    return


def prepare(dsn: str, label: str, timeout: float, q: _Statements, create: bool = True) -> None:
    """Create the schema's tables on first use (unless ``create`` is false), or check
    its version stamp."""
    with connect(dsn, label, timeout) as conn:
        try:
            if _stamped(conn, q) == _sql.SCHEMA_VERSION:
                return
            if not create:
                raise StoreUnavailableError(
                    f"schema {q.schema!r} has no cqrs_lab tables in {label}: {NOT_CREATED}."
                )
            with conn.transaction():
                conn.execute(q.migration_lock, [q.schema])  # one process creates, the others wait
                if _stamped(conn, q) == _sql.SCHEMA_VERSION:
                    return
                for statement in q.create:
                    conn.execute(statement)
                conn.execute(q.stamp, [_sql.SCHEMA_VERSION])
        except CqrsLabError:
            raise
        except psycopg.Error as exc:
            if exc.sqlstate == "42501":
                raise StoreError(
                    f"cannot create the cqrs_lab tables in schema {q.schema!r} ({label}): "
                    f"{_one_line(exc)}. The user needs CREATE rights on the database, or an "
                    "administrator creates the schema once."
                ) from exc
            raise classify_error(exc, label, f"create the cqrs_lab tables in schema {q.schema!r}") from exc


def _stamped(conn: psycopg.Connection[Any], q: _Statements) -> int | None:
    row = conn.execute(q.table_exists, [q.schema]).fetchone()
    if not row or not row[0]:
        return None
    version = conn.execute(q.schema_version).fetchone()
    stamped = None if version is None else version[0]
    if stamped is not None and stamped > _sql.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"schema {q.schema!r} was written by a newer cqrs_lab (schema version {stamped}; this "
            f"one knows up to {_sql.SCHEMA_VERSION}). Upgrade cqrs_lab, or use another schema."
        )
    return None if stamped is None else int(stamped)


@contextmanager
def store_errors(label: str, what: str) -> Iterator[None]:
    """Driver and pool errors in the block become cqrs_lab errors saying what failed
    (``classify_error``)."""
    try:
        yield
    except CqrsLabError:
        raise
    except PoolClosed as exc:
        raise StoreError(f"the PostgreSQL store on {label} is closed; open a new one") from exc
    except PoolTimeout as exc:
        raise StoreUnavailableError(
            f"no PostgreSQL connection to {label} within connect_timeout to {what}: the server is down "
            "or unreachable, or every pooled connection is busy. Nothing was written. Check that the "
            "server is up (the store reconnects by itself when it is back), or raise pool_size or "
            "connect_timeout."
        ) from exc
    except psycopg.Error as exc:
        raise classify_error(exc, label, what) from exc
    except UnicodeEncodeError as exc:
        raise UnstorableEventError(
            f"PostgreSQL ({label}) cannot take the text to {what}: {exc}. Nothing was stored."
        ) from exc


def snapshot_and_stream(
    store: RecordCodec, aggregate_type: str, aggregate_id: str, rows: Sequence[tuple[Any, ...]]
) -> tuple[StoredSnapshot | None, list[tuple[int, str, Event]]]:
    """The rows of ``_sql.LOAD_SNAPSHOT_AND_STREAM`` as the snapshot and the decoded stream after it."""
    snapshot = None
    events = []
    for row in rows:
        if row[2] is None:
            snapshot = StoredSnapshot(aggregate_type, aggregate_id, row[0], row[4])
        else:
            events.append(row)
    events.sort(key=_FIRST)  # sequence
    return snapshot, store._decode_stream(aggregate_type, aggregate_id, events)


class _PostgresStore:
    """What both PostgreSQL stores share: the pool, error mapping and ``close()``."""

    _pool: _Pool
    _q: _Statements

    @property
    def schema(self) -> str:
        return self._q.schema

    @contextmanager
    def _connection(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; driver errors become cqrs_lab errors saying what failed."""
        with store_errors(self._pool.label, what), self._pool.pool.connection() as conn:
            yield conn

    def _hold(self, pool: _Pool) -> None:
        """Use ``pool``; released by ``close()`` or, failing that, when this object is collected."""
        self._pool = pool
        self._finalizer = weakref.finalize(self, pool.release)

    def close(self) -> None:
        """Release this store; the pool closes when its last store does. Idempotent."""
        self._finalizer()

    def _watch(self, channel: str) -> AbstractContextManager[Signal]:
        return self._pool.listener(self.schema).watch(channel)


class PostgresEventStore(_PostgresStore, RecordEventStore):
    """Event store in a PostgreSQL schema, shared safely by many processes.

    ``dsn`` defaults to ``$CQRS_LAB_POSTGRES_DSN``. A wrong DSN or a server that
    is down raises ``StoreUnavailableError`` within ``connect_timeout`` seconds, on
    opening and on every call while it stays down; when it is back, the same store
    works again. ``create=False`` never creates the schema or its tables (a missing
    one is a ``StoreUnavailableError`` naming it): for tools that only read.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        schema: str = DEFAULT_SCHEMA,
        codec: EventCodec | None = None,
        pool_size: int = 4,
        connect_timeout: float = 5.0,
        create: bool = True,
    ) -> None:
        RecordEventStore.__init__(self, codec)
        self._q = _statements(validate_identifier(schema))
        self._hold(_Pool(_resolve_dsn(dsn), pool_size, connect_timeout))
        try:
            prepare(self._pool.dsn, self._pool.label, self._pool.connect_timeout, self._q, create)
        except BaseException:
            self.close()
            raise

    # -- hooks ------------------------------------------------------------
    def _load_records(self, aggregate_type: str, aggregate_id: str, after_sequence: int) -> list[StoredEvent]:
        with self._connection("load events") as conn:
            cursor = conn.execute(self._q.load_stream, [aggregate_type, aggregate_id, after_sequence])
            rows = cursor.fetchall()
        return [StoredEvent(*row) for row in rows]

    def _load_stream_rows(
        self, aggregate_type: str, aggregate_id: str, after_sequence: int
    ) -> Sequence[tuple[int, Any, str, str, Any]]:
        with self._connection("load events") as conn:
            cursor = conn.execute(self._q.load_stream_events, [aggregate_type, aggregate_id, after_sequence])
            return cursor.fetchall()

    def load_snapshot_and_stream(
        self, aggregate_type: str, aggregate_id: str
    ) -> tuple[StoredSnapshot | None, list[tuple[int, str, Event]]]:
        """The latest snapshot and the events after it, in one round trip."""
        key = [aggregate_type, aggregate_id]
        with self._connection("load a snapshot and events") as conn:
            rows = conn.execute(self._q.load_snapshot_and_stream, key + key).fetchall()
        return snapshot_and_stream(self, aggregate_type, aggregate_id, rows)

    def _read_records(self, after_position: int, limit: int) -> list[StoredEvent]:
        with self._connection("read the event log") as conn:
            rows = conn.execute(self._q.read_all, [after_position, limit]).fetchall()
        return [StoredEvent(*row) for row in rows]

    def load_snapshot(self, aggregate_type: str, aggregate_id: str) -> StoredSnapshot | None:
        with self._connection("load a snapshot") as conn:
            row = conn.execute(self._q.load_snapshot, [aggregate_type, aggregate_id]).fetchone()
        return None if row is None else StoredSnapshot(*row)

    def load_command(self, aggregate_type: str, aggregate_id: str, command_id: str) -> StoredCommand | None:
        with self._connection("load a command") as conn:
            row = conn.execute(self._q.load_command, [aggregate_type, aggregate_id, command_id]).fetchone()
        return None if row is None else StoredCommand(*row)

    def _append_records(
        self,
        records: Sequence[StoredEvent],
        snapshot: StoredSnapshot | None,
        command: StoredCommand | None = None,
    ) -> list[int]:
        statement, params = insert_statement(self._q, records)
        with self._connection("commit events") as conn:
            try:
                if snapshot is None and command is None:
                    # One statement in autocommit mode: its own transaction, one round trip.
                    rows = conn.execute(statement, params).fetchall()
                else:
                    with conn.transaction():
                        rows = conn.execute(statement, params).fetchall()
                        if snapshot is not None:
                            conn.execute(
                                self._q.upsert_snapshot,
                                [
                                    snapshot.aggregate_type,
                                    snapshot.aggregate_id,
                                    snapshot.version,
                                    snapshot.payload,
                                ],
                            )
                        if command is not None:
                            conn.execute(self._q.insert_command, command.values())
            except pg_errors.UniqueViolation as exc:
                if command is not None and conn.execute(self._q.load_command, command.key()).fetchone():
                    raise ConcurrencyError(command_conflict(command)) from exc
                first = records[0]
                key = [first.aggregate_type, first.aggregate_id]
                row = conn.execute(self._q.stream_version, key).fetchone()
                raise ConcurrencyError(_sql.conflict_message(records, row[0] if row else 0)) from exc
        return sorted(int(row[0]) for row in rows)

    def _watch_commits(self) -> AbstractContextManager[Signal]:
        return self._watch(EVENTS_CHANNEL)

    # -- bulk -------------------------------------------------------------
    def _stream_heads(self, aggregate_types: list[str], aggregate_ids: list[str]) -> list[int]:
        heads = [0] * len(aggregate_ids)
        with self._connection("look up the streams to import") as conn:
            for n, head in conn.execute(self._q.stream_heads, [aggregate_types, aggregate_ids]).fetchall():
                heads[n - 1] = int(head)
        return heads

    def _insert_import(self, table: pa.Table) -> int:
        """Append a checked event table atomically: positions from ``log_head``, then COPY into ``events``.

        One transaction: the log head is moved by the row count (its lock held to
        the commit, as for any commit), and the rows are copied straight into the
        events table in position order, 10,000 at a time, so only one batch is
        ever held as Python objects. A taken sequence (or one twice in the input)
        violates the table's key; the transaction is rolled back and only then is
        the key looked up, to say which case it was.
        """
        from cqrs_lab.stores.arrow import invalid_json, number_positions

        n = table.num_rows
        with self._connection("import events") as conn:
            try:
                with conn.transaction():
                    row = conn.execute(self._q.take_positions, [n, n]).fetchone()
                    assert row is not None
                    numbered = number_positions(table, int(row[0]))
                    with conn.cursor() as cursor, cursor.copy(self._q.copy_events) as copy:
                        for batch in numbered.to_batches(max_chunksize=_IMPORT_BATCH):
                            columns = [batch.column(name).to_pylist() for name in EVENT_COLUMNS]
                            for values in zip(*columns, strict=True):
                                copy.write_row(values)
            except pg_errors.UniqueViolation as exc:
                raise self._import_conflict(conn, exc) from exc
            except (pg_errors.InvalidTextRepresentation, pg_errors.InvalidParameterValue) as exc:
                raise invalid_json(table) or InvalidImportError(
                    f"cannot import: a payload or metadata value is not valid JSON ({str(exc).strip()}). "
                    "Nothing was imported."
                ) from exc
        return int(n)

    def _import_conflict(
        self, conn: psycopg.Connection[Any], exc: pg_errors.UniqueViolation
    ) -> ConcurrencyError:
        """Which key a refused import hit (read from the error, checked after the rollback)."""
        found = _KEY_DETAIL.search(exc.diag.message_detail or "")
        if found is None:
            return ConcurrencyError(
                "cannot import: some of these events are already stored or appear twice in the "
                f"input ({str(exc).strip()}). Nothing was imported."
            )
        aggregate_type, aggregate_id, sequence = found.groups()
        stored = conn.execute(self._q.event_exists, [aggregate_type, aggregate_id, int(sequence)]).fetchone()
        return ConcurrencyError(import_conflict(aggregate_type, aggregate_id, sequence, stored is not None))

    def export_arrow(self, after_position: int = 0) -> pa.Table:
        """The log after ``after_position`` as an Arrow table, fetched in batches."""
        import pyarrow as pa

        from cqrs_lab.stores.arrow import event_arrow_schema

        schema = event_arrow_schema()
        batches = []
        with self._connection("export events") as conn, conn.transaction():
            cursor = conn.cursor("cqrs_lab_export")
            cursor.execute(self._q.export, [after_position])
            while rows := cursor.fetchmany(_EXPORT_BATCH):
                columns = zip(*rows, strict=True)
                arrays = [pa.array(values, type=f.type) for values, f in zip(columns, schema, strict=True)]
                batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
            cursor.close()
        return pa.Table.from_batches(batches, schema=schema)

    def __repr__(self) -> str:
        return f"PostgresEventStore({self._pool.label!r}, schema={self.schema!r})"


class PostgresQueryStore(_PostgresStore, RecordQueryStore):
    """Views and checkpoints in a PostgreSQL schema.

    Give it the ``PostgresEventStore`` to share its pool (and, by default, its
    schema), or a DSN (``None`` reads ``$CQRS_LAB_POSTGRES_DSN``). ``create=False``
    as for ``PostgresEventStore``.
    """

    def __init__(
        self,
        dsn_or_event_store: str | PostgresEventStore | None = None,
        *,
        schema: str | None = None,
        pool_size: int = 4,
        connect_timeout: float = 5.0,
        create: bool = True,
    ) -> None:
        if isinstance(dsn_or_event_store, PostgresEventStore):
            name = schema if schema is not None else dsn_or_event_store.schema
            self._q = _statements(validate_identifier(name))
            self._hold(dsn_or_event_store._pool.acquire())
        else:
            self._q = _statements(validate_identifier(schema if schema is not None else DEFAULT_SCHEMA))
            self._hold(_Pool(_resolve_dsn(dsn_or_event_store), pool_size, connect_timeout))
        try:
            prepare(self._pool.dsn, self._pool.label, self._pool.connect_timeout, self._q, create)
        except BaseException:
            self.close()
            raise

    def _load_query(self, query_type: str, view_id: str) -> StoredQuery | None:
        with self._connection("load a view") as conn:
            row = conn.execute(self._q.load_query, [query_type, view_id]).fetchone()
        return None if row is None else StoredQuery(*row)

    def _load_queries(self, query_type: str, view_ids: Sequence[str]) -> list[StoredQuery]:
        with self._connection("load views") as conn:
            rows = conn.execute(self._q.load_queries, [query_type, list(view_ids)]).fetchall()
        return [StoredQuery(*row) for row in rows]

    def _commit_queries(
        self, records: Sequence[StoredQuery], checkpoint: tuple[str, int, int] | None
    ) -> None:
        new, old = _sql.query_batches(records)
        with self._connection("commit views") as conn:
            try:
                with conn.transaction():
                    if checkpoint is not None:
                        # first: its row lock makes a racing batch of this projection wait, then fail here
                        name, expected, position = checkpoint
                        if not self._move_checkpoint(conn, name, (expected, position)):
                            raise ConcurrencyError(checkpoint_conflict(name, expected))
                        conn.execute(self._q.notify_checkpoint)
                    written: set[tuple[str, str]] = set()
                    if old[0]:
                        written.update(conn.execute(self._q.update_queries, old).fetchall())
                    if new[0]:
                        written.update(conn.execute(self._q.insert_queries, new).fetchall())
                    if len(written) != len(records):
                        raise ConcurrencyError(_sql.view_conflict_message(records, written))
            except pg_errors.UniqueViolation as exc:
                raise ConcurrencyError(
                    "another writer created some of these views at the same time; nothing of this "
                    "batch was written. Reload the views and apply the events again."
                ) from exc

    def load_checkpoint(self, name: str) -> int:
        with self._connection("load a checkpoint") as conn:
            row = conn.execute(self._q.load_checkpoint, [name]).fetchone()
        return 0 if row is None else int(row[0])

    def _watch_checkpoints(self) -> AbstractContextManager[Signal]:
        return self._watch(CHECKPOINTS_CHANNEL)

    def reset(self, query_types: Sequence[str], *, checkpoint: str | None = None) -> None:
        with self._connection("reset views") as conn, conn.transaction():
            conn.execute(self._q.delete_queries, [list(query_types)])
            if checkpoint is not None:
                conn.execute(self._q.delete_checkpoint, [checkpoint])

    def load_processes(self, name: str, process_ids: Iterable[str]) -> list[StoredProcess]:
        with self._connection("load process states") as conn:
            rows = conn.execute(self._q.load_processes, [name, list(dict.fromkeys(process_ids))]).fetchall()
        return [StoredProcess(*row) for row in rows]

    def load_deadlines(self, name: str, *, due_by: datetime | None = None) -> list[StoredDeadline]:
        with self._connection("load deadlines") as conn:
            if due_by is None:
                rows = conn.execute(self._q.load_deadlines, [name]).fetchall()
            else:
                rows = conn.execute(self._q.load_due_deadlines, [name, due_by]).fetchall()
        return [StoredDeadline(*row) for row in rows]

    def commit_processes(
        self,
        name: str,
        states: Sequence[StoredProcess],
        *,
        deadlines: Sequence[StoredDeadline] = (),
        cancelled: Sequence[tuple[str, str]] = (),
        checkpoint: tuple[int, int] | None = None,
    ) -> None:
        new, old = _sql.process_batches(states)
        removed = [*cancelled, *((d.process_id, d.deadline) for d in deadlines)]
        with self._connection("commit process states") as conn:
            try:
                with conn.transaction():
                    written = 0
                    if old[0]:
                        written += len(conn.execute(self._q.update_processes, [*old, name]).fetchall())
                    if new[0]:
                        written += len(conn.execute(self._q.insert_processes, [name, *new]).fetchall())
                    if written != len(states) or (
                        checkpoint is not None and not self._move_checkpoint(conn, name, checkpoint)
                    ):
                        raise ConcurrencyError(process_conflict(name))
                    if checkpoint is not None:
                        conn.execute(self._q.notify_checkpoint)
                    if removed:
                        conn.execute(
                            self._q.delete_deadlines, [name, [r[0] for r in removed], [r[1] for r in removed]]
                        )
                    if deadlines:
                        conn.execute(self._q.insert_deadlines, [name, *_sql.deadline_columns(deadlines)])
            except pg_errors.UniqueViolation as exc:
                raise ConcurrencyError(process_conflict(name)) from exc

    def _move_checkpoint(self, conn: psycopg.Connection[Any], name: str, checkpoint: tuple[int, int]) -> bool:
        expected, new = checkpoint
        if expected == 0:
            return conn.execute(self._q.start_checkpoint, [name, new]).fetchone() is not None
        return conn.execute(self._q.move_checkpoint, [new, name, expected]).fetchone() is not None

    def __repr__(self) -> str:
        return f"PostgresQueryStore({self._pool.label!r}, schema={self.schema!r})"


# -- projection leases ------------------------------------------------------------
# Session-level advisory locks, two-key form: (hashtext(namespace || schema), key).
_WORKERS = "cqrs_lab workers "
_PROJECTIONS = "cqrs_lab projections "
_JOIN = "SELECT pg_advisory_lock_shared(hashtext(%s), 0)"
_TAKE = "SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))"
_GIVE_BACK = "SELECT pg_advisory_unlock(hashtext(%s), hashtext(%s))"
_COUNT_WORKERS = """
    SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND objid = 0
      AND classid = hashtext(%s)::oid
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
OWNERS = """
    SELECT a.application_name, l.pid FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.classid = hashtext('cqrs_lab projections ' || %s)::oid AND l.objid = hashtext(%s)::oid
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
"""Which worker (its ``application_name``) and backend pid hold projection ``name`` of a schema."""


class ProjectionLeases:
    """Which worker runs which projection of one schema: PostgreSQL advisory locks.

    One connection (a session) per worker holds a shared lock saying "a worker
    is alive" and an exclusive lock per projection it runs. Locks die with the
    session: when a worker process is killed its socket closes and the server
    frees them at once; when the machine or the network goes away, TCP
    keepalives and ``tcp_user_timeout`` (set on both ends from ``lease``) make
    the server drop the session within about ``lease`` seconds. ``renew()``
    checks the session is still there: if it is not, the worker must stop at
    once, since another worker may already have taken its projections.
    """

    def __init__(self, query_store: PostgresQueryStore, *, lease: float, worker: str) -> None:
        self.schema = query_store.schema
        self.label = query_store._pool.label
        second = max(1, int(lease / 3))
        self._conn = query_store._pool.connect(
            application_name=f"cqrs_lab worker {worker}"[:63],
            keepalives=1,
            keepalives_idle=second,
            keepalives_interval=second,
            keepalives_count=2,
            tcp_user_timeout=int(lease * 1000),
        )
        try:
            for setting, value in (
                ("tcp_keepalives_idle", second),
                ("tcp_keepalives_interval", second),
                ("tcp_keepalives_count", 2),
                ("tcp_user_timeout", int(lease * 1000)),
            ):
                self._conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(setting), sql.Literal(value)))
            self._conn.execute(_JOIN, [_WORKERS + self.schema])
        except psycopg.Error as exc:
            self._conn.close()
            raise self._lost(exc) from exc

    def _lost(self, exc: psycopg.Error) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"lost the worker's PostgreSQL session ({self.label}): {str(exc).strip()}. Its projection "
            "leases are gone with it; the worker stops running them and joins again."
        )

    def _one(self, statement: str, params: Sequence[Any]) -> Any:
        try:
            row = self._conn.execute(statement, params).fetchone()
        except psycopg.Error as exc:
            self._conn.close()
            raise self._lost(exc) from exc
        assert row is not None
        return row[0]

    def workers(self) -> int:
        """How many workers (this one included) hold leases on this schema now."""
        return int(self._one(_COUNT_WORKERS, [_WORKERS + self.schema]))

    def take(self, name: str) -> bool:
        """Take projection ``name`` unless another worker holds it."""
        return bool(self._one(_TAKE, [_PROJECTIONS + self.schema, name]))

    def give_back(self, name: str) -> None:
        self._one(_GIVE_BACK, [_PROJECTIONS + self.schema, name])

    def renew(self) -> None:
        """Check the session (and so every lease) is still there; raise if it is not."""
        self._one("SELECT 1", [])

    def close(self) -> None:
        """End the session: every lease is given back."""
        self._conn.close()
