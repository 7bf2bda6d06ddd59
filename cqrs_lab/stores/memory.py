"""In-memory stores: dicts and lists behind a lock, for tests and quick exploration.

Events, snapshots and views are kept serialized (JSON text), exactly as the SQL
stores keep them, so a type that does not round-trip fails here already.
"""

from __future__ import annotations

import threading
from bisect import bisect_right, insort
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from cqrs_lab.codec import EventCodec, StoredEvent
from cqrs_lab.errors import ConcurrencyError
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

__all__ = ["MemoryEventStore", "MemoryQueryStore"]


def _sequence(record: StoredEvent) -> int:
    return record.sequence


class MemoryEventStore(RecordEventStore):
    """Events in a list in commit order; ``position`` is the index + 1."""

    def __init__(self, codec: EventCodec | None = None) -> None:
        super().__init__(codec)
        self._lock = threading.Lock()
        self._log: list[StoredEvent] = []
        self._streams: dict[tuple[str, str], list[StoredEvent]] = {}
        self._snapshots: dict[tuple[str, str], StoredSnapshot] = {}
        self._taken: set[tuple[str, str, int]] = set()
        self._commits = Signal()
        self._commands: dict[tuple[str, str, str], StoredCommand] = {}

    def _load_records(self, aggregate_type: str, aggregate_id: str, after_sequence: int) -> list[StoredEvent]:
        with self._lock:
            stream = self._streams.get((aggregate_type, aggregate_id), [])
            return stream[bisect_right(stream, after_sequence, key=_sequence) :]

    def stream_head(self, aggregate_type: str, aggregate_id: str) -> tuple[int, str] | None:
        """The stream's last (sequence, event id): the list knows it."""
        with self._lock:
            stream = self._streams.get((aggregate_type, aggregate_id))
            return (stream[-1].sequence, stream[-1].event_id) if stream else None

    def _check(self, records: Sequence[StoredEvent], importing: bool = False) -> None:
        taken: set[tuple[str, str, int]] = set()
        for r in records:
            key = (r.aggregate_type, r.aggregate_id, r.sequence)
            if key in taken or key in self._taken:
                if importing:
                    stored = key in self._taken
                    raise ConcurrencyError(
                        import_conflict(r.aggregate_type, r.aggregate_id, r.sequence, stored)
                    )
                raise ConcurrencyError(
                    f"{r.aggregate_type}/{r.aggregate_id} already has sequence {r.sequence}: "
                    "another writer committed first. Reload and retry the command."
                )
            taken.add(key)

    def _append_records(
        self,
        records: Sequence[StoredEvent],
        snapshot: StoredSnapshot | None,
        command: StoredCommand | None = None,
    ) -> list[int]:
        return self._append(records, snapshot, command)

    def _append(
        self,
        records: Sequence[StoredEvent],
        snapshot: StoredSnapshot | None,
        command: StoredCommand | None = None,
        importing: bool = False,
    ) -> list[int]:
        with self._lock:
            self._check(records, importing)
            if command is not None:
                if command.key() in self._commands:
                    raise ConcurrencyError(command_conflict(command))
                self._commands[command.key()] = command
            positions = []
            for r in records:
                stored = r._replace(position=len(self._log) + 1)
                self._log.append(stored)
                self._taken.add((r.aggregate_type, r.aggregate_id, r.sequence))
                insort(
                    self._streams.setdefault((r.aggregate_type, r.aggregate_id), []), stored, key=_sequence
                )
                positions.append(stored.position)
            if snapshot is not None:
                key = (snapshot.aggregate_type, snapshot.aggregate_id)
                current = self._snapshots.get(key)
                if current is None or current.version < snapshot.version:
                    self._snapshots[key] = snapshot
        self._commits.fire()
        return positions

    @contextmanager
    def _watch_commits(self) -> Iterator[Signal]:
        yield self._commits

    def _read_records(self, after_position: int, limit: int) -> list[StoredEvent]:
        with self._lock:
            return self._log[after_position : after_position + limit]

    def load_snapshot(self, aggregate_type: str, aggregate_id: str) -> StoredSnapshot | None:
        with self._lock:
            return self._snapshots.get((aggregate_type, aggregate_id))

    def _stream_heads(self, aggregate_types: list[str], aggregate_ids: list[str]) -> list[int]:
        with self._lock:
            streams = [self._streams.get(key) for key in zip(aggregate_types, aggregate_ids, strict=True)]
        return [stream[-1].sequence if stream else 0 for stream in streams]

    def _insert_import(self, table: pa.Table) -> int:
        """Append a checked event table atomically; returns the count.

        No database parses the JSON here, so every payload and metadata is parsed first.
        """
        from cqrs_lab.stores.arrow import invalid_json

        invalid = invalid_json(table)
        if invalid is not None:
            raise invalid
        table = table.sort_by("position")
        records = [
            StoredEvent(
                aggregate_type=row["aggregate_type"],
                aggregate_id=row["aggregate_id"],
                sequence=row["sequence"],
                event_type=row["event_type"],
                event_version=row["event_version"],
                payload=row["payload"],
                metadata=row["metadata"],
                recorded_at=row["recorded_at"],
                event_id=row["event_id"],
            )
            for row in table.to_pylist()
        ]
        return len(self._append(records, None, importing=True))

    def load_command(self, aggregate_type: str, aggregate_id: str, command_id: str) -> StoredCommand | None:
        with self._lock:
            return self._commands.get((aggregate_type, aggregate_id, command_id))

    def export_arrow(self, after_position: int = 0) -> pa.Table:
        """The log after ``after_position`` as an Arrow table."""
        import pyarrow as pa

        from cqrs_lab.stores.arrow import event_arrow_schema
        from cqrs_lab.stores.base import EVENT_COLUMNS

        with self._lock:
            rows = self._log[after_position:]
        return pa.Table.from_pylist(
            [{c: getattr(r, c) for c in EVENT_COLUMNS} for r in rows], schema=event_arrow_schema()
        )

    def close(self) -> None:
        """Nothing to release; the data lives as long as the object."""

    def __repr__(self) -> str:
        return f"MemoryEventStore(events={len(self._log)})"

    def _repr_html_(self) -> str:
        from cqrs_lab._render import counts_html

        with self._lock:
            counts = {
                "events": len(self._log),
                "streams": len(self._streams),
                "snapshots": len(self._snapshots),
            }
            per_type = Counter(aggregate_type for aggregate_type, _ in self._streams)
        return counts_html("MemoryEventStore", counts, per_type, "streams")


class MemoryQueryStore(RecordQueryStore):
    """Views and checkpoints in dicts behind a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: dict[tuple[str, str], StoredQuery] = {}
        self._checkpoints: dict[str, int] = {}
        self._checkpoint_saved = Signal()
        self._processes: dict[tuple[str, str], StoredProcess] = {}
        self._deadlines: dict[tuple[str, str, str], StoredDeadline] = {}

    def _load_query(self, query_type: str, view_id: str) -> StoredQuery | None:
        with self._lock:
            return self._views.get((query_type, view_id))

    def _commit_queries(
        self, records: Sequence[StoredQuery], checkpoint: tuple[str, int, int] | None
    ) -> None:
        with self._lock:
            if checkpoint is not None and not self._checkpoint_at(checkpoint[0], checkpoint[1]):
                raise ConcurrencyError(checkpoint_conflict(checkpoint[0], checkpoint[1]))
            for r in records:
                current = self._views.get((r.query_type, r.view_id))
                stored_version = current.version if current else 0
                if stored_version != r.version - 1:
                    raise ConcurrencyError(
                        f"view {r.query_type}/{r.view_id} is at version {stored_version}, "
                        f"but this update was based on version {r.version - 1}: another "
                        "writer updated it first. Reload the view and apply the events again."
                    )
            for r in records:
                self._views[(r.query_type, r.view_id)] = r
            if checkpoint is not None:
                self._checkpoints[checkpoint[0]] = checkpoint[2]
        if checkpoint is not None:
            self._checkpoint_saved.fire()

    def _checkpoint_at(self, name: str, expected: int) -> bool:
        """Whether checkpoint ``name`` is at ``expected`` (0: also when there is none); hold the lock."""
        return self._checkpoints.get(name, 0) == expected

    @contextmanager
    def _watch_checkpoints(self) -> Iterator[Signal]:
        yield self._checkpoint_saved

    def load_checkpoint(self, name: str) -> int:
        with self._lock:
            return self._checkpoints.get(name, 0)

    def reset(self, query_types: Sequence[str], *, checkpoint: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._views if k[0] in set(query_types)]:
                del self._views[key]
            if checkpoint is not None:
                self._checkpoints.pop(checkpoint, None)

    def load_processes(self, name: str, process_ids: Iterable[str]) -> list[StoredProcess]:
        with self._lock:
            found = (self._processes.get((name, pid)) for pid in dict.fromkeys(process_ids))
            return [p for p in found if p is not None]

    def load_deadlines(self, name: str, *, due_by: datetime | None = None) -> list[StoredDeadline]:
        with self._lock:
            pending = [
                d
                for d in self._deadlines.values()
                if d.name == name and (due_by is None or d.due_at <= due_by)
            ]
        return sorted(pending, key=lambda d: (d.due_at, d.process_id, d.deadline))

    def commit_processes(
        self,
        name: str,
        states: Sequence[StoredProcess],
        *,
        deadlines: Sequence[StoredDeadline] = (),
        cancelled: Sequence[tuple[str, str]] = (),
        checkpoint: tuple[int, int] | None = None,
    ) -> None:
        with self._lock:
            for state in states:
                current = self._processes.get((name, state.process_id))
                if (current.version if current else 0) != state.version - 1:
                    raise ConcurrencyError(process_conflict(name))
            if checkpoint is not None and not self._checkpoint_at(name, checkpoint[0]):
                raise ConcurrencyError(process_conflict(name))
            for state in states:
                self._processes[(name, state.process_id)] = state
            for process_id, deadline in [*cancelled, *((d.process_id, d.deadline) for d in deadlines)]:
                self._deadlines.pop((name, process_id, deadline), None)
            for d in deadlines:
                self._deadlines[(name, d.process_id, d.deadline)] = d
            if checkpoint is not None:
                self._checkpoints[name] = checkpoint[1]
        if checkpoint is not None:
            self._checkpoint_saved.fire()

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"MemoryQueryStore(views={len(self._views)})"

    def _repr_html_(self) -> str:
        from cqrs_lab._render import counts_html

        with self._lock:
            counts = {"views": len(self._views), "checkpoints": len(self._checkpoints)}
            per_type = Counter(query_type for query_type, _ in self._views)
        return counts_html("MemoryQueryStore", counts, per_type, "views")
