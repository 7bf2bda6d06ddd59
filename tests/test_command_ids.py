"""Idempotent commands: ``execute(..., command_id=...)`` commits a command id at most once per
aggregate, enforced by the store, on memory, DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import psycopg
import pytest
from psycopg import sql

from cqrs_lab import (
    AggregateError,
    ConcurrencyError,
    ConfigurationError,
    CqrsFramework,
    DuplicateCommandError,
    EventEnvelope,
    EventStore,
    MemoryEventStore,
    SequentialIds,
    StoreUnavailableError,
    UserError,
)
from cqrs_lab.examples.bank_account import BankAccount, DepositMoney, OpenBankAccount, WithdrawMoney
from cqrs_lab.stores import _sql
from cqrs_lab.stores.base import StoredCommand, StoredSnapshot
from tests.conftest import Backend, in_threads
from tests.domain_fixtures import Counter, Increment, TwoEvents

ROOT = Path(__file__).resolve().parent.parent


class Recorder:
    """A dispatcher that keeps what it was given."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[EventEnvelope] = []

    def dispatch(self, aggregate_id: str, envelopes: Sequence[EventEnvelope]) -> None:
        self.seen.extend(envelopes)


def bank(store: Any, **kwargs: Any) -> CqrsFramework[BankAccount]:
    return CqrsFramework(BankAccount, store, **kwargs)


def opened(store: Any, account: str = "ACC-1") -> CqrsFramework[BankAccount]:
    fw = bank(store)
    fw.execute(account, OpenBankAccount(account_id=account))
    return fw


@pytest.mark.parametrize("cache_size", [0, 256])
def test_repeating_a_command_id_returns_the_first_envelopes_and_commits_and_dispatches_nothing(
    backend: Backend, cache_size: int
) -> None:
    store = backend.event_store()
    opened(store)
    recorder = Recorder()
    fw = bank(store, dispatchers=[recorder], cache_size=cache_size)
    first = fw.execute("ACC-1", DepositMoney(amount=Decimal("10.00")), command_id="dep-42")
    again = fw.execute("ACC-1", DepositMoney(amount=Decimal("10.00")), command_id="dep-42")
    assert again == first
    assert [e.event_id for e in again] == [e.event_id for e in first]
    assert [e.sequence for e in store.load_events("BankAccount", "ACC-1")] == [1, 2]
    assert recorder.seen == first
    assert fw.load("ACC-1").balance == Decimal("10.00")
    assert first[0].metadata["command_id"] == "dep-42"


def test_execute_with_metadata_takes_a_command_id_too(backend: Backend) -> None:
    store = backend.event_store()
    fw = opened(store)
    first = fw.execute_with_metadata("ACC-1", DepositMoney(amount=Decimal("1.00")), {"user": "ada"}, "d-1")
    again = fw.execute_with_metadata(
        "ACC-1", DepositMoney(amount=Decimal("1.00")), {"user": "bob"}, command_id="d-1"
    )
    assert again == first and again[0].metadata["user"] == "ada"
    assert len(store.load_events("BankAccount", "ACC-1")) == 2


def test_a_repeat_returns_every_event_of_the_command_and_no_later_one(backend: Backend) -> None:
    store = backend.event_store()
    fw = CqrsFramework(Counter, store)
    fw.execute("c", Increment(by=1))
    first = fw.execute("c", TwoEvents(), command_id="two")
    fw.execute("c", Increment(by=5))
    again = fw.execute("c", TwoEvents(), command_id="two")
    assert [e.sequence for e in again] == [2, 3] and again == first
    assert fw.load("c").value == 7


def test_without_a_command_id_a_repeated_command_runs_again(backend: Backend) -> None:
    store = backend.event_store()
    fw = opened(store)
    fw.execute("ACC-1", DepositMoney(amount=Decimal("10.00")))
    fw.execute("ACC-1", DepositMoney(amount=Decimal("10.00")))
    assert fw.load("ACC-1").balance == Decimal("20.00")


def test_a_command_id_holds_across_framework_instances_and_store_objects(backend: Backend) -> None:
    first_store = backend.event_store()
    opened(first_store)
    first = bank(first_store).execute("ACC-1", DepositMoney(amount=Decimal("3.00")), command_id="c")
    # memory: another framework on the same store; SQL: another store object on the same database
    second_store = first_store if backend.name == "memory" else backend.event_store()
    again = bank(second_store, cache_size=0).execute(
        "ACC-1", DepositMoney(amount=Decimal("3.00")), command_id="c"
    )
    assert again == first
    assert bank(second_store).load("ACC-1").balance == Decimal("3.00")


@pytest.mark.parametrize(
    "other",
    [DepositMoney(amount=Decimal("11.00")), WithdrawMoney(amount=Decimal("10.00"))],
    ids=["other-fields", "other-type"],
)
def test_the_same_id_with_a_different_command_raises_duplicate_command_error_naming_it(
    backend: Backend, other: Any
) -> None:
    store = backend.event_store()
    fw = opened(store)
    fw.execute("ACC-1", DepositMoney(amount=Decimal("10.00")), command_id="dep-42")
    with pytest.raises(DuplicateCommandError, match="'dep-42'") as caught:
        fw.execute("ACC-1", other, command_id="dep-42")
    assert isinstance(caught.value, AggregateError)
    assert caught.value.command_id == "dep-42"
    assert len(store.load_events("BankAccount", "ACC-1")) == 2


def test_equal_values_written_differently_are_the_same_command(backend: Backend) -> None:
    store = backend.event_store()
    fw = opened(store)
    first = fw.execute("ACC-1", DepositMoney(amount=Decimal("10.0")), command_id="d")
    assert fw.execute("ACC-1", DepositMoney(amount=Decimal("10.00")), command_id="d") == first


def test_a_command_id_belongs_to_one_aggregate(backend: Backend) -> None:
    store = backend.event_store()
    fw = opened(store, "ACC-1")
    fw.execute("ACC-2", OpenBankAccount(account_id="ACC-2"))
    fw.execute("ACC-1", DepositMoney(amount=Decimal("1.00")), command_id="same")
    fw.execute("ACC-2", DepositMoney(amount=Decimal("1.00")), command_id="same")
    assert fw.load("ACC-2").balance == Decimal("1.00")


def test_a_rejected_command_leaves_its_id_free(backend: Backend) -> None:
    store = backend.event_store()
    fw = opened(store)
    with pytest.raises(UserError):
        fw.execute("ACC-1", WithdrawMoney(amount=Decimal("5.00")), command_id="w")
    fw.execute("ACC-1", DepositMoney(amount=Decimal("5.00")))
    [withdrawn] = fw.execute("ACC-1", WithdrawMoney(amount=Decimal("5.00")), command_id="w")
    assert withdrawn.sequence == 3


def test_commit_of_a_taken_command_id_is_refused_whole(backend: Backend) -> None:
    store = backend.event_store()
    fw = opened(store)
    [event] = fw.execute("ACC-1", DepositMoney(amount=Decimal("1.00")), command_id="c-1")
    stored = store.load_command("BankAccount", "ACC-1", "c-1")
    assert stored == StoredCommand(
        "BankAccount", "ACC-1", "c-1", "DepositMoney", stored.payload, 2, 2
    ) and json.loads(stored.payload) == {"amount": "1.00"}
    from dataclasses import replace

    later = replace(event, sequence=3, event_id="another")
    snapshot = StoredSnapshot("BankAccount", "ACC-1", 3, "{}")
    with pytest.raises(ConcurrencyError, match="command id 'c-1' is already committed"):
        store.commit([later], snapshot=snapshot, command=replace(stored, first_sequence=3, last_sequence=3))
    assert [e.sequence for e in store.load_events("BankAccount", "ACC-1")] == [1, 2]
    assert store.load_snapshot("BankAccount", "ACC-1") is None
    assert store.load_command("BankAccount", "ACC-1", "nope") is None


@pytest.mark.parametrize("cache_size", [0, 256])
def test_threads_racing_with_one_command_id_commit_once_and_all_get_its_envelopes(
    backend: Backend, cache_size: int
) -> None:
    store = backend.event_store()
    opened(store)
    frameworks = [bank(store, cache_size=cache_size) for _ in range(4)]
    for fw in frameworks:
        fw.load("ACC-1")  # every cache holds version 1
    for round_ in range(5):
        barrier = threading.Barrier(len(frameworks))
        results: dict[int, list[EventEnvelope]] = {}

        def work(
            n: int,
            round_: int = round_,
            barrier: threading.Barrier = barrier,
            results: dict[int, list[EventEnvelope]] = results,
        ) -> None:
            barrier.wait()
            results[n] = frameworks[n].execute(
                "ACC-1", DepositMoney(amount=Decimal("1.00")), command_id=f"race-{round_}"
            )

        assert in_threads(work, len(frameworks)) == []
        [winner] = {tuple(e.event_id for e in r) for r in results.values()}
        assert len(winner) == 1
    events = store.load_events("BankAccount", "ACC-1")
    assert len(events) == 6
    assert [e.metadata["command_id"] for e in events[1:]] == [f"race-{n}" for n in range(5)]


class TwinFirstStore(MemoryEventStore):
    """Lets a twin commit the same command id right after this framework's first lookup."""

    def __init__(self) -> None:
        super().__init__()
        self.twin: Any = None

    def load_command(self, aggregate_type: str, aggregate_id: str, command_id: str) -> StoredCommand | None:
        found = super().load_command(aggregate_type, aggregate_id, command_id)
        twin, self.twin = self.twin, None
        if twin is not None:
            twin()
        return found


def test_a_command_rejected_because_its_twin_committed_first_returns_the_twins_events() -> None:
    store = TwinFirstStore()
    twin = bank(store, ids=SequentialIds(start=1000))
    store.twin = lambda: twin.execute("ACC-1", OpenBankAccount(account_id="ACC-1"), command_id="open")
    [opened_event] = bank(store).execute("ACC-1", OpenBankAccount(account_id="ACC-1"), command_id="open")
    assert opened_event.event_id == str(UUID(int=1000))  # the twin's first id
    assert store.load_events("BankAccount", "ACC-1") == [opened_event]


def test_a_store_without_command_ids_is_a_configuration_error_only_when_an_id_is_given() -> None:
    class Plain:
        """An EventStore that does not keep command ids."""

        def __init__(self) -> None:
            self.inner = MemoryEventStore()
            self.codec = self.inner.codec

        def load_events(self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0) -> Any:
            return self.inner.load_events(aggregate_type, aggregate_id, after_sequence=after_sequence)

        def commit(self, envelopes: Any, *, snapshot: StoredSnapshot | None = None) -> Any:
            return self.inner.commit(envelopes, snapshot=snapshot)

        def read_all(self, after_position: int = 0, *, batch_size: int = 1000) -> Iterator[EventEnvelope]:
            return self.inner.read_all(after_position, batch_size=batch_size)

        def load_snapshot(self, aggregate_type: str, aggregate_id: str) -> Any:
            return self.inner.load_snapshot(aggregate_type, aggregate_id)

        def close(self) -> None:
            self.inner.close()

    plain = Plain()
    assert isinstance(plain, EventStore)
    fw = bank(plain)
    fw.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
    with pytest.raises(ConfigurationError, match="does not keep command ids"):
        fw.execute("ACC-1", DepositMoney(amount=Decimal("1.00")), command_id="d")


# -- many processes (PostgreSQL) ----------------------------------------------------
RACER = """
import json, sys
from decimal import Decimal
from cqrs_lab import CqrsFramework
from cqrs_lab.examples.bank_account import BankAccount, DepositMoney
from cqrs_lab.stores.postgres import PostgresEventStore

dsn, schema, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
got = []
with PostgresEventStore(dsn, schema=schema, pool_size=1) as store:
    framework = CqrsFramework(BankAccount, store)
    framework.load("ACC-1")
    print("ready", flush=True)
    for n in range(rounds):
        sys.stdin.readline()
        envelopes = framework.execute("ACC-1", DepositMoney(amount=Decimal("1.00")), command_id=f"race-{n}")
        print(json.dumps([e.event_id for e in envelopes]), flush=True)
"""


@pytest.mark.slow
def test_processes_racing_with_one_command_id_commit_once_and_all_get_its_envelopes(
    postgres_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    from cqrs_lab.stores.postgres import PostgresEventStore

    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store:
        opened(store)
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    rounds = 5
    racers = [
        subprocess.Popen(
            [sys.executable, str(script), postgres_dsn, pg_schema, str(rounds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(3)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
        for _ in range(rounds):
            for racer in racers:  # all three start the round, then all three answer
                assert racer.stdin is not None
                racer.stdin.write("go\n")
                racer.stdin.flush()
            answers = {racer.stdout.readline() for racer in racers if racer.stdout is not None}
            assert len(answers) == 1 and len(json.loads(answers.pop())) == 1
    finally:
        for racer in racers:
            if racer.stdin is not None:
                racer.stdin.close()
            assert racer.wait(timeout=60) == 0
    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store:
        events = store.load_events("BankAccount", "ACC-1")
    assert [e.metadata.get("command_id") for e in events[1:]] == [f"race-{n}" for n in range(rounds)]


# -- schema version 1 databases are upgraded in place --------------------------------
# The table layout of schema version 1, as cqrs_lab wrote it before command ids.
V1_TABLES = (
    "CREATE TABLE {schema}.schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE {schema}.events (
        position BIGINT NOT NULL PRIMARY KEY, aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL,
        sequence BIGINT NOT NULL, event_type TEXT NOT NULL, event_version TEXT NOT NULL,
        payload {json} NOT NULL, metadata {json} NOT NULL, recorded_at TIMESTAMPTZ NOT NULL,
        event_id TEXT NOT NULL,
        CONSTRAINT events_stream_sequence UNIQUE (aggregate_type, aggregate_id, sequence))""",
    """CREATE TABLE {schema}.snapshots (aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL,
        version BIGINT NOT NULL, payload {json} NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id))""",
    """CREATE TABLE {schema}.queries (query_type TEXT NOT NULL, view_id TEXT NOT NULL,
        version BIGINT NOT NULL, payload {json} NOT NULL, PRIMARY KEY (query_type, view_id))""",
    "CREATE TABLE {schema}.checkpoints (name TEXT NOT NULL PRIMARY KEY, position BIGINT NOT NULL)",
    """CREATE VIEW {schema}.events_view AS SELECT position, aggregate_type, aggregate_id, sequence,
        event_type, event_version, payload, metadata, recorded_at, event_id,
        metadata->>'command_id' AS command_id, metadata->>'command_type' AS command_type,
        metadata->>'correlation_id' AS correlation_id, metadata->>'causation_id' AS causation_id
        FROM {schema}.events""",
    "INSERT INTO {schema}.schema_version (version) VALUES (1)",
    """INSERT INTO {schema}.events VALUES
        (1, 'BankAccount', 'ACC-1', 1, 'BankAccountOpened', '1.0', '{{"account_id": "ACC-1"}}',
         '{{}}', TIMESTAMPTZ '2024-01-01 00:00:00+00', 'e-1'),
        (2, 'BankAccount', 'ACC-1', 2, 'CustomerDepositedMoney', '1.0',
         '{{"amount": "7.00", "balance": "7.00"}}', '{{}}', TIMESTAMPTZ '2024-01-01 00:00:01+00', 'e-2')""",
    "INSERT INTO {schema}.checkpoints VALUES ('accounts', 2)",
)
V1_POSTGRES_ONLY = (
    "CREATE TABLE {schema}.log_head (id INTEGER PRIMARY KEY CHECK (id = 1), position BIGINT NOT NULL)",
    "INSERT INTO {schema}.log_head (id, position) VALUES (1, 2)",
)


def check_upgraded(store: Any, query_store: Any) -> None:
    fw = bank(store)
    assert fw.load("ACC-1").balance == Decimal("7.00")
    first = fw.execute("ACC-1", DepositMoney(amount=Decimal("1.00")), command_id="after-upgrade")
    assert fw.execute("ACC-1", DepositMoney(amount=Decimal("1.00")), command_id="after-upgrade") == first
    assert [e.position for e in store.read_all()] == [1, 2, 3]
    assert query_store.load_checkpoint("accounts") == 2
    query_store.commit_processes("p", [], checkpoint=(0, 3))
    assert query_store.load_checkpoint("p") == 3


def test_a_duckdb_file_of_schema_version_1_is_upgraded_in_place(tmp_path: Path) -> None:
    from cqrs_lab.stores.duckdb import DuckDBEventStore, DuckDBQueryStore

    path = tmp_path / "v1.duckdb"
    with duckdb.connect(str(path)) as conn:
        for statement in V1_TABLES:
            conn.execute(statement.format(schema="main", json="JSON"))
    with pytest.raises(StoreUnavailableError, match=r"older cqrs_lab \(schema version 1\).*read_only"):
        DuckDBEventStore(path, read_only=True)
    store = DuckDBEventStore(path)
    views = DuckDBQueryStore(store)
    check_upgraded(store, views)
    views.close()
    store.close()
    with duckdb.connect(str(path)) as conn:
        assert conn.execute("SELECT max(version) FROM schema_version").fetchall() == [(_sql.SCHEMA_VERSION,)]
    with DuckDBEventStore(path, read_only=True) as archive:
        assert len(list(archive.read_all())) == 3


def test_a_postgres_schema_of_version_1_is_upgraded_in_place(postgres_dsn: str, pg_schema: str) -> None:
    from cqrs_lab.stores.postgres import PostgresEventStore, PostgresQueryStore

    quoted = sql.Identifier(pg_schema).as_string()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {quoted}")
        for statement in (*V1_TABLES, *V1_POSTGRES_ONLY):
            conn.execute(statement.format(schema=quoted, json="JSONB"))
    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store, PostgresQueryStore(store) as views:
        check_upgraded(store, views)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        version = conn.execute(f"SELECT max(version) FROM {quoted}.schema_version").fetchall()
    assert version == [(_sql.SCHEMA_VERSION,)]
