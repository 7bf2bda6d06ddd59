"""``AsyncPostgresEventStore``: the PostgreSQL event store on psycopg's asyncio pool.

Same schema, same statements (``cqrs_lab.stores.postgres`` renders them once
for both), same guarantees: a commit is one statement that takes its positions
from ``log_head`` and sends ``NOTIFY cqrs_lab_events``, so sync and async
stores on one schema share one gap-free global order and wake each other's
subscribers. The pool opens (and the tables are created) on first use, in the
running event loop; use the store from that loop and ``await store.close()``
(or ``async with store:``) when done.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import Any, Self

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from cqrs_lab.aio.subscriptions import AsyncSubscription
from cqrs_lab.codec import EventCodec, StoredEvent
from cqrs_lab.domain import Event
from cqrs_lab.envelope import EventEnvelope, envelope_of
from cqrs_lab.errors import ConcurrencyError, ConfigurationError, StoreError, StoreUnavailableError
from cqrs_lab.stores import _sql
from cqrs_lab.stores.base import (
    RecordCodec,
    StoredCommand,
    StoredSnapshot,
    command_conflict,
    validate_identifier,
)
from cqrs_lab.stores.postgres import (
    _CHECK_IDLE_AFTER,
    DEFAULT_SCHEMA,
    EVENTS_CHANNEL,
    _describe,
    _resolve_dsn,
    _statements,
    insert_statement,
    prepare,
    snapshot_and_stream,
    store_errors,
)
from cqrs_lab.subscriptions import POLL_INTERVAL

__all__ = ["AsyncPostgresEventStore"]


class _IdleCheck:
    """The pool's ``configure`` and ``check`` callbacks, as the sync store has them: each
    connection works in UTC, and one unused for a while is tried before it is handed out
    (a server restarted or a backend terminated since is then replaced, not failed on)."""

    def __init__(self) -> None:
        self.used_at: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float]
        self.used_at = weakref.WeakKeyDictionary()  # a pooled connection's last checkout

    async def configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute("SET TIME ZONE 'UTC'")
        self.used_at[conn] = time.monotonic()

    async def check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        now = time.monotonic()
        if now - self.used_at.get(conn, 0.0) >= _CHECK_IDLE_AFTER:
            await AsyncConnectionPool.check_connection(conn)
        self.used_at[conn] = now


class AsyncPostgresEventStore(RecordCodec):
    """Event store in a PostgreSQL schema, for asyncio; ``dsn`` defaults to ``$CQRS_LAB_POSTGRES_DSN``."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        schema: str = DEFAULT_SCHEMA,
        codec: EventCodec | None = None,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
    ) -> None:
        super().__init__(codec)
        if pool_size < 1:
            raise ConfigurationError(f"pool_size must be 1 or more, not {pool_size}")
        if connect_timeout <= 0:
            raise ConfigurationError(f"connect_timeout must be positive, not {connect_timeout}")
        self._q = _statements(validate_identifier(schema))
        self.dsn = _resolve_dsn(dsn)
        self.label = _describe(self.dsn)
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    @property
    def schema(self) -> str:
        return self._q.schema

    async def _open(self) -> AsyncConnectionPool:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._closed:
                raise StoreError(f"the PostgreSQL store on {self.label} is closed; open a new one")
            if self._pool is None:
                # the sync code creates the tables (or checks their version) once, in a thread
                await asyncio.to_thread(prepare, self.dsn, self.label, self.connect_timeout, self._q)
                idle = _IdleCheck()
                pool = AsyncConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs={"autocommit": True, "connect_timeout": max(1, int(self.connect_timeout))},
                    configure=idle.configure,
                    check=idle.check,
                    open=False,
                    timeout=self.connect_timeout,  # bounded while the server is away, as the sync pool
                    reconnect_timeout=self.connect_timeout / 2,
                    name=f"cqrs_lab async {self.label}",
                )
                try:
                    await pool.open(wait=True, timeout=self.connect_timeout)
                except PoolTimeout as exc:
                    await pool.close()
                    raise StoreUnavailableError(
                        f"no PostgreSQL connection to {self.label} within {self.connect_timeout}s. "
                        "Check that the server is running and reachable."
                    ) from exc
                self._pool = pool
        return self._pool

    @asynccontextmanager
    async def _connection(self, what: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        pool = await self._open()
        with store_errors(self.label, what):
            async with pool.connection() as conn:
                yield conn

    # -- reading ------------------------------------------------------------
    async def load_stream(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> list[tuple[int, str, Event]]:
        """``(sequence, event_id, event)`` of the stream after ``after_sequence`` (what a load needs)."""
        async with self._connection("load events") as conn:
            cursor = await conn.execute(
                self._q.load_stream_events, [aggregate_type, aggregate_id, after_sequence]
            )
            rows = await cursor.fetchall()
        return self._decode_stream(aggregate_type, aggregate_id, rows)

    async def load_snapshot_and_stream(
        self, aggregate_type: str, aggregate_id: str
    ) -> tuple[StoredSnapshot | None, list[tuple[int, str, Event]]]:
        """The latest snapshot and the events after it, in one round trip."""
        key = [aggregate_type, aggregate_id]
        async with self._connection("load a snapshot and events") as conn:
            cursor = await conn.execute(self._q.load_snapshot_and_stream, key + key)
            rows = await cursor.fetchall()
        return snapshot_and_stream(self, aggregate_type, aggregate_id, rows)

    async def load_events(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> list[EventEnvelope]:
        """The stream's events after ``after_sequence`` as envelopes, in sequence order."""
        async with self._connection("load events") as conn:
            cursor = await conn.execute(self._q.load_stream, [aggregate_type, aggregate_id, after_sequence])
            rows = await cursor.fetchall()
        return self._decode_rows([StoredEvent(*row) for row in rows])

    async def load_command(
        self, aggregate_type: str, aggregate_id: str, command_id: str
    ) -> StoredCommand | None:
        """The command committed with ``command_id`` on that aggregate, if any."""
        async with self._connection("load a command") as conn:
            cursor = await conn.execute(self._q.load_command, [aggregate_type, aggregate_id, command_id])
            row = await cursor.fetchone()
        return None if row is None else StoredCommand(*row)

    async def _read_records(self, after_position: int, limit: int) -> list[StoredEvent]:
        async with self._connection("read the event log") as conn:
            cursor = await conn.execute(self._q.read_all, [after_position, limit])
            rows = await cursor.fetchall()
        return [StoredEvent(*row) for row in rows]

    async def _read(self, after_position: int, limit: int) -> list[EventEnvelope]:
        return self._decode_rows(await self._read_records(after_position, limit))

    async def read_all(
        self, after_position: int = 0, *, batch_size: int = 1000
    ) -> AsyncIterator[EventEnvelope]:
        """Every event after ``after_position`` in global order (``async for``)."""
        position = after_position
        while True:
            records = await self._read_records(position, batch_size)
            for envelope in self._iter_decode(records):
                yield envelope
            if len(records) < batch_size:
                return
            position = records[-1].position

    # -- writing ------------------------------------------------------------
    async def commit(
        self,
        envelopes: Sequence[EventEnvelope],
        *,
        snapshot: StoredSnapshot | None = None,
        command: StoredCommand | None = None,
    ) -> list[EventEnvelope]:
        """Store one command's events (and a snapshot, and the command's id) atomically;
        ``ConcurrencyError`` if a sequence or the command id is taken, ``UnstorableEventError``
        for an event that would not read back. Returns the envelopes with their global
        ``position`` and their events as read back."""
        if not envelopes:
            return []
        done: dict[int, str] = {}
        records = [self._encode(e, done) for e in envelopes]
        events = self._read_back(records, envelopes)  # nothing is acknowledged that a load would fail on
        statement, params = insert_statement(self._q, records)
        async with self._connection("commit events") as conn:
            try:
                if snapshot is None and command is None:
                    rows = await (await conn.execute(statement, params)).fetchall()
                else:
                    async with conn.transaction():
                        rows = await (await conn.execute(statement, params)).fetchall()
                        if snapshot is not None:
                            await conn.execute(
                                self._q.upsert_snapshot,
                                [
                                    snapshot.aggregate_type,
                                    snapshot.aggregate_id,
                                    snapshot.version,
                                    snapshot.payload,
                                ],
                            )
                        if command is not None:
                            await conn.execute(self._q.insert_command, command.values())
            except pg_errors.UniqueViolation as exc:
                if command is not None:
                    taken = await (await conn.execute(self._q.load_command, command.key())).fetchone()
                    if taken is not None:
                        raise ConcurrencyError(command_conflict(command)) from exc
                first = records[0]
                cursor = await conn.execute(
                    self._q.stream_version, [first.aggregate_type, first.aggregate_id]
                )
                row = await cursor.fetchone()
                raise ConcurrencyError(_sql.conflict_message(records, row[0] if row else 0)) from exc
        positions = sorted(int(row[0]) for row in rows)
        return [
            envelope_of(
                e.aggregate_type, e.aggregate_id, e.sequence, event, e.metadata, e.recorded_at, e.event_id, p
            )
            for e, event, p in zip(envelopes, events, positions, strict=True)
        ]

    # -- live ---------------------------------------------------------------
    @asynccontextmanager
    async def subscribe(
        self,
        after_position: int = 0,
        timeout: float | None = 5.0,
        *,
        poll_interval: float = POLL_INTERVAL,
        batch_size: int = 1000,
    ) -> AsyncIterator[AsyncSubscription]:
        """Every event after ``after_position``, then each new one as it is committed (by any
        process): ``async with store.subscribe() as events: async for envelope in events``.

        A connection of its own LISTENs to the schema's commits; the log is re-read
        every ``poll_interval`` seconds in any case. Ends after ``timeout`` idle seconds.
        """
        await self._open()
        payload = sql.Identifier(self.schema).as_string()
        with store_errors(self.label, "listen for commits"):
            listener = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
            )
        async with listener:
            with store_errors(self.label, "listen for commits"):
                await listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(EVENTS_CHANNEL)))

            async def wait(seconds: float) -> None:
                end = time.monotonic() + seconds
                with store_errors(self.label, "wait for commits"):
                    while (left := end - time.monotonic()) > 0:
                        async with aclosing(listener.notifies(timeout=left, stop_after=1)) as notes:
                            async for note in notes:
                                if note.payload == payload:
                                    return

            subscription = AsyncSubscription(
                self._read,
                wait,
                after_position=after_position,
                timeout=timeout,
                poll_interval=poll_interval,
                batch_size=batch_size,
            )
            try:
                yield subscription
            finally:
                subscription.close()

    # -- lifecycle ------------------------------------------------------------
    async def close(self) -> None:
        """Close the pool. Idempotent."""
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncPostgresEventStore({self.label!r}, schema={self.schema!r})"
