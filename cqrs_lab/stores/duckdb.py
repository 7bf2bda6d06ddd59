"""DuckDB stores: the embedded default, with an event log you can query with SQL.

Events, snapshots, views and projection checkpoints live in one database file
(or ``":memory:"``). DuckDB lets one process open a file read-write; other
processes may open it ``read_only=True`` only while no process writes it.

Every store object on the same database in this process shares one connection,
one lock and one log head (``_Database``). Since only one process can write a
file, that lock serializes every cqrs_lab write to it: positions are handed out
in commit order, without gaps and without asking for ``max(position)`` on every
commit, and a reader tailing ``position`` cannot skip an event. (It is also why
the stores do not rely on DuckDB's optimistic concurrency between connections:
an UPDATE of a row another connection has updated but not committed is not
always refused on tables with a primary key.)

The same reasoning lets a writable database remember, per stream, what this
process has read or written: the stream's last (sequence, event id) and its
latest snapshot (``_Knowledge``). Every statement costs DuckDB a fixed fraction
of a millisecond, so a command on a cached aggregate then needs one statement
(its INSERT) instead of two, and a snapshot load none or one instead of two.
Knowledge is only what a read under the lock returned or a commit made true;
it starts empty whenever the database is opened (so another process's earlier
writes are read, not assumed), is dropped for a stream whose commit was refused,
and is dropped entirely by an import and by ``sql()`` on a writable database, and
not used while a relation ``sql()`` returned is alive (raw SQL may write).
Writes that go around the stores (another connection to the file in this
process) are not seen by it.
"""

from __future__ import annotations

import re
import stat
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import duckdb

from cqrs_lab.codec import EventCodec, StoredEvent
from cqrs_lab.domain import Event
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import (
    ConcurrencyError,
    ConfigurationError,
    InvalidImportError,
    SchemaVersionError,
    StoreError,
    StoreLockedError,
    StoreUnavailableError,
)
from cqrs_lab.stores import _sql
from cqrs_lab.stores.base import (
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
)
from cqrs_lab.subscriptions import Signal

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DuckDBEventStore", "DuckDBQueryStore"]

MEMORY = ":memory:"
_IMPORT_VIEW = "_cqrs_lab_import"
_HEADS_VIEW = "_cqrs_lab_import_streams"
_CONFLICTS = (duckdb.ConstraintException, duckdb.TransactionException)
# A TransactionException is a lost race only when it says so; "Failed to commit: Could
# not write file ...: No space left on device" is one too.
_RACE = re.compile(r"constraint|duplicate key|conflict", re.IGNORECASE)
_DISK_FULL = re.compile(r"no space left|disk (is )?full|not enough space", re.IGNORECASE)
# Bytes 8-11 of every DuckDB database file.
_MAGIC = b"DUCK"
# DuckDB's JSON reader accepts trailing commas ({"a": 1,}); pydantic's, which reads the
# events back, does not. Imported values that may hold one are parsed again first.
_TRAILING_COMMA = r",\s*[}\]]"


def _sql_for(template: str) -> str:
    return _sql.render(template, schema="main", json="JSON")


# Without ORDER BY: sorting in DuckDB costs a fixed ~0.5 ms per query (more than the
# whole read of a short tail), while Python re-sorts rows that arrive nearly in order
# in linear time. _load_records sorts them.
_LOAD_STREAM = _sql_for(_sql.LOAD_STREAM.removesuffix(" ORDER BY sequence"))
_LOAD_STREAM_EVENTS = _sql_for(_sql.LOAD_STREAM_EVENTS.removesuffix(" ORDER BY sequence"))
_FIRST, _THIRD = itemgetter(0), itemgetter(2)
# recorded_at as microseconds since the epoch: Python builds the datetime from the
# integer (see _EPOCH) several times faster than DuckDB converts a TIMESTAMPTZ.
_READ_ALL = _sql_for(_sql.READ_ALL).replace(" recorded_at,", " epoch_us(recorded_at),", 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))  # the tzinfo DuckDB gives TIMESTAMPTZ values
_READ_PAGE = 10_000
"""Rows ``read_all`` fetches per query at least: each query costs DuckDB about a millisecond."""
_STREAM_VERSION = _sql_for(_sql.STREAM_VERSION)
_MAX_POSITION = _sql_for(_sql.MAX_POSITION)
_EXPORT = _sql_for(_sql.EXPORT)
_LOAD_SNAPSHOT = _sql_for(_sql.LOAD_SNAPSHOT)
_UPSERT_SNAPSHOT = _sql_for(_sql.UPSERT_SNAPSHOT)
_LOAD_QUERY = _sql_for(_sql.LOAD_QUERY)
_LOAD_QUERIES = _sql_for(_sql.LOAD_QUERIES)
_UPDATE_QUERIES = _sql_for(_sql.UPDATE_QUERIES)
_INSERT_QUERIES = _sql_for(_sql.INSERT_QUERIES)
_DELETE_QUERIES = _sql_for(_sql.DELETE_QUERIES)
_LOAD_CHECKPOINT = _sql_for(_sql.LOAD_CHECKPOINT)
_DELETE_CHECKPOINT = _sql_for(_sql.DELETE_CHECKPOINT)
_IMPORT_CONFLICT = _sql_for(_sql.IMPORT_CONFLICT.replace("{source}", _IMPORT_VIEW))
_INSERT_COMMAND = _sql_for(_sql.INSERT_COMMAND)
_LOAD_COMMAND = _sql_for(_sql.LOAD_COMMAND)
_LOAD_PROCESSES = _sql_for(_sql.LOAD_PROCESSES)
_UPDATE_PROCESSES = _sql_for(_sql.UPDATE_PROCESSES)
_INSERT_PROCESSES = _sql_for(_sql.INSERT_PROCESSES)
_START_CHECKPOINT = _sql_for(_sql.START_CHECKPOINT)
_MOVE_CHECKPOINT = _sql_for(_sql.MOVE_CHECKPOINT)
_DELETE_DEADLINES = _sql_for(_sql.DELETE_DEADLINES)
_INSERT_DEADLINES = _sql_for(_sql.INSERT_DEADLINES)
_LOAD_DEADLINES = _sql_for(_sql.LOAD_DEADLINES)
_LOAD_DUE_DEADLINES = _sql_for(_sql.LOAD_DUE_DEADLINES)

# DuckDB only: loading a stream is a scan of the whole table without an index on
# aggregate_id (the unique constraint's index is not used for it).
_DUCKDB_TABLES = (
    *(_sql_for(t) for t in _sql.CREATE_TABLES),
    "CREATE INDEX IF NOT EXISTS events_by_aggregate_id ON main.events (aggregate_id)",
)
# The Arrow table arrives with its final positions (numbered from the shared log
# head in input position order), so this is a plain scan: no sort, no window.
_IMPORT = (
    f"INSERT INTO main.events ({_sql.EVENT_COLUMN_LIST})"
    " SELECT position, aggregate_type, aggregate_id, sequence,"
    " event_type, event_version, payload::JSON, metadata::JSON, recorded_at, event_id"
    f" FROM {_IMPORT_VIEW}"
)


@lru_cache(maxsize=64)
def _insert_events(rows: int) -> str:
    """One INSERT for a whole commit (``rows`` events), so it is one statement."""
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO main.events ({_sql.EVENT_COLUMN_LIST}) VALUES {values}"


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_SIGNATURES = ((b"PAR1", "a Parquet file"), (b"SQLite format 3\0", "an SQLite database"))


def _is_race(exc: duckdb.Error) -> bool:
    """Whether a failed write lost a race (a key another write took), not anything else."""
    text = str(exc)
    if _DISK_FULL.search(text):
        return False
    return isinstance(exc, duckdb.ConstraintException) or bool(_RACE.search(text))


def _failure(label: str, what: str, exc: duckdb.Error) -> StoreError:
    """A DuckDB error as the store error that says what it means and what to do."""
    text = " ".join(str(exc).split())
    if _DISK_FULL.search(text):
        return StoreError(
            f"the disk holding DuckDB file {label!r} is full: DuckDB could not {what} ({text}). "
            "Nothing of it was stored; free some space and try again (the same store works again)."
        )
    if isinstance(exc, duckdb.PermissionException) or "permission denied" in text.lower():
        return StoreError(
            f"no permission to {what} in DuckDB file {label!r} ({text}): check the rights on the "
            "file and its folder."
        )
    if isinstance(exc, duckdb.FatalException) or "invalidated" in text:
        return StoreError(
            f"DuckDB stopped using {label!r} after a fatal error and cannot {what} ({text}). Close "
            "every store on it and open it again; what was committed before is in the file."
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        return StoreError(f"DuckDB ran out of memory trying to {what} on {label!r} ({text}).")
    return StoreError(f"DuckDB failed to {what} on {label!r}: {text}")


def _check_file(path: str) -> None:
    """Refuse a path that is not a DuckDB database or a file to create, before DuckDB
    opens it: DuckDB would open a Parquet, CSV or JSON file as an in-memory database
    (and forget everything written to it), and block on a named pipe."""
    target = Path(path)
    if not target.parent.is_dir():
        raise StoreUnavailableError(
            f"cannot open DuckDB file {path!r}: folder {str(target.parent)!r} does not exist. "
            "Create the folder first, or give another path."
        )
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return  # a new database
    except OSError as exc:
        raise StoreUnavailableError(f"cannot open DuckDB file {path!r}: {exc.strerror or exc}") from exc
    kind = next((name for test, name in _KINDS if test(mode)), None)
    if kind is not None:
        raise StoreUnavailableError(
            f"cannot open {path!r} as a DuckDB database: it is {kind}, not a regular file. Give the "
            "path of a DuckDB database file, or of a new file to create."
        )
    try:
        with target.open("rb") as file:
            header = file.read(16)
    except OSError as exc:
        raise StoreUnavailableError(f"cannot open DuckDB file {path!r}: {exc.strerror or exc}") from exc
    if header[8:12] != _MAGIC:
        what = "empty" if not header else next(
            (name for signature, name in _SIGNATURES if header.startswith(signature)), "another kind of file"
        )
        raise StoreUnavailableError(
            f"{path!r} is not a DuckDB database (it is {what}); it was not opened and is unchanged. "
            "Give the path of a DuckDB database file, or of a new file to create."
        )


def _connect(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    if path != MEMORY:
        _check_file(path)
    try:
        return duckdb.connect(path, read_only=read_only)
    except duckdb.IOException as exc:
        text = str(exc)
        newer = _newer_storage(path, text)
        if newer is not None:
            raise newer from exc
        if "lock" in text.lower():
            hint = (
                "opening it read_only=True does not help while another process writes it"
                if read_only
                else "open it with read_only=True to analyse a file no process is writing"
            )
            raise StoreLockedError(
                f"DuckDB file {path!r} is held by another process ({text}). DuckDB allows one "
                f"read-write process per file: close the other process's store; {hint}; or use "
                "PostgresEventStore when several processes must share the log."
            ) from exc
        raise StoreUnavailableError(f"cannot open DuckDB file {path!r}: {text}") from exc
    except duckdb.Error as exc:
        raise StoreUnavailableError(f"cannot open DuckDB file {path!r}: {exc}") from exc


_STORAGE_MISMATCH = re.compile(
    r"database file with version number (\d+), but we can only read (version[^.]*)"
)


def _newer_storage(path: str, text: str) -> SchemaVersionError | None:
    """The error for a file whose storage format this DuckDB cannot read, naming both versions.

    A DuckDB file's header records its storage version and the DuckDB release that
    created it (bytes 12-20 and 52-84); DuckDB itself only says the numbers.
    """
    found = _STORAGE_MISMATCH.search(text)
    if found is None:
        return None
    writer = f"storage version {found.group(1)}"
    with suppress(OSError), open(path, "rb") as file:
        header = file.read(84)
        release = header[52:84].split(b"\0", 1)[0].decode("ascii", "replace")
        if header[8:12] == _MAGIC and release:
            writer = f"DuckDB {release} ({writer})"
    return SchemaVersionError(
        f"DuckDB file {path!r} was written by {writer}, and the installed DuckDB "
        f"{duckdb.__version__} can only read {found.group(2)}. Upgrade DuckDB "
        "(pip install --upgrade duckdb) to open it; the file is left as it is."
    )


_KNOWN_STREAMS = 65_536
"""Streams a database remembers at most; past that it forgets them all and starts again."""


_TAIL_ROWS = 1_000
"""Events after a stream's snapshot a database keeps at most; past that it reads them."""
_Row = tuple[int, Any, str, str, Any]
"""(sequence, event id, event type, event version, payload) of one event, as loads read it."""


class _Knowledge:
    """What this process knows of a writable database's streams without asking it.

    ``heads``: a stream's last (sequence, event id), or (s, None) when a read
    found nothing after sequence s (so the stream ends at s or before).
    ``snapshots``: its latest snapshot, or None when it has none. ``tails``: the
    events after that snapshot, up to the head (kept while there are at most
    ``_TAIL_ROWS``). Only a read under the database lock or a commit through it
    adds to them; every use and change happens under that lock. ``relations``
    holds the relations ``sql()`` returned: while one is alive (it may write),
    nothing is known.
    """

    def __init__(self) -> None:
        self.heads: dict[tuple[str, str], tuple[int, str | None]] = {}
        self.snapshots: dict[tuple[str, str], StoredSnapshot | None] = {}
        self.tails: dict[tuple[str, str], list[_Row]] = {}
        self.relations: weakref.WeakSet[duckdb.DuckDBPyRelation] = weakref.WeakSet()

    def forget(self) -> None:
        self.heads.clear()
        self.snapshots.clear()
        self.tails.clear()

    def head(self, key: tuple[str, str]) -> tuple[int, str | None] | None:
        return self.heads.get(key) if not self.relations else None

    def read(self, key: tuple[str, str], after: int, last: tuple[int, Any] | None) -> None:
        """A read under the lock returned the stream's rows after ``after``, the last one
        ``last`` (sequence, event id), or none."""
        if not self.relations:
            if len(self.heads) >= _KNOWN_STREAMS:
                self.heads.clear()
                self.tails.clear()
            head = (after, None) if last is None else (last[0], str(last[1]))
            if self.heads.get(key) != head:
                self.tails.pop(key, None)  # it ended where the old head did
            self.heads[key] = head

    def snapshot(self, key: tuple[str, str]) -> tuple[bool, StoredSnapshot | None]:
        """(known, snapshot)."""
        if self.relations or key not in self.snapshots:
            return False, None
        return True, self.snapshots[key]

    def read_snapshot(self, key: tuple[str, str], snapshot: StoredSnapshot | None) -> None:
        if not self.relations:
            if len(self.snapshots) >= _KNOWN_STREAMS:
                self.snapshots.clear()
                self.tails.clear()
            if self.snapshots.get(key) != snapshot:
                self.tails.pop(key, None)
            self.snapshots[key] = snapshot

    def tail(self, key: tuple[str, str]) -> list[_Row] | None:
        """The events after the stream's known snapshot, when they are known to the head."""
        tail = self.tails.get(key)
        head = self.head(key)
        snapshot = self.snapshots.get(key)
        if tail is None or head is None or snapshot is None:
            return None
        return tail if head[0] == (tail[-1][0] if tail else snapshot.version) else None

    def read_tail(self, key: tuple[str, str], snapshot: StoredSnapshot | None, rows: list[_Row]) -> None:
        """A read under the lock returned ``rows``: every event after ``snapshot``."""
        if snapshot is not None and len(rows) <= _TAIL_ROWS and not self.relations:
            self.tails[key] = rows

    def committed(self, records: Sequence[StoredEvent], snapshot: StoredSnapshot | None) -> None:
        """A commit of ``records`` (and ``snapshot``) succeeded.

        A stream's head stays known only when the commit continued it (the first
        sequence follows the known head, or the known end, one by one: it went in,
        so the stream now ends with it); a snapshot only when the stored one was
        known (the store keeps the higher version of the two); the events after
        the snapshot only when both are, and then with the commit's events.
        """
        first = records[0]
        key = (first.aggregate_type, first.aggregate_id)
        known = self.heads.pop(key, None)
        tail = self.tails.pop(key, None)
        contiguous = all(
            (r.aggregate_type, r.aggregate_id) == key and r.sequence == first.sequence + i
            for i, r in enumerate(records)
        )
        continued = contiguous and known is not None and known[0] == first.sequence - 1 and not self.relations
        if not contiguous:
            self.forget_streams(records)
        elif continued:
            self.heads[key] = (records[-1].sequence, records[-1].event_id)
        if continued and tail is not None:
            tail = tail + [
                (r.sequence, r.event_id, r.event_type, r.event_version, r.payload) for r in records
            ]
        else:
            tail = None
        if snapshot is not None:
            at = (snapshot.aggregate_type, snapshot.aggregate_id)
            if at != key:
                self.tails.pop(at, None)
            if at in self.snapshots and not self.relations:
                stored = self.snapshots[at]
                if stored is None or stored.version < snapshot.version:
                    self.snapshots[at] = snapshot
                    if at == key:  # nothing follows it when the commit ends at it
                        tail = [] if continued and snapshot.version == records[-1].sequence else None
            else:
                self.snapshots.pop(at, None)
                if at == key:
                    tail = None
        if tail is not None and len(tail) <= _TAIL_ROWS:
            self.tails[key] = tail

    def forget_streams(self, records: Sequence[StoredEvent]) -> None:
        """Forget the streams of ``records`` (a commit of them was refused, say: their
        streams are not what was thought)."""
        for r in records:
            self.heads.pop((r.aggregate_type, r.aggregate_id), None)
            self.tails.pop((r.aggregate_type, r.aggregate_id), None)


class _Database:
    """One DuckDB database as this process uses it: connection, lock, log head, knowledge, users."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, label: str, key: str | None, read_only: bool) -> None:
        self.conn = conn
        self.label = label
        self.key = key
        self.read_only = read_only
        self.lock = threading.RLock()
        self.head: int | None = None  # last position handed out; None = ask the database
        # Only a writable database is written by this process alone.
        self.known: _Knowledge | None = None if read_only else _Knowledge()
        self.users = 1
        self.closed = False
        self.commits = Signal()  # fired after each commit or import of events
        self.checkpoints = Signal()  # fired after each saved checkpoint
        self._writer: duckdb.DuckDBPyConnection | None = None

    def writer(self) -> duckdb.DuckDBPyConnection:
        """The connection that commits events (lock held): ``commit_cursor(conn)``."""
        if self._writer is None:
            self._writer = commit_cursor(self.conn)
        return self._writer

    def close(self) -> None:
        """Close the connections (lock held)."""
        self.closed = True
        if self._writer is not None:
            self._writer.close()
        self.conn.close()


def commit_cursor(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A connection of its own to ``conn``'s database, in UTC, with DuckDB's optimizer off:
    what the store commits events on (and the raw floors of the benchmarks insert on).

    An ``INSERT ... VALUES`` has nothing to optimize, yet DuckDB runs its whole
    optimizer on every statement: about an eighth of a one-row INSERT (the
    ``optimizer on`` side of ``benchmarks/duckdb_insert_probe.py``). The setting is
    the connection's own, so reads (which need the optimizer to use an index) keep
    it on the shared connection.
    """
    cursor = conn.cursor()
    try:
        cursor.execute("SET TimeZone = 'UTC'")
        cursor.execute("PRAGMA disable_optimizer")
    except BaseException:
        cursor.close()
        raise
    return cursor


_OPEN: dict[str, _Database] = {}
_OPEN_LOCK = threading.Lock()


def _open(path: str | Path, read_only: bool) -> _Database:
    if str(path) == MEMORY:
        if read_only:
            raise ConfigurationError("an in-memory DuckDB database cannot be read-only: give a file path")
        memory = _Database(_connect(MEMORY, False), MEMORY, None, False)
        _prepare(memory)
        return memory
    key = str(Path(path).expanduser().resolve())
    with _OPEN_LOCK:
        shared = _OPEN.get(key)
        if shared is not None:
            if shared.read_only != read_only:
                mode = "read-only" if shared.read_only else "read-write"
                raise ConfigurationError(
                    f"DuckDB file {str(path)!r} is already open {mode} in this process; DuckDB "
                    "cannot open it both ways. Use the same read_only setting, or share the "
                    "open store (DuckDBQueryStore(event_store))."
                )
            shared.users += 1
            return shared
        db = _Database(_connect(key, read_only), str(path), key, read_only)
        try:
            _prepare(db)
        except BaseException:
            db.conn.close()
            raise
        _OPEN[key] = db
        return db


def _release(db: _Database) -> None:
    with _OPEN_LOCK:
        db.users -= 1
        if db.users > 0 or db.closed:
            return
        if db.key is not None:
            _OPEN.pop(db.key, None)
        with db.lock:
            db.close()


def _first(conn: duckdb.DuckDBPyConnection, statement: str, params: Sequence[Any] | None = None) -> Any:
    """The first row (or None), fetching the whole result: DuckDB wants results finished."""
    rows = conn.execute(statement, params).fetchall()
    return rows[0] if rows else None


@contextmanager
def _transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT, rolled back on any exception (a failed COMMIT already is)."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):
            conn.execute("ROLLBACK")
        raise


def _prepare(db: _Database) -> None:
    """Create the tables on first use, or check the version stamp of an existing database."""
    conn = db.conn
    conn.execute("SET TimeZone = 'UTC'")
    exists = _first(conn, _sql.TABLE_EXISTS, ["main"])
    version = _first(conn, _sql_for(_sql.LOAD_SCHEMA_VERSION)) if exists and exists[0] else None
    stamped = None if version is None else version[0]
    if stamped is not None and stamped > _sql.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"DuckDB file {db.label!r} was written by a newer cqrs_lab (schema version {stamped}; "
            f"this one knows up to {_sql.SCHEMA_VERSION}). Upgrade cqrs_lab to open it."
        )
    if stamped == _sql.SCHEMA_VERSION:
        return
    if db.read_only:
        what = f"tables of an older cqrs_lab (schema version {stamped})" if stamped else "no cqrs_lab tables"
        raise StoreUnavailableError(
            f"DuckDB file {db.label!r} has {what} and is opened read_only, so they cannot be "
            "created or upgraded: open it once without read_only."
        )
    try:
        with _transaction(conn):
            for statement in _DUCKDB_TABLES:
                conn.execute(statement)
            conn.execute(_sql_for(_sql.STAMP_SCHEMA_VERSION), [_sql.SCHEMA_VERSION])
    except duckdb.Error as exc:
        if _DISK_FULL.search(str(exc)) or isinstance(exc, duckdb.PermissionException):
            raise _failure(db.label, "create the cqrs_lab tables", exc) from exc
        raise StoreError(
            f"cannot create the cqrs_lab tables in DuckDB file {db.label!r} ({exc}). Is it a "
            "database of another application? Give cqrs_lab a file of its own."
        ) from exc


class _DuckDBStore:
    """What both DuckDB stores share: the database handle, ``sql()`` and ``close()``."""

    _db: _Database

    @property
    def path(self) -> str:
        """The database file (or ``":memory:"``)."""
        return self._db.label

    @property
    def read_only(self) -> bool:
        return self._db.read_only

    @contextmanager
    def _locked(self, what: str = "read or write it") -> Iterator[duckdb.DuckDBPyConnection]:
        """The shared connection, for one thread at a time; DuckDB errors become store errors."""
        with self._db.lock:
            if self._db.closed:
                raise StoreError(f"the DuckDB store on {self._db.label!r} is closed; open a new one")
            try:
                yield self._db.conn
            except duckdb.Error as exc:
                raise _failure(self._db.label, what, exc) from exc

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own to the database (usable from any thread), in UTC."""
        with self._locked() as conn:
            cursor = conn.cursor()
            cursor.execute("SET TimeZone = 'UTC'")
        return cursor

    def _writable(self, what: str) -> None:
        if self._db.read_only:
            raise StoreError(
                f"cannot {what}: DuckDB file {self._db.label!r} was opened with read_only=True. "
                "Open it without read_only to write (one process at a time)."
            )

    def sql(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> duckdb.DuckDBPyRelation:
        """Run SQL on the database; use ``.df()``, ``.arrow()`` or ``.pl()`` on the result.

        ``events_view`` is the documented view of the log (``payload->>'amount'``
        reads a payload field); ``queries`` holds the views as JSON. The relation
        uses its own cursor, so it may be evaluated in any thread.

        SQL may write, so on a writable database the stores forget what they
        knew of its streams, and know nothing while the relation is alive.
        """
        cursor = self._cursor()
        known = self._db.known
        try:
            if known is None:
                relation = cursor.sql(query, params=params)
            else:
                with self._db.lock:
                    known.forget()
                    relation = cursor.sql(query, params=params)
                    if relation is not None:
                        known.relations.add(relation)
        except duckdb.Error as exc:
            raise StoreError(f"DuckDB could not run the query ({exc}). The log is in events_view.") from exc
        return relation

    def _hold(self, db: _Database) -> None:
        """Use ``db``; released by ``close()`` or, failing that, when this object is collected."""
        self._db = db
        self._finalizer = weakref.finalize(self, _release, db)

    def close(self) -> None:
        """Release this store; the database closes when its last store does. Idempotent."""
        self._finalizer()


class DuckDBEventStore(_DuckDBStore, RecordEventStore):
    """Event store in a DuckDB file (or ``":memory:"``), queryable with SQL via ``sql()``.

    A second process opening a file this one writes gets ``StoreLockedError``;
    ``read_only=True`` opens a file no process writes, for analysis.
    """

    def __init__(
        self,
        path: str | Path = MEMORY,
        *,
        read_only: bool = False,
        codec: EventCodec | None = None,
    ) -> None:
        RecordEventStore.__init__(self, codec)
        self._hold(_open(path, read_only))

    # -- hooks ------------------------------------------------------------
    def stream_head(self, aggregate_type: str, aggregate_id: str) -> tuple[int, str] | None:
        """The stream's last (sequence, event id) as this process knows it, without a query."""
        known = self._db.known
        if known is None:
            return None
        with self._db.lock:
            head = known.head((aggregate_type, aggregate_id))
        return None if head is None or head[1] is None else (head[0], head[1])

    def _nothing_after(self, key: tuple[str, str], after_sequence: int) -> bool:
        """True when the stream is known to end at or before ``after_sequence`` (lock held)."""
        known = self._db.known
        head = None if known is None else known.head(key)
        return head is not None and head[0] <= after_sequence

    def _read(self, key: tuple[str, str], after: int, last: tuple[int, Any] | None) -> None:
        """Remember where the stream ends, from a read under the lock of its rows after ``after``."""
        if self._db.known is not None:
            self._db.known.read(key, after, last)

    def _load_records(self, aggregate_type: str, aggregate_id: str, after_sequence: int) -> list[StoredEvent]:
        key = (aggregate_type, aggregate_id)
        with self._locked() as conn:
            if self._nothing_after(key, after_sequence):
                return []
            rows = conn.execute(_LOAD_STREAM, [aggregate_type, aggregate_id, after_sequence]).fetchall()
            rows.sort(key=_THIRD)  # sequence
            self._read(key, after_sequence, (rows[-1][2], rows[-1][8]) if rows else None)
        return [StoredEvent(*row) for row in rows]

    def _load_stream_rows(
        self, aggregate_type: str, aggregate_id: str, after_sequence: int
    ) -> Sequence[tuple[int, Any, str, str, Any]]:
        key = (aggregate_type, aggregate_id)
        with self._locked() as conn:
            return self._stream_rows(conn, key, after_sequence)

    def _stream_rows(
        self, conn: duckdb.DuckDBPyConnection, key: tuple[str, str], after_sequence: int
    ) -> list[tuple[int, Any, str, str, Any]]:
        """``_load_stream_rows`` with the lock held; no query when nothing follows ``after_sequence``."""
        if self._nothing_after(key, after_sequence):
            return []
        rows: list[tuple[int, Any, str, str, Any]] = conn.execute(
            _LOAD_STREAM_EVENTS, [*key, after_sequence]
        ).fetchall()
        rows.sort(key=_FIRST)  # sequence
        self._read(key, after_sequence, rows[-1][:2] if rows else None)
        return rows

    def load_snapshot_and_stream(
        self, aggregate_type: str, aggregate_id: str
    ) -> tuple[StoredSnapshot | None, list[tuple[int, str, Event]]]:
        """The latest snapshot and the events after it: none, one or two queries, as this
        process knows the snapshot, the events it committed after it, or neither."""
        key = (aggregate_type, aggregate_id)
        known = self._db.known
        with self._locked() as conn:
            snapshot = self._snapshot(conn, key)
            rows = None if known is None else known.tail(key)
            if rows is None:
                rows = self._stream_rows(conn, key, 0 if snapshot is None else snapshot.version)
                if known is not None:
                    known.read_tail(key, snapshot, rows)
        return snapshot, self._decode_stream(aggregate_type, aggregate_id, rows)

    def _read_records(self, after_position: int, limit: int) -> list[StoredEvent]:
        """One page of the log, fetched as Arrow columns (C++ builds them; Python only zips)."""
        with self._locked() as conn:
            table = conn.sql(_READ_ALL, params=[after_position, limit]).to_arrow_table()
        columns = [column.to_pylist() for column in table.columns]
        columns[7] = [_EPOCH + timedelta(microseconds=us) for us in columns[7]]
        return [StoredEvent(*row) for row in zip(*columns, strict=True)]

    def read_all(self, after_position: int = 0, *, batch_size: int = 1000) -> Iterator[EventEnvelope]:
        """Every event after ``after_position`` in position order, read ``max(batch_size, 10,000)``
        rows per query (a query costs DuckDB about a millisecond, whatever it reads)."""
        return super().read_all(after_position, batch_size=max(batch_size, _READ_PAGE))

    def load_snapshot(self, aggregate_type: str, aggregate_id: str) -> StoredSnapshot | None:
        with self._locked() as conn:
            return self._snapshot(conn, (aggregate_type, aggregate_id))

    def _snapshot(self, conn: duckdb.DuckDBPyConnection, key: tuple[str, str]) -> StoredSnapshot | None:
        """The stream's snapshot (lock held): as known, else read and remembered."""
        known = self._db.known
        if known is not None:
            found, snapshot = known.snapshot(key)
            if found:
                return snapshot
        row = _first(conn, _LOAD_SNAPSHOT, list(key))
        snapshot = None if row is None else StoredSnapshot(*row)
        if known is not None:
            known.read_snapshot(key, snapshot)
        return snapshot

    def _head(self, conn: duckdb.DuckDBPyConnection) -> int:
        if self._db.head is None:
            row = _first(conn, _MAX_POSITION)
            self._db.head = int(row[0]) if row else 0
        return self._db.head

    def load_command(self, aggregate_type: str, aggregate_id: str, command_id: str) -> StoredCommand | None:
        with self._locked() as conn:
            row = _first(conn, _LOAD_COMMAND, [aggregate_type, aggregate_id, command_id])
        return None if row is None else StoredCommand(*row)

    def _append_records(
        self,
        records: Sequence[StoredEvent],
        snapshot: StoredSnapshot | None,
        command: StoredCommand | None = None,
    ) -> list[int]:
        self._writable("commit events")
        statement = _insert_events(len(records))
        with self._locked("commit events") as conn:
            writer = self._db.writer()
            # Positions come from the head this process keeps (writers are serialized
            # by the lock). If something wrote around it (raw SQL), the position key
            # collides: re-read the head once and try again before calling it a race.
            retried = False
            while True:
                head = self._head(conn)
                params: list[Any] = []
                for position, r in enumerate(records, start=head + 1):
                    params += (position, *r.values())
                try:
                    if snapshot is None and command is None:
                        writer.execute(statement, params)  # autocommit: one atomic statement
                    else:
                        with _transaction(writer):
                            writer.execute(statement, params)
                            if snapshot is not None:
                                writer.execute(
                                    _UPSERT_SNAPSHOT,
                                    [
                                        snapshot.aggregate_type,
                                        snapshot.aggregate_id,
                                        snapshot.version,
                                        snapshot.payload,
                                    ],
                                )
                            if command is not None:
                                writer.execute(_INSERT_COMMAND, command.values())
                except _CONFLICTS as exc:
                    if not _is_race(exc):
                        raise _failure(self._db.label, "commit events", exc) from exc
                    self._db.head = None
                    if self._db.known is not None:
                        self._db.known.forget_streams(records)
                    if not retried and self._head(conn) != head:
                        retried = True
                        continue
                    if command is not None and _first(conn, _LOAD_COMMAND, command.key()):
                        raise ConcurrencyError(command_conflict(command)) from exc
                    first = records[0]
                    row = _first(conn, _STREAM_VERSION, [first.aggregate_type, first.aggregate_id])
                    raise ConcurrencyError(_sql.conflict_message(records, row[0] if row else 0)) from exc
                self._db.head = head + len(records)
                if self._db.known is not None:
                    self._db.known.committed(records, snapshot)
                break
        self._db.commits.fire()
        return list(range(head + 1, head + len(records) + 1))

    @contextmanager
    def _watch_commits(self) -> Iterator[Signal]:
        yield self._db.commits

    # -- bulk -------------------------------------------------------------
    def import_arrow(self, data: Any) -> int:
        """``RecordEventStore.import_arrow``, refused at once on a read-only store."""
        self._writable("import events")
        return super().import_arrow(data)

    def _stream_heads(self, aggregate_types: list[str], aggregate_ids: list[str]) -> list[int]:
        import pyarrow as pa

        streams = pa.table(
            {"i": range(len(aggregate_ids)), "aggregate_type": aggregate_types, "aggregate_id": aggregate_ids}
        )
        heads = [0] * len(aggregate_ids)
        with self._locked("look up the streams to import") as conn:
            conn.register(_HEADS_VIEW, streams)
            try:
                found = conn.execute(
                    f"SELECT s.i, max(e.sequence) FROM {_HEADS_VIEW} AS s JOIN main.events AS e"
                    " ON e.aggregate_type = s.aggregate_type AND e.aggregate_id = s.aggregate_id GROUP BY s.i"
                ).fetchall()
            finally:
                conn.unregister(_HEADS_VIEW)
        for i, head in found:
            heads[i] = int(head)
        return heads

    def _insert_import(self, table: pa.Table) -> int:
        """Append a checked event table atomically (registered with DuckDB, one INSERT ... SELECT)."""
        import numpy as np
        import pyarrow.compute as pc

        from cqrs_lab.stores.arrow import invalid_json, number_positions

        suspects = pc.or_(
            pc.match_substring_regex(table.column("payload"), _TRAILING_COMMA),
            pc.match_substring_regex(table.column("metadata"), _TRAILING_COMMA),
        )
        if pc.any(suspects).as_py():
            invalid = invalid_json(table, np.flatnonzero(suspects.to_numpy(zero_copy_only=False)))
            if invalid is not None:
                raise invalid
        with self._locked("import events") as conn:
            if self._db.known is not None:
                self._db.known.forget()  # the import may continue streams known here
            # One INSERT in autocommit mode: it goes in whole or not at all. A taken
            # sequence (or one twice in the input) is a constraint violation; only
            # then is the input searched for it, to say which. A position collision
            # means something wrote around the head: re-read it once and try again.
            retried = False
            while True:
                head = self._head(conn)
                conn.register(_IMPORT_VIEW, number_positions(table, head))
                try:
                    conn.execute(_IMPORT)
                except _CONFLICTS as exc:
                    if not _is_race(exc):
                        raise _failure(self._db.label, "import events", exc) from exc
                    self._db.head = None
                    if not retried and self._head(conn) != head:
                        retried = True
                        continue
                    raise self._import_conflict(conn) from exc
                except duckdb.ConversionException as exc:
                    raise invalid_json(table) or InvalidImportError(
                        f"cannot import: a payload or metadata value is not valid JSON ({exc}). "
                        "Nothing was imported."
                    ) from exc
                finally:
                    conn.unregister(_IMPORT_VIEW)
                self._db.head = head + table.num_rows
                break
        self._db.commits.fire()
        return int(table.num_rows)

    @staticmethod
    def _import_conflict(conn: duckdb.DuckDBPyConnection) -> ConcurrencyError:
        """Why the registered import was refused (searched only after it was)."""
        taken = _first(conn, _IMPORT_CONFLICT)
        if taken is None:
            return ConcurrencyError(
                "cannot import: another writer stored some of these events first. Nothing was imported."
            )
        return ConcurrencyError(import_conflict(taken[0], taken[1], taken[2], bool(taken[3])))

    def export_arrow(self, after_position: int = 0) -> pa.Table:
        """The log after ``after_position`` as an Arrow table (``event_arrow_schema()``)."""
        from cqrs_lab.stores.arrow import to_event_table

        cursor = self._cursor()
        try:
            table = cursor.sql(_EXPORT, params=[after_position]).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"DuckDB failed to export {self._db.label!r}: {exc}") from exc
        finally:
            cursor.close()
        return to_event_table(table)

    def export_events(self, path: str | Path, format: str | None = None) -> int:
        """Write the log to a file; Parquet is streamed out by DuckDB's ``COPY``."""
        from cqrs_lab.stores.arrow import format_for, replacing

        if format_for(path, format) != "parquet":
            return super().export_events(path, format)
        with replacing(Path(path)) as temporary:
            literal = str(temporary).replace("'", "''")
            with self._locked("export events") as conn:
                try:
                    row = _first(conn, f"COPY ({_EXPORT}) TO '{literal}' (FORMAT parquet)", [0])
                except duckdb.IOException as exc:  # the file could not be written: say why
                    raise OSError(" ".join(str(exc).split())) from exc
        return int(row[0]) if row else 0

    def __repr__(self) -> str:
        mode = ", read_only=True" if self._db.read_only else ""
        return f"DuckDBEventStore({self._db.label!r}{mode})"


class DuckDBQueryStore(_DuckDBStore, RecordQueryStore):
    """Views and checkpoints in a DuckDB database.

    Give it the ``DuckDBEventStore`` to share its database (needed for
    ``":memory:"``), or a file path.
    """

    def __init__(
        self, path_or_event_store: str | Path | DuckDBEventStore, *, read_only: bool = False
    ) -> None:
        if isinstance(path_or_event_store, DuckDBEventStore):
            db = path_or_event_store._db
            with _OPEN_LOCK:
                if db.closed:
                    raise StoreError(f"the DuckDB store on {db.label!r} is closed; open a new one")
                db.users += 1
            self._hold(db)
        elif str(path_or_event_store) == MEMORY:
            raise ConfigurationError(
                "DuckDBQueryStore(':memory:') would be a database of its own: give it the "
                "DuckDBEventStore whose in-memory database it should share"
            )
        else:
            self._hold(_open(path_or_event_store, read_only))

    def _load_query(self, query_type: str, view_id: str) -> StoredQuery | None:
        with self._locked() as conn:
            row = _first(conn, _LOAD_QUERY, [query_type, view_id])
        return None if row is None else StoredQuery(*row)

    def _load_queries(self, query_type: str, view_ids: Sequence[str]) -> list[StoredQuery]:
        with self._locked() as conn:
            rows = conn.execute(_LOAD_QUERIES, [query_type, list(view_ids)]).fetchall()
        return [StoredQuery(*row) for row in rows]

    def _commit_queries(
        self, records: Sequence[StoredQuery], checkpoint: tuple[str, int, int] | None
    ) -> None:
        self._writable("commit views")
        new, old = _sql.query_batches(records)
        with self._locked("commit views") as conn:
            try:
                with _transaction(conn):
                    if checkpoint is not None:
                        name, expected, position = checkpoint
                        if not self._move_checkpoint(conn, name, (expected, position)):
                            raise ConcurrencyError(checkpoint_conflict(name, expected))
                    written: set[tuple[str, str]] = set()
                    if old[0]:
                        written.update(conn.execute(_UPDATE_QUERIES, old).fetchall())
                    if new[0]:
                        written.update(conn.execute(_INSERT_QUERIES, new).fetchall())
                    if len(written) != len(records):
                        raise ConcurrencyError(_sql.view_conflict_message(records, written))
            except _CONFLICTS as exc:
                if not _is_race(exc):
                    raise _failure(self._db.label, "commit views", exc) from exc
                raise ConcurrencyError(
                    "another writer updated some of these views at the same time; nothing of this "
                    "batch was written. Reload the views and apply the events again."
                ) from exc
        if checkpoint is not None:
            self._db.checkpoints.fire()

    @contextmanager
    def _watch_checkpoints(self) -> Iterator[Signal]:
        yield self._db.checkpoints

    def load_checkpoint(self, name: str) -> int:
        with self._locked() as conn:
            row = _first(conn, _LOAD_CHECKPOINT, [name])
        return 0 if row is None else int(row[0])

    def reset(self, query_types: Sequence[str], *, checkpoint: str | None = None) -> None:
        self._writable("reset views")
        with self._locked() as conn, _transaction(conn):
            conn.execute(_DELETE_QUERIES, [list(query_types)])
            if checkpoint is not None:
                conn.execute(_DELETE_CHECKPOINT, [checkpoint])

    def load_processes(self, name: str, process_ids: Iterable[str]) -> list[StoredProcess]:
        with self._locked() as conn:
            rows = conn.execute(_LOAD_PROCESSES, [name, list(dict.fromkeys(process_ids))]).fetchall()
        return [StoredProcess(*row) for row in rows]

    def load_deadlines(self, name: str, *, due_by: datetime | None = None) -> list[StoredDeadline]:
        with self._locked() as conn:
            if due_by is None:
                rows = conn.execute(_LOAD_DEADLINES, [name]).fetchall()
            else:
                rows = conn.execute(_LOAD_DUE_DEADLINES, [name, due_by]).fetchall()
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
        self._writable("commit process states")
        new, old = _sql.process_batches(states)
        removed = [*cancelled, *((d.process_id, d.deadline) for d in deadlines)]
        with self._locked("commit process states") as conn:
            try:
                with _transaction(conn):
                    written = len(conn.execute(_UPDATE_PROCESSES, [*old, name]).fetchall()) if old[0] else 0
                    if new[0]:
                        written += len(conn.execute(_INSERT_PROCESSES, [name, *new]).fetchall())
                    if written != len(states) or (
                        checkpoint is not None and not self._move_checkpoint(conn, name, checkpoint)
                    ):
                        raise ConcurrencyError(process_conflict(name))
                    if removed:
                        pairs = [[r[0] for r in removed], [r[1] for r in removed]]
                        conn.execute(_DELETE_DEADLINES, [name, *pairs])
                    if deadlines:
                        conn.execute(_INSERT_DEADLINES, [name, *_sql.deadline_columns(deadlines)])
            except _CONFLICTS as exc:
                if not _is_race(exc):
                    raise _failure(self._db.label, "commit process states", exc) from exc
                raise ConcurrencyError(process_conflict(name)) from exc
        if checkpoint is not None:
            self._db.checkpoints.fire()

    @staticmethod
    def _move_checkpoint(conn: duckdb.DuckDBPyConnection, name: str, checkpoint: tuple[int, int]) -> bool:
        expected, new = checkpoint
        if expected == 0:
            return bool(conn.execute(_START_CHECKPOINT, [name, new]).fetchall())
        return bool(conn.execute(_MOVE_CHECKPOINT, [new, name, expected]).fetchall())

    def __repr__(self) -> str:
        return f"DuckDBQueryStore({self._db.label!r})"
