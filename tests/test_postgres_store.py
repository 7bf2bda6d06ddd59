"""What only the PostgreSQL stores do: DSNs and schemas, failing fast, JSONB, global order."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from cqrs_lab import (
    ConfigurationError,
    CorruptRecordError,
    CqrsFramework,
    EventEnvelope,
    QueryContext,
    QueryProcessor,
    SchemaVersionError,
    SequentialIds,
    StoreError,
    StoreUnavailableError,
)
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountOpened,
    BankAccountQuery,
    CustomerDepositedMoney,
    DepositMoney,
    OpenBankAccount,
)
from cqrs_lab.stores.postgres import DSN_ENV, PostgresEventStore, PostgresQueryStore
from tests.conftest import in_threads

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(postgres_dsn: str, pg_schema: str) -> Iterator[PostgresEventStore]:
    with PostgresEventStore(postgres_dsn, schema=pg_schema) as opened:
        yield opened


def raw(
    postgres_dsn: str, statement: sql.Composed | str, params: list[object] | None = None
) -> list[tuple[Any, ...]]:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def open_account(store: PostgresEventStore, account: str, *deposits: str) -> list[EventEnvelope]:
    framework = CqrsFramework(BankAccount, store, ids=SequentialIds())
    committed = framework.execute(account, OpenBankAccount(account_id=account))
    for amount in deposits:
        committed += framework.execute(account, DepositMoney(amount=Decimal(amount)))
    return committed


# -- DSN, schema, failing fast -------------------------------------------------
def test_dsn_comes_from_the_environment_when_not_given(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DSN_ENV, postgres_dsn)
    with PostgresEventStore(schema=pg_schema) as store, PostgresQueryStore(schema=pg_schema) as queries:
        open_account(store, "A-1")
        queries.commit(QueryContext("A-1", 0, BankAccountQuery(account_id="A-1")))
        assert [e.sequence for e in store.read_all()] == [1]
        assert queries.load(BankAccountQuery, "A-1").version == 1


def test_no_dsn_anywhere_is_a_configuration_error_saying_where_to_put_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DSN_ENV, raising=False)
    with pytest.raises(ConfigurationError, match=DSN_ENV):
        PostgresEventStore()
    with pytest.raises(ConfigurationError, match=DSN_ENV):
        PostgresQueryStore()


@pytest.mark.parametrize(
    "name", ['x"; DROP SCHEMA public CASCADE; --', "1abc", "a-b", "", "a b", "ünïcode", "x" * 64, "a.b"]
)
def test_hostile_or_invalid_schema_name_is_rejected_before_connecting(name: str) -> None:
    unreachable = f"postgresql://nobody@127.0.0.1:{closed_port()}/none"
    with pytest.raises(ConfigurationError, match="schema name"):
        PostgresEventStore(unreachable, schema=name)
    with pytest.raises(ConfigurationError, match="schema name"):
        PostgresQueryStore(unreachable, schema=name)


def test_closed_port_fails_fast_with_store_unavailable_error_without_the_password() -> None:
    dsn = f"postgresql://someone:s3cret-pw@127.0.0.1:{closed_port()}/somedb"
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        PostgresEventStore(dsn, connect_timeout=2)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "127.0.0.1" in message and "somedb" in message
    assert "s3cret-pw" not in message
    assert DSN_ENV in message


def test_unknown_database_gives_store_unavailable_error_with_the_server_reason(postgres_dsn: str) -> None:
    dsn = psycopg.conninfo.make_conninfo(postgres_dsn, dbname="no_such_database_here")
    with pytest.raises(StoreUnavailableError, match="no_such_database_here"):
        PostgresEventStore(dsn)


def test_malformed_dsn_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="DSN"):
        PostgresEventStore("this is = = not a dsn")


def test_tables_are_created_on_first_use_and_stamped_with_the_schema_version(
    postgres_dsn: str, pg_schema: str, store: PostgresEventStore
) -> None:
    tables = raw(
        postgres_dsn,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
        [pg_schema],
    )
    assert [t[0] for t in tables] == [
        "checkpoints",
        "commands",
        "deadlines",
        "events",
        "events_view",
        "log_head",
        "processes",
        "queries",
        "schema_version",
        "snapshots",
    ]
    assert raw(
        postgres_dsn, sql.SQL("SELECT version FROM {}.schema_version").format(sql.Identifier(pg_schema))
    ) == [(2,)]
    with PostgresEventStore(postgres_dsn, schema=pg_schema) as again:
        assert again.schema == pg_schema
    assert (
        len(raw(postgres_dsn, sql.SQL("SELECT * FROM {}.schema_version").format(sql.Identifier(pg_schema))))
        == 1
    )


def test_schema_stamped_by_a_newer_version_is_refused(
    postgres_dsn: str, pg_schema: str, store: PostgresEventStore
) -> None:
    raw(postgres_dsn, sql.SQL("INSERT INTO {}.schema_version VALUES (42)").format(sql.Identifier(pg_schema)))
    with pytest.raises(SchemaVersionError, match="newer cqrs_lab"):
        PostgresEventStore(postgres_dsn, schema=pg_schema)
    with pytest.raises(SchemaVersionError):
        PostgresQueryStore(postgres_dsn, schema=pg_schema)


def test_stores_in_two_schemas_of_one_database_are_independent(postgres_dsn: str, pg_schema: str) -> None:
    other = pg_schema + "_b"
    try:
        with (
            PostgresEventStore(postgres_dsn, schema=pg_schema) as one,
            PostgresEventStore(postgres_dsn, schema=other) as two,
        ):
            open_account(one, "A-1", "1.00")
            open_account(two, "A-1")
            assert [e.position for e in one.read_all()] == [1, 2]
            assert [e.position for e in two.read_all()] == [1]
    finally:
        raw(postgres_dsn, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(other)))


def test_query_store_shares_the_pool_and_schema_of_its_event_store(store: PostgresEventStore) -> None:
    queries = PostgresQueryStore(store)
    assert queries.schema == store.schema
    framework = CqrsFramework(BankAccount, store, [QueryProcessor(BankAccountQuery, queries)])
    framework.execute("A-1", OpenBankAccount(account_id="A-1"))
    store.close()
    assert queries.load(BankAccountQuery, "A-1").payload.account_id == "A-1"
    queries.close()
    with pytest.raises(StoreError, match="closed"):
        queries.load(BankAccountQuery, "A-1")


def test_many_processes_can_create_the_schema_at_once(postgres_dsn: str, pg_schema: str) -> None:
    assert in_threads(lambda _: PostgresEventStore(postgres_dsn, schema=pg_schema).close(), 6) == []


# -- JSONB -------------------------------------------------------------------
def test_payload_and_metadata_are_jsonb_and_queryable_through_events_view(
    postgres_dsn: str, pg_schema: str, store: PostgresEventStore
) -> None:
    open_account(store, "A-1", "10.50", "0.25")
    types = raw(
        postgres_dsn,
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'events' AND column_name IN ('payload', 'metadata')"
        " ORDER BY 1",
        [pg_schema],
    )
    assert types == [("metadata", "jsonb"), ("payload", "jsonb")]
    rows = raw(
        postgres_dsn,
        sql.SQL(
            "SELECT sum((payload->>'amount')::numeric), min(command_type) FROM {}.events_view"
            " WHERE event_type = 'CustomerDepositedMoney'"
        ).format(sql.Identifier(pg_schema)),
    )
    assert rows == [(Decimal("10.75"), "DepositMoney")]


def test_numbers_in_payloads_are_read_back_exactly_not_through_floats(store: PostgresEventStore) -> None:
    balance = Decimal("123456789012345678901234567890.10")
    store.commit(
        [
            EventEnvelope(
                "BankAccount", "A-1", 1, CustomerDepositedMoney(amount=Decimal("0.10"), balance=balance)
            )
        ]
    )
    [loaded] = store.load_events("BankAccount", "A-1")
    assert loaded.payload == CustomerDepositedMoney(amount=Decimal("0.10"), balance=balance)
    assert str(loaded.payload.balance) == "123456789012345678901234567890.10"


def test_nul_character_is_refused_with_a_clear_error_and_nothing_is_stored(store: PostgresEventStore) -> None:
    with pytest.raises(StoreError, match="NUL"):
        store.commit([EventEnvelope("BankAccount", "A-1", 1, BankAccountOpened(account_id="a\x00b"))])
    assert list(store.read_all()) == []


def test_import_of_a_payload_that_is_not_json_is_a_corrupt_record_error_and_imports_nothing(
    store: PostgresEventStore,
) -> None:
    row = {
        "aggregate_type": "BankAccount",
        "aggregate_id": "A-1",
        "sequence": 1,
        "event_type": "BankAccountOpened",
        "event_version": "1.0",
        "payload": "{not json",
        "metadata": "{}",
        "recorded_at": T0,
        "event_id": "e1",
    }
    with pytest.raises(CorruptRecordError, match="not valid JSON"):
        store.import_arrow([row])
    assert list(store.read_all()) == []


def test_bulk_import_and_export_cover_many_batches(store: PostgresEventStore) -> None:
    rows = [
        {
            "aggregate_type": "BankAccount",
            "aggregate_id": f"A-{i % 50}",
            "sequence": i // 50 + 1,
            "event_type": "BankAccountOpened",
            "event_version": "1.0",
            "payload": f'{{"account_id": "A-{i}"}}',
            "metadata": f'{{"n": "{i}"}}',
            "recorded_at": T0,
            "event_id": f"e{i}",
        }
        for i in range(25_000)
    ]
    assert store.import_arrow(rows) == 25_000
    table = store.export_arrow()
    assert table.num_rows == 25_000
    assert table.column("position").to_pylist() == list(range(1, 25_001))
    assert table.column("event_id").to_pylist()[-1] == "e24999"
    assert store.export_arrow(after_position=24_998).column("event_id").to_pylist() == ["e24998", "e24999"]
    assert open_account(store, "fresh")[0].position == 25_001


# -- global order ------------------------------------------------------------
def test_a_commit_waits_for_an_earlier_uncommitted_one_so_tailing_readers_never_skip(
    postgres_dsn: str, store: PostgresEventStore
) -> None:
    open_account(store, "A-0")
    # A transaction that took its positions with the store's own statement, still open.
    slow = psycopg.connect(postgres_dsn)
    slow.execute(
        store._q.insert_events,
        [
            1,
            1,
            ["BankAccount"],
            ["slow"],
            [1],
            ["BankAccountOpened"],
            ["1.0"],
            ['{"account_id": "slow"}'],
            ["{}"],
            [T0],
            ["slow-1"],
        ],
    )
    fast_positions: list[int] = []
    fast = threading.Thread(
        target=lambda: fast_positions.extend(e.position for e in open_account(store, "fast"))
    )
    fast.start()
    time.sleep(0.5)
    assert fast.is_alive(), "the second commit should wait for the first to finish"
    assert [e.position for e in store.read_all()] == [1]
    slow.commit()
    slow.close()
    fast.join(timeout=10)
    assert fast_positions == [3]
    assert [(e.position, e.aggregate_id) for e in store.read_all()] == [(1, "A-0"), (2, "slow"), (3, "fast")]


def test_a_rolled_back_commit_gives_its_positions_back(postgres_dsn: str, store: PostgresEventStore) -> None:
    open_account(store, "A-0")
    aborted = psycopg.connect(postgres_dsn)
    aborted.execute(
        store._q.insert_events,
        [
            1,
            1,
            ["BankAccount"],
            ["gone"],
            [1],
            ["BankAccountOpened"],
            ["1.0"],
            ['{"account_id": "gone"}'],
            ["{}"],
            [T0],
            ["gone-1"],
        ],
    )
    aborted.rollback()
    aborted.close()
    assert open_account(store, "A-1")[0].position == 2


def test_environment_dsn_is_not_required_when_one_is_given(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DSN_ENV, "postgresql://nobody@127.0.0.1:1/none")
    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store:
        assert open_account(store, "A-1")[0].position == 1
    assert os.environ[DSN_ENV].endswith("/none")
