"""SQL shared by the DuckDB and PostgreSQL stores, written once.

Statements are templates with ``?`` placeholders and two fields: ``{schema}``
(the quoted schema: ``main`` in DuckDB, the configured one in PostgreSQL) and
``{json}`` (the JSON column type: ``JSON`` in DuckDB, ``JSONB`` in PostgreSQL).
``render`` fills them for one dialect and the PostgreSQL store turns ``?`` into
``%s``. What differs for real between the two — how a commit assigns global
positions, bulk loading, DuckDB's extra index — lives in the backend modules.

Batches of rows are passed as one array parameter per column and turned back
into rows with ``unnest`` in the select list (both databases zip several
``unnest`` calls of equal length), so a batch is one statement whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence

from cqrs_lab.codec import StoredEvent
from cqrs_lab.stores.base import EVENT_COLUMNS, StoredDeadline, StoredProcess, StoredQuery

__all__ = [
    "CREATE_TABLES",
    "DELETE_CHECKPOINT",
    "DELETE_DEADLINES",
    "DELETE_QUERIES",
    "EVENT_COLUMN_LIST",
    "EXPORT",
    "IMPORT_CONFLICT",
    "INSERT_COMMAND",
    "INSERT_DEADLINES",
    "INSERT_PROCESSES",
    "INSERT_QUERIES",
    "LOAD_CHECKPOINT",
    "LOAD_COMMAND",
    "LOAD_DEADLINES",
    "LOAD_DUE_DEADLINES",
    "LOAD_PROCESSES",
    "LOAD_QUERIES",
    "LOAD_QUERY",
    "LOAD_SCHEMA_VERSION",
    "LOAD_SNAPSHOT",
    "LOAD_SNAPSHOT_AND_STREAM",
    "LOAD_STREAM",
    "LOAD_STREAM_EVENTS",
    "MAX_POSITION",
    "MOVE_CHECKPOINT",
    "READ_ALL",
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_TABLE",
    "STAMP_SCHEMA_VERSION",
    "START_CHECKPOINT",
    "STREAM_VERSION",
    "TABLE_EXISTS",
    "UPDATE_PROCESSES",
    "UPDATE_QUERIES",
    "UPSERT_SNAPSHOT",
    "conflict_message",
    "deadline_columns",
    "process_batches",
    "query_batches",
    "render",
    "view_conflict_message",
]

SCHEMA_VERSION = 2
"""Version of the table layout below; a database stamped with a higher one is refused.

Every statement of ``CREATE_TABLES`` creates only what is missing, so running them
on a database stamped with a lower version upgrades it in place (version 1 had
no ``commands``, ``processes`` or ``deadlines``); the stores then stamp it.
"""


def render(template: str, *, schema: str, json: str, placeholder: str = "?") -> str:
    """Fill a template for one dialect; ``schema`` must already be a quoted identifier."""
    text = template.format(schema=schema, json=json)
    if placeholder != "?":
        text = text.replace("?", placeholder)
    return text


# -- tables -------------------------------------------------------------------
SCHEMA_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS {schema}.schema_version (version INTEGER NOT NULL)"
TABLE_EXISTS = (
    "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'schema_version'"
)
LOAD_SCHEMA_VERSION = "SELECT max(version) FROM {schema}.schema_version"
STAMP_SCHEMA_VERSION = "INSERT INTO {schema}.schema_version (version) VALUES (?)"

CREATE_TABLES = (
    SCHEMA_VERSION_TABLE,
    """CREATE TABLE IF NOT EXISTS {schema}.events (
        position BIGINT NOT NULL PRIMARY KEY,
        aggregate_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        sequence BIGINT NOT NULL,
        event_type TEXT NOT NULL,
        event_version TEXT NOT NULL,
        payload {json} NOT NULL,
        metadata {json} NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL,
        event_id TEXT NOT NULL,
        CONSTRAINT events_stream_sequence UNIQUE (aggregate_type, aggregate_id, sequence)
    )""",
    """CREATE TABLE IF NOT EXISTS {schema}.snapshots (
        aggregate_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        payload {json} NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id)
    )""",
    """CREATE TABLE IF NOT EXISTS {schema}.queries (
        query_type TEXT NOT NULL,
        view_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        payload {json} NOT NULL,
        PRIMARY KEY (query_type, view_id)
    )""",
    """CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
        name TEXT NOT NULL PRIMARY KEY,
        position BIGINT NOT NULL
    )""",
    # Commands executed with a caller-chosen id (version 2): the key refuses a second
    # commit of one id, in the transaction of its events.
    """CREATE TABLE IF NOT EXISTS {schema}.commands (
        aggregate_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        command_id TEXT NOT NULL,
        command_type TEXT NOT NULL,
        payload {json} NOT NULL,
        first_sequence BIGINT NOT NULL,
        last_sequence BIGINT NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, command_id)
    )""",
    # Process managers (version 2): each runner's instance states and pending deadlines.
    """CREATE TABLE IF NOT EXISTS {schema}.processes (
        name TEXT NOT NULL,
        process_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        payload {json} NOT NULL,
        PRIMARY KEY (name, process_id)
    )""",
    """CREATE TABLE IF NOT EXISTS {schema}.deadlines (
        name TEXT NOT NULL,
        process_id TEXT NOT NULL,
        deadline TEXT NOT NULL,
        due_at TIMESTAMPTZ NOT NULL,
        origin TEXT NOT NULL,
        aggregate_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        command_type TEXT NOT NULL,
        command {json} NOT NULL,
        metadata {json} NOT NULL,
        PRIMARY KEY (name, process_id, deadline)
    )""",
    # The documented way to query the log with SQL: payload fields are reachable
    # with the JSON operators (payload->>'amount') in both databases.
    """CREATE OR REPLACE VIEW {schema}.events_view AS
    SELECT position, aggregate_type, aggregate_id, sequence, event_type, event_version,
           payload, metadata, recorded_at, event_id,
           metadata->>'command_id' AS command_id,
           metadata->>'command_type' AS command_type,
           metadata->>'correlation_id' AS correlation_id,
           metadata->>'causation_id' AS causation_id
    FROM {schema}.events""",
)

# -- events -------------------------------------------------------------------
EVENT_COLUMN_LIST = ", ".join(EVENT_COLUMNS)
"""The ``events`` columns in table order, for INSERTs."""
# Column order of ``StoredEvent`` (so a row is ``StoredEvent(*row)``); JSON as text.
_EVENT_ROW = (
    "aggregate_type, aggregate_id, sequence, event_type, event_version,"
    " payload::TEXT, metadata::TEXT, recorded_at, event_id, position"
)
LOAD_STREAM = (
    f"SELECT {_EVENT_ROW} FROM {{schema}}.events"
    " WHERE aggregate_type = ? AND aggregate_id = ? AND sequence > ? ORDER BY sequence"
)
# What rebuilding an aggregate needs (RecordEventStore.load_stream): no metadata and no
# timestamp, so neither is converted to Python for a load.
LOAD_STREAM_EVENTS = (
    "SELECT sequence, event_id, event_type, event_version, payload::TEXT FROM {schema}.events"
    " WHERE aggregate_type = ? AND aggregate_id = ? AND sequence > ? ORDER BY sequence"
)
READ_ALL = f"SELECT {_EVENT_ROW} FROM {{schema}}.events WHERE position > ? ORDER BY position LIMIT ?"
STREAM_VERSION = (
    "SELECT coalesce(max(sequence), 0) FROM {schema}.events WHERE aggregate_type = ? AND aggregate_id = ?"
)
MAX_POSITION = "SELECT coalesce(max(position), 0) FROM {schema}.events"
# Column order of ``EVENT_COLUMNS`` / ``event_arrow_schema()``.
EXPORT = (
    "SELECT position, aggregate_type, aggregate_id, sequence, event_type, event_version,"
    " payload::TEXT AS payload, metadata::TEXT AS metadata, recorded_at, event_id"
    " FROM {schema}.events WHERE position > ? ORDER BY position"
)
# ``{source}``: a table of rows to import (EVENT_COLUMNS); finds one that cannot go in.
IMPORT_CONFLICT = """
    SELECT i.aggregate_type, i.aggregate_id, i.sequence, TRUE AS stored FROM {source} AS i
    JOIN {schema}.events AS e ON e.aggregate_type = i.aggregate_type
        AND e.aggregate_id = i.aggregate_id AND e.sequence = i.sequence
    UNION ALL
    SELECT aggregate_type, aggregate_id, sequence, FALSE FROM {source}
    GROUP BY aggregate_type, aggregate_id, sequence HAVING count(*) > 1
    LIMIT 1"""

# -- command ids --------------------------------------------------------------
INSERT_COMMAND = (
    "INSERT INTO {schema}.commands (aggregate_type, aggregate_id, command_id, command_type, payload,"
    " first_sequence, last_sequence) VALUES (?, ?, ?, ?, ?::{json}, ?, ?)"
)
LOAD_COMMAND = (
    "SELECT aggregate_type, aggregate_id, command_id, command_type, payload::TEXT, first_sequence,"
    " last_sequence FROM {schema}.commands WHERE aggregate_type = ? AND aggregate_id = ? AND command_id = ?"
)

# -- snapshots ----------------------------------------------------------------
LOAD_SNAPSHOT = (
    "SELECT aggregate_type, aggregate_id, version, payload::TEXT FROM {schema}.snapshots"
    " WHERE aggregate_type = ? AND aggregate_id = ?"
)
# A stream's snapshot (a row whose event_type is NULL) and the events after it, in one
# statement: one round trip on PostgreSQL.
LOAD_SNAPSHOT_AND_STREAM = """
    WITH s AS (
        SELECT version, payload::TEXT AS payload FROM {schema}.snapshots
        WHERE aggregate_type = ? AND aggregate_id = ?
    )
    SELECT version, NULL, NULL, NULL, payload FROM s
    UNION ALL
    SELECT sequence, event_id, event_type, event_version, payload::TEXT FROM {schema}.events
    WHERE aggregate_type = ? AND aggregate_id = ? AND sequence > coalesce((SELECT version FROM s), 0)"""
# Latest per aggregate: an older snapshot never replaces a newer one.
UPSERT_SNAPSHOT = """
    INSERT INTO {schema}.snapshots AS s (aggregate_type, aggregate_id, version, payload)
    VALUES (?, ?, ?, ?::{json})
    ON CONFLICT (aggregate_type, aggregate_id)
    DO UPDATE SET version = excluded.version, payload = excluded.payload
    WHERE s.version < excluded.version"""

# -- queries and checkpoints --------------------------------------------------
LOAD_QUERY = (
    "SELECT query_type, view_id, version, payload::TEXT FROM {schema}.queries"
    " WHERE query_type = ? AND view_id = ?"
)
LOAD_QUERIES = (
    "SELECT query_type, view_id, version, payload::TEXT FROM {schema}.queries"
    " WHERE query_type = ? AND view_id IN (SELECT unnest(?::TEXT[]))"
)
_QUERY_BATCH = (
    "SELECT unnest(?::TEXT[]) AS query_type, unnest(?::TEXT[]) AS view_id,"
    " unnest(?::BIGINT[]) AS version, unnest(?::TEXT[]) AS payload"
)
# Optimistic concurrency: a view is written only from the version it was read at.
# Both return the views they wrote; fewer rows than asked means another writer won.
UPDATE_QUERIES = f"""
    UPDATE {{schema}}.queries AS q SET version = b.version, payload = b.payload::{{json}}
    FROM ({_QUERY_BATCH}) AS b
    WHERE q.query_type = b.query_type AND q.view_id = b.view_id AND q.version = b.version - 1
    RETURNING q.query_type, q.view_id"""
INSERT_QUERIES = f"""
    INSERT INTO {{schema}}.queries (query_type, view_id, version, payload)
    SELECT b.query_type, b.view_id, b.version, b.payload::{{json}} FROM ({_QUERY_BATCH}) AS b
    ON CONFLICT (query_type, view_id) DO NOTHING
    RETURNING query_type, view_id"""
DELETE_QUERIES = "DELETE FROM {schema}.queries WHERE query_type IN (SELECT unnest(?::TEXT[]))"
LOAD_CHECKPOINT = "SELECT position FROM {schema}.checkpoints WHERE name = ?"
DELETE_CHECKPOINT = "DELETE FROM {schema}.checkpoints WHERE name = ?"
# A checkpoint (a projection's or a process runner's) moves only from where its runner
# read it, so a runner that lost a race writes nothing: it is inserted when it was 0 (and
# absent), else updated from that position. Both return the row when it moved.
START_CHECKPOINT = """
    INSERT INTO {schema}.checkpoints AS c (name, position) VALUES (?, ?)
    ON CONFLICT (name) DO UPDATE SET position = excluded.position WHERE c.position = 0
    RETURNING position"""
MOVE_CHECKPOINT = (
    "UPDATE {schema}.checkpoints SET position = ? WHERE name = ? AND position = ? RETURNING position"
)


# -- process managers ---------------------------------------------------------
LOAD_PROCESSES = (
    "SELECT name, process_id, version, payload::TEXT FROM {schema}.processes"
    " WHERE name = ? AND process_id IN (SELECT unnest(?::TEXT[]))"
)
_PROCESS_BATCH = (
    "SELECT unnest(?::TEXT[]) AS process_id, unnest(?::BIGINT[]) AS version, unnest(?::TEXT[]) AS payload"
)
# As for views: a state is written only from the version it was read at, and both
# return the states they wrote.
UPDATE_PROCESSES = f"""
    UPDATE {{schema}}.processes AS p SET version = b.version, payload = b.payload::{{json}}
    FROM ({_PROCESS_BATCH}) AS b
    WHERE p.name = ? AND p.process_id = b.process_id AND p.version = b.version - 1
    RETURNING p.process_id"""
INSERT_PROCESSES = f"""
    INSERT INTO {{schema}}.processes (name, process_id, version, payload)
    SELECT ?::TEXT, b.process_id, b.version, b.payload::{{json}} FROM ({_PROCESS_BATCH}) AS b
    ON CONFLICT (name, process_id) DO NOTHING
    RETURNING process_id"""
_DEADLINE_COLUMNS = (
    "name, process_id, deadline, due_at, origin, aggregate_type, aggregate_id, command_type,"
    " command, metadata"
)
# Every parameter in the USING list, in order: DuckDB before 1.3 numbers a DELETE's
# WHERE parameters before those of its USING clause.
DELETE_DEADLINES = """
    DELETE FROM {schema}.deadlines AS d
    USING (SELECT ?::TEXT AS name, unnest(?::TEXT[]) AS process_id, unnest(?::TEXT[]) AS deadline) AS c
    WHERE d.name = c.name AND d.process_id = c.process_id AND d.deadline = c.deadline"""
INSERT_DEADLINES = f"""
    INSERT INTO {{schema}}.deadlines ({_DEADLINE_COLUMNS})
    SELECT ?::TEXT, unnest(?::TEXT[]), unnest(?::TEXT[]), unnest(?::TIMESTAMPTZ[]), unnest(?::TEXT[]),
           unnest(?::TEXT[]), unnest(?::TEXT[]), unnest(?::TEXT[]), unnest(?::TEXT[])::{{json}},
           unnest(?::TEXT[])::{{json}}"""
_LOAD_DEADLINES = (
    "SELECT name, process_id, deadline, due_at, origin, aggregate_type, aggregate_id, command_type,"
    " command::TEXT, metadata::TEXT FROM {{schema}}.deadlines WHERE name = ?{due}"
    " ORDER BY due_at, process_id, deadline"
)
LOAD_DEADLINES = _LOAD_DEADLINES.format(due="")
LOAD_DUE_DEADLINES = _LOAD_DEADLINES.format(due=" AND due_at <= ?")


def process_batches(states: Sequence[StoredProcess]) -> tuple[list[list[object]], list[list[object]]]:
    """Parameters (after the name) of ``INSERT_PROCESSES`` (new states) and ``UPDATE_PROCESSES``."""

    def columns(batch: Sequence[StoredProcess]) -> list[list[object]]:
        return [[s.process_id for s in batch], [s.version for s in batch], [s.payload for s in batch]]

    return columns([s for s in states if s.version == 1]), columns([s for s in states if s.version != 1])


def deadline_columns(deadlines: Sequence[StoredDeadline]) -> list[list[object]]:
    """Parameters (after the name) of ``INSERT_DEADLINES``: one list per column."""
    return [
        [d.process_id for d in deadlines],
        [d.deadline for d in deadlines],
        [d.due_at for d in deadlines],
        [d.origin for d in deadlines],
        [d.aggregate_type for d in deadlines],
        [d.aggregate_id for d in deadlines],
        [d.command_type for d in deadlines],
        [d.command for d in deadlines],
        [d.metadata for d in deadlines],
    ]


def query_batches(records: Sequence[StoredQuery]) -> tuple[list[list[object]], list[list[object]]]:
    """Parameters of ``INSERT_QUERIES`` (new views) and ``UPDATE_QUERIES`` (the others)."""
    new = [r for r in records if r.version == 1]
    old = [r for r in records if r.version != 1]
    return _columns(new), _columns(old)


def _columns(records: Sequence[StoredQuery]) -> list[list[object]]:
    return [
        [r.query_type for r in records],
        [r.view_id for r in records],
        [r.version for r in records],
        [r.payload for r in records],
    ]


def view_conflict_message(records: Sequence[StoredQuery], written: set[tuple[str, str]]) -> str:
    """Why a batch of views was refused: the first view another writer changed."""
    lost = next(r for r in records if (r.query_type, r.view_id) not in written)
    return (
        f"view {lost.query_type}/{lost.view_id} is no longer at version {lost.version - 1}: "
        "another writer updated it first. Nothing of this batch was written; reload the "
        "view and apply the events again."
    )


def conflict_message(records: Sequence[StoredEvent], stored_version: int) -> str:
    """Why a commit was refused: the stream already has events at these sequences."""
    first = records[0]
    stream = (first.aggregate_type, first.aggregate_id)
    sequences = sorted(r.sequence for r in records if (r.aggregate_type, r.aggregate_id) == stream)
    name = f"{first.aggregate_type}/{first.aggregate_id}"
    if stored_version < sequences[0] and len(set(sequences)) < len(sequences):
        return (
            f"{name}: this commit writes the same sequence twice ({sequences}); nothing was "
            "stored. Give each event of a stream its own sequence."
        )
    span = f"{sequences[0]}..{sequences[-1]}" if len(sequences) > 1 else str(sequences[0])
    return (
        f"{name} already has events up to sequence {stored_version}, so sequence {span} of this "
        "commit is taken: another writer committed first, and nothing of this commit was stored. "
        "Reload the aggregate and retry the command (CqrsFramework(retries=N) does this)."
    )
