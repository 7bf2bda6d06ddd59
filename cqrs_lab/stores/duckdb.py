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
"""

from __future__ import annotations

import re
import stat
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from cqrs_lab.codec import EventCodec, StoredEvent
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
_READ_ALL = _sql_for(_sql.READ_ALL)
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


class _Database:
    """One DuckDB database as this process uses it: connection, lock, log head, users."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, label: str, key: str | None, read_only: bool) -> None:
        self.conn = conn
        self.label = label
        self.key = key
        self.read_only = read_only
        self.lock = threading.RLock()
        self.head: int | None = None  # last position handed out; None = ask the database
        self.users = 1
        self.closed = False
        self.commits = Signal()  # fired after each commit or import of events
        self.checkpoints = Signal()  # fired after each saved checkpoint


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
            db.closed = True
            db.conn.close()


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


_RELATION_CURSORS: dict[int, duckdb.DuckDBPyConnection] = {}
"""The cursor of each relation ``sql()`` returned and that is still alive."""


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
        """
        cursor = self._cursor()
        try:
            relation = cursor.sql(query, params=params)
        except duckdb.Error as exc:
            raise StoreError(f"DuckDB could not run the query ({exc}). The log is in events_view.") from exc
        if relation is not None:
            # Before DuckDB 1.5 a relation does not keep its cursor open: keep it as long as the relation.
            _RELATION_CURSORS[id(relation)] = cursor
            weakref.finalize(relation, _RELATION_CURSORS.pop, id(relation), None)
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
    def _load_records(self, aggregate_type: str, aggregate_id: str, after_sequence: int) -> list[StoredEvent]:
        with self._locked() as conn:
            rows = conn.execute(_LOAD_STREAM, [aggregate_type, aggregate_id, after_sequence]).fetchall()
        rows.sort(key=_THIRD)  # sequence
        return [StoredEvent(*row) for row in rows]

    def _load_stream_rows(
        self, aggregate_type: str, aggregate_id: str, after_sequence: int
    ) -> Sequence[tuple[int, Any, str, str, Any]]:
        with self._locked() as conn:
            rows = conn.execute(
                _LOAD_STREAM_EVENTS, [aggregate_type, aggregate_id, after_sequence]
            ).fetchall()
        rows.sort(key=_FIRST)  # sequence
        return rows

    def _read_records(self, after_position: int, limit: int) -> list[StoredEvent]:
        with self._locked() as conn:
            rows = conn.execute(_READ_ALL, [after_position, limit]).fetchall()
        return [StoredEvent(*row) for row in rows]

    def load_snapshot(self, aggregate_type: str, aggregate_id: str) -> StoredSnapshot | None:
        with self._locked() as conn:
            row = _first(conn, _LOAD_SNAPSHOT, [aggregate_type, aggregate_id])
        return None if row is None else StoredSnapshot(*row)

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
                        conn.execute(statement, params)  # autocommit: one atomic statement
                    else:
                        with _transaction(conn):
                            conn.execute(statement, params)
                            if snapshot is not None:
                                conn.execute(
                                    _UPSERT_SNAPSHOT,
                                    [
                                        snapshot.aggregate_type,
                                        snapshot.aggregate_id,
                                        snapshot.version,
                                        snapshot.payload,
                                    ],
                                )
                            if command is not None:
                                conn.execute(_INSERT_COMMAND, command.values())
                except _CONFLICTS as exc:
                    if not _is_race(exc):
                        raise _failure(self._db.label, "commit events", exc) from exc
                    self._db.head = None
                    if not retried and self._head(conn) != head:
                        retried = True
                        continue
                    if command is not None and _first(conn, _LOAD_COMMAND, command.key()):
                        raise ConcurrencyError(command_conflict(command)) from exc
                    first = records[0]
                    row = _first(conn, _STREAM_VERSION, [first.aggregate_type, first.aggregate_id])
                    raise ConcurrencyError(_sql.conflict_message(records, row[0] if row else 0)) from exc
                self._db.head = head + len(records)
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
                        conn.execute(_DELETE_DEADLINES, [*pairs, name])
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
