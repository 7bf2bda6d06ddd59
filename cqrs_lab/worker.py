"""Projection workers: keep projections and process runners going, each in exactly one worker.

Run ``ProjectionWorker(projections).run(stop)`` (or ``cqrs-lab project``) in as
many processes, on as many machines, as you like; ``projections`` may hold
``ProcessRunner``s too. On PostgreSQL each worker holds a lease per projection
or runner it runs (``ProjectionLeases``: advisory locks of its own session), so
each runs in one worker at a time; the workers share them out evenly, and when a
worker dies its leases go with its session and another worker takes its work
over within ``lease`` seconds. On memory and DuckDB (one process) the leases are
kept in the process.

A worker checks its leases, runs one batch of each projection and runner it
holds in turn, then waits for the next commit (``store.subscribe``'s wake-ups:
NOTIFY on PostgreSQL); every ``lease / 5`` seconds it also takes or hands over
work to keep its fair share. A runner that has caught up with the log also fires
its due deadlines (``fire_due()``, on the runner's clock), at each round, so a
deadline is sent within about a quarter of a second of falling due. Setting
``stop`` ends the worker after the batch in flight (which commits, or rolls
back, whole).

Exactly once, even when a lease is lost under a running batch (the worker's
session killed while the batch goes on on a pooled connection): a batch commits
its views, or its runner's states and deadlines, together with its checkpoint,
and the checkpoint moves only from where the batch started. So whoever took the
work over and moved on, the late batch writes nothing; its runner's commands
carry deterministic command ids, so the ones it sent are not applied twice.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Hashable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeAlias

from cqrs_lab.errors import ConcurrencyError, ConfigurationError, CqrsLabError
from cqrs_lab.process import ProcessRunner
from cqrs_lab.projections import Projection
from cqrs_lab.stores.base import QueryStore, RecordEventStore
from cqrs_lab.subscriptions import POLL_INTERVAL, Signal

if TYPE_CHECKING:
    from cqrs_lab.stores.postgres import PostgresQueryStore

__all__ = ["ProjectionWorker"]

log = logging.getLogger("cqrs_lab.worker")

_IDLE_WAIT = 0.25
"""Longest wait between two rounds (seconds): how fast an idle worker stops, and how late
a deadline may fire."""

Work: TypeAlias = Projection | ProcessRunner[Any]
"""What a worker runs: a projection, or a process runner (with its deadlines)."""


def _kind(work: Work) -> str:
    return "projection" if isinstance(work, Projection) else "process runner"


class _Leases(Protocol):
    """The leases of one database's projections, as one worker holds them."""

    def workers(self) -> int: ...

    def take(self, name: str) -> bool: ...

    def give_back(self, name: str) -> None: ...

    def renew(self) -> None: ...

    def close(self) -> None: ...


class _LocalLeases:
    """Leases of a memory or DuckDB store: only this process can write it, so they live here."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _held: ClassVar[dict[tuple[Hashable, str], object]] = {}
    _workers: ClassVar[Counter[Hashable]] = Counter()

    def __init__(self, scope: Hashable) -> None:
        self.scope = scope
        with self._lock:
            self._workers[scope] += 1

    def workers(self) -> int:
        with self._lock:
            return self._workers[self.scope]

    def take(self, name: str) -> bool:
        with self._lock:
            return self._held.setdefault((self.scope, name), self) is self

    def give_back(self, name: str) -> None:
        with self._lock:
            if self._held.get((self.scope, name)) is self:
                del self._held[(self.scope, name)]

    def renew(self) -> None:
        """Leases in this process cannot be lost."""

    def close(self) -> None:
        with self._lock:
            for key in [k for k, owner in self._held.items() if owner is self]:
                del self._held[key]
            self._workers[self.scope] -= 1


def _postgres(query_store: QueryStore) -> PostgresQueryStore | None:
    """``query_store`` if it is a PostgreSQL one (without importing psycopg otherwise)."""
    module = sys.modules.get("cqrs_lab.stores.postgres")
    if module is None:
        return None
    cls: type[PostgresQueryStore] = module.PostgresQueryStore
    return query_store if isinstance(query_store, cls) else None


def _key(query_store: QueryStore) -> Hashable:
    """What a projection name is unique in: the database (and schema) of its checkpoints."""
    postgres = _postgres(query_store)
    if postgres is not None:
        return (postgres._pool.dsn, postgres.schema)
    database: Hashable | None = getattr(query_store, "_db", None)  # DuckDB: one per file
    return id(query_store) if database is None else database


def _leases(query_store: QueryStore, lease: float, worker: str) -> _Leases:
    postgres = _postgres(query_store)
    if postgres is not None:
        from cqrs_lab.stores.postgres import ProjectionLeases

        return ProjectionLeases(postgres, lease=lease, worker=worker)
    return _LocalLeases(_key(query_store))


class ProjectionWorker:
    """Runs ``projections`` (``Projection``s and ``ProcessRunner``s) continuously until
    ``run``'s ``stop`` event is set.

    ``lease`` (seconds) bounds how long the work of a worker that died waits for
    another worker to take it over. ``name`` identifies the worker in logs and,
    on PostgreSQL, in ``pg_stat_activity.application_name`` (``cqrs_lab worker
    <name>``); the default is ``host:pid``. The commands a process runner's
    domain rejects are logged (WARNING) and taken out of its ``failures``.
    """

    def __init__(self, projections: Iterable[Work], *, lease: float = 10.0, name: str | None = None):
        self.projections: list[Work] = list(projections)
        if not self.projections:
            raise ConfigurationError("a ProjectionWorker needs at least one Projection or ProcessRunner")
        bad = [p for p in self.projections if not isinstance(p, Projection | ProcessRunner)]
        if bad:
            raise ConfigurationError(f"{bad[0]!r} is not a Projection or a ProcessRunner")
        names = Counter((_key(p.query_store), p.name) for p in self.projections)
        twice = [name for (_, name), n in names.items() if n > 1]
        if twice:
            raise ConfigurationError(
                f"two projections or process runners are named {twice[0]!r} in one database: give "
                "each its own name (it names its checkpoint and its lease)"
            )
        if not lease > 0:
            raise ConfigurationError(f"lease must be a positive number of seconds, not {lease}")
        self.lease = lease
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.applied: Counter[str] = Counter()
        """Events each projection applied, or each runner handled, in this worker (by name)."""
        self.fired: Counter[str] = Counter()
        """Deadlines each process runner fired in this worker (by name)."""

    def run(self, stop: threading.Event) -> dict[str, int]:
        """Work until ``stop`` is set; returns how many events each projection applied (each
        runner handled) here, by name."""
        groups: dict[Hashable, list[Work]] = {}
        for projection in self.projections:
            groups.setdefault(_key(projection.query_store), []).append(projection)
        boards: dict[Hashable, _Leases] = {}
        owned: dict[Hashable, list[Work]] = {key: [] for key in groups}
        log.info("worker %s started: %s, lease %ss", self.name, self._names(), self.lease)
        tick = self.lease / 5
        next_tick = 0.0
        try:
            with self._wake_ups() as signal:
                while not stop.is_set():
                    if time.monotonic() >= next_tick:
                        for key, projections in groups.items():
                            self._balance(key, projections, boards, owned[key])
                        next_tick = time.monotonic() + tick
                    seen = signal.count
                    busy = False
                    for key, held in owned.items():
                        if held and self._renewed(key, boards, held):
                            for projection in list(held):
                                if stop.is_set():
                                    break
                                busy = self._step(projection) or busy
                    if not busy:
                        signal.wait(seen, max(0.0, min(_IDLE_WAIT, next_tick - time.monotonic())))
        finally:
            for key, board in boards.items():
                for projection in owned[key]:
                    self._give_back(board, projection, "stopping")
                board.close()
            log.info("worker %s stopped (%s)", self.name, "; ".join(map(self._summary, self.projections)))
        return {p.name: self.applied[p.name] for p in self.projections}

    def _names(self) -> str:
        projections = [p.name for p in self.projections if isinstance(p, Projection)]
        runners = [p.name for p in self.projections if isinstance(p, ProcessRunner)]
        parts = [f"projections {', '.join(projections)}"] if projections else []
        return "; ".join(parts + ([f"process runners {', '.join(runners)}"] if runners else []))

    def _summary(self, work: Work) -> str:
        if isinstance(work, Projection):
            return f"{work.name}: {self.applied[work.name]} event(s) applied here"
        return (
            f"{work.name}: {self.applied[work.name]} event(s) handled and "
            f"{self.fired[work.name]} deadline(s) fired here"
        )

    def _wake_ups(self) -> AbstractContextManager[Signal]:
        """The commit signal of the first projection's event store (others are polled)."""
        store = self.projections[0].event_store
        if isinstance(store, RecordEventStore):
            return store._watch_commits()
        return nullcontext(Signal())

    def _step(self, work: Work) -> bool:
        """One batch of ``work`` (and the due deadlines of a runner that has caught up with
        the log); True if it did anything."""
        done = 0

        def count(events: int) -> None:
            nonlocal done
            done += events
            self.applied[work.name] += events

        fired = 0
        try:
            if isinstance(work, Projection):
                work.run(limit=work.batch_size, progress=count)
            else:
                try:
                    work.run_once(limit=work.batch_size, progress=count)
                    if done < work.batch_size:  # caught up: schedules cancelled by the log are cancelled
                        fired = work.fire_due()
                        self.fired[work.name] += fired
                finally:
                    self._report_rejections(work)
        except ConcurrencyError as exc:
            log.warning(
                "%s %s met a concurrent writer, retried at the next round: %s", _kind(work), work.name, exc
            )
            return False
        except CqrsLabError as exc:
            log.error("%s %s failed, retried at the next wake-up: %s", _kind(work), work.name, exc)
            time.sleep(POLL_INTERVAL)
            return False
        return done > 0 or fired > 0

    def _report_rejections(self, runner: ProcessRunner[Any]) -> None:
        """Log the commands the domain rejected, and take them out of ``runner.failures``
        (a worker runs for months: it does not keep them)."""
        for rejection in runner.failures:
            send = rejection.send
            log.warning(
                "process runner %s: %s sent to %s/%s by instance %s was rejected: %s",
                runner.name,
                type(send.command).__name__,
                send.aggregate_type,
                send.aggregate_id,
                rejection.process_id,
                rejection.error,
            )
        runner.failures.clear()

    def _balance(
        self,
        key: Hashable,
        projections: list[Work],
        boards: dict[Hashable, _Leases],
        held: list[Work],
    ) -> None:
        """Renew this database's leases, then take or hand over work to hold a fair share."""
        try:
            board = boards.get(key)
            if board is None:
                board = boards[key] = _leases(projections[0].query_store, self.lease, self.name)
            board.renew()
            share = math.ceil(len(projections) / max(1, board.workers()))
            while len(held) > share:
                self._give_back(board, held.pop(), "handing it to another worker")
            free = [p for p in projections if p not in held]
            start = hash(self.name) % len(free) if free else 0  # workers try different ones first
            for projection in free[start:] + free[:start]:
                if len(held) >= share:
                    break
                if board.take(projection.name):
                    held.append(projection)
                    log.info(
                        "worker %s took %s %s at checkpoint %d",
                        self.name,
                        _kind(projection),
                        projection.name,
                        projection.position,
                    )
        except CqrsLabError as exc:
            self._lost(key, boards, held, exc)

    def _renewed(self, key: Hashable, boards: dict[Hashable, _Leases], held: list[Work]) -> bool:
        """Check the leases before a round of batches, so a worker whose session died stops
        within one batch, not at its next tick."""
        try:
            boards[key].renew()
        except CqrsLabError as exc:
            self._lost(key, boards, held, exc)
            return False
        return True

    def _lost(
        self, key: Hashable, boards: dict[Hashable, _Leases], held: list[Work], exc: CqrsLabError
    ) -> None:
        """The leases of ``key`` are gone (or never came): run none of its work."""
        if held:
            log.error(
                "worker %s lost its leases (%s); stopped running %s",
                self.name,
                exc,
                ", ".join(p.name for p in held),
            )
        else:
            log.error("worker %s cannot reach its leases: %s", self.name, exc)
        held.clear()
        lost = boards.pop(key, None)
        if lost is not None:
            lost.close()

    def _give_back(self, board: _Leases, projection: Work, why: str) -> None:
        try:
            board.give_back(projection.name)
            checkpoint = projection.position
        except CqrsLabError as exc:
            log.warning("worker %s could not give back %s: %s", self.name, projection.name, exc)
            return
        log.info(
            "worker %s gave back %s %s at checkpoint %d (%s)",
            self.name,
            _kind(projection),
            projection.name,
            checkpoint,
            why,
        )

    def __repr__(self) -> str:
        names = ", ".join(p.name for p in self.projections)
        return f"ProjectionWorker({self.name!r}, projections=[{names}], lease={self.lease})"
