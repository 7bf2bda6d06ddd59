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
from cqrs_lab.stores.base import EVENT_COLUMNS, StoredQuery

__all__ = [
    "CREATE_TABLES",
    "DELETE_CHECKPOINT",
    "DELETE_QUERIES",
    "EVENT_COLUMN_LIST",
    "EXPORT",
    "IMPORT_CONFLICT",
    "INSERT_QUERIES",
    "LOAD_CHECKPOINT",
    "LOAD_QUERIES",
    "LOAD_QUERY",
    "LOAD_SCHEMA_VERSION",
    "LOAD_SNAPSHOT",
    "LOAD_STREAM",
    "LOAD_STREAM_EVENTS",
    "MAX_POSITION",
    "READ_ALL",
    "SAVE_CHECKPOINT",
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_TABLE",
    "STAMP_SCHEMA_VERSION",
    "STREAM_VERSION",
    "TABLE_EXISTS",
    "UPDATE_QUERIES",
    "UPSERT_SNAPSHOT",
    "conflict_message",
    "query_batches",
    "render",
    "view_conflict_message",
]

SCHEMA_VERSION = 1
"""Version of the table layout below; a database stamped with a higher one is refused."""


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

# -- snapshots ----------------------------------------------------------------
LOAD_SNAPSHOT = (
    "SELECT aggregate_type, aggregate_id, version, payload::TEXT FROM {schema}.snapshots"
    " WHERE aggregate_type = ? AND aggregate_id = ?"
)
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
SAVE_CHECKPOINT = """
    INSERT INTO {schema}.checkpoints (name, position) VALUES (?, ?)
    ON CONFLICT (name) DO UPDATE SET position = excluded.position"""
DELETE_CHECKPOINT = "DELETE FROM {schema}.checkpoints WHERE name = ?"


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
