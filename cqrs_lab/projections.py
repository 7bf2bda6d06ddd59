"""Catch-up projections: read the global log from a checkpoint, update views.

A ``Projection`` commits its view updates and its new checkpoint in one
transaction per batch, so each event is applied exactly once even if the
process dies between batches. The checkpoint moves only from where the batch
started: a runner of the same projection that lost a race (another process, a
worker whose lease expired) writes nothing of its batch. It is the answer to
events that were committed but never dispatched: a projection that fell behind
catches up from the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from itertools import islice
from typing import Any

from cqrs_lab.domain import Query
from cqrs_lab.envelope import EventEnvelope, QueryContext
from cqrs_lab.errors import ConcurrencyError, ConfigurationError, ProjectionLagError
from cqrs_lab.stores.base import EventStore, QueryStore, RecordQueryStore, validate_identifier
from cqrs_lab.subscriptions import POLL_INTERVAL, Signal, check_wait_arguments

__all__ = ["Projection"]

log = logging.getLogger("cqrs_lab.projections")

Progress = Callable[[int], None]
"""Called with the number of events applied after each batch."""


def _default_view_id(envelope: EventEnvelope) -> str:
    return envelope.aggregate_id


class Projection:
    """Keeps ``queries`` up to date from ``event_store``'s global log.

    ``aggregate_types`` limits which events are fed to the queries (all by
    default); ``view_id`` maps an envelope to the view it updates.
    """

    def __init__(
        self,
        name: str,
        event_store: EventStore,
        query_store: QueryStore,
        queries: Sequence[type[Query]],
        *,
        aggregate_types: Iterable[str] | None = None,
        view_id: Callable[[EventEnvelope], str] = _default_view_id,
        batch_size: int = 1000,
    ) -> None:
        if not queries:
            raise ConfigurationError("a Projection needs at least one Query class")
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be 1 or more, not {batch_size}")
        self.name = validate_identifier(name, "projection name")
        self.event_store = event_store
        self.query_store = query_store
        self.queries = list(queries)
        self.aggregate_types = None if aggregate_types is None else frozenset(aggregate_types)
        self.view_id = view_id
        self.batch_size = batch_size

    @property
    def position(self) -> int:
        """The global position of the last event this projection applied."""
        return self.query_store.load_checkpoint(self.name)

    def run(self, *, limit: int | None = None, progress: Progress | None = None) -> int:
        """Apply every event after the checkpoint, a batch per transaction; returns how many
        this call applied. ``limit`` bounds how many events it reads.

        When another runner of this projection (same name and query store) moves the
        checkpoint first, the batch in hand is dropped, nothing of it written, and
        reading goes on from the checkpoint that runner left: no event is applied twice.
        """
        done = 0
        left = limit
        position = self.position
        while left is None or left > 0:
            events = self.event_store.read_all(position, batch_size=self.batch_size)
            if left is not None:
                events = islice(events, left)
            while batch := list(islice(events, self.batch_size)):
                if left is not None:
                    left -= len(batch)
                try:
                    self._apply(position, batch)
                except ConcurrencyError:
                    moved = self.position
                    if moved == position:
                        raise  # a view another writer changed; the checkpoint is where it was
                    log.warning(
                        "projection %s: another runner moved the checkpoint from %d to %d first; "
                        "its batch up to position %d was not written, going on from %d",
                        self.name,
                        position,
                        moved,
                        batch[-1].position,
                        moved,
                    )
                    position = moved
                    break
                position = batch[-1].position
                done += len(batch)
                if progress is not None:
                    progress(len(batch))
            else:
                return done
        return done

    def _apply(self, position: int, batch: list[EventEnvelope]) -> None:
        """Apply ``batch`` (the events after checkpoint ``position``) and commit it."""
        relevant = [
            e for e in batch if self.aggregate_types is None or e.aggregate_type in self.aggregate_types
        ]
        view_ids = [self.view_id(e) for e in relevant]
        contexts: list[QueryContext[Any]] = []
        for query_cls in self.queries:
            views = self.query_store.load_many(query_cls, view_ids)
            for envelope, vid in zip(relevant, view_ids, strict=True):
                try:
                    views[vid].payload.update(envelope)
                except Exception as exc:
                    exc.add_note(
                        f"in {query_cls.__qualname__}.update on {envelope.event_type} "
                        f"({envelope.aggregate_type}/{envelope.aggregate_id} sequence "
                        f"{envelope.sequence}, position {envelope.position}); projection "
                        f"{self.name!r} stopped at the last batch it completed"
                    )
                    raise
            contexts.extend(views.values())
        self.query_store.commit_batch(contexts, checkpoint=(self.name, position, batch[-1].position))

    def wait_for(
        self, position: int, timeout: float | None = 5.0, *, poll_interval: float = POLL_INTERVAL
    ) -> int:
        """Block until this projection has applied the event at ``position`` (read-your-writes).

        Returns the checkpoint reached, whichever process runs the projection.
        Woken by checkpoint commits (in any process on PostgreSQL, in this one on
        memory and DuckDB); re-checks every ``poll_interval`` seconds anyway.
        Raises ``ProjectionLagError`` (saying how far behind it is) after
        ``timeout`` seconds (``None``: wait forever).
        """
        check_wait_arguments(timeout, poll_interval)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._watch_checkpoints() as signal:
            while True:
                seen = signal.count
                reached = self.position
                if reached >= position:
                    return reached
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise ProjectionLagError(self.name, position, reached, timeout)
                signal.wait(seen, poll_interval if deadline is None else min(poll_interval, deadline - now))

    def _watch_checkpoints(self) -> AbstractContextManager[Signal]:
        if isinstance(self.query_store, RecordQueryStore):
            return self.query_store._watch_checkpoints()
        return nullcontext(Signal())  # a store of the user's own: re-read every poll_interval

    def rebuild(self, *, progress: Progress | None = None) -> int:
        """Delete this projection's views and checkpoint, then replay the whole log."""
        self.query_store.reset([q.query_type for q in self.queries], checkpoint=self.name)
        return self.run(progress=progress)

    def __repr__(self) -> str:
        names = ", ".join(q.query_type for q in self.queries)
        return f"Projection({self.name!r}, queries=[{names}])"
