"""What only the DuckDB stores do: files and processes, read-only mode, SQL access, bulk paths."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cqrs_lab import (
    ConcurrencyError,
    ConfigurationError,
    CorruptRecordError,
    CqrsFramework,
    QueryContext,
    QueryProcessor,
    SchemaVersionError,
    SequentialIds,
    StoreError,
    StoreUnavailableError,
)
from cqrs_lab.examples.bank_account import BankAccount, BankAccountQuery, DepositMoney, OpenBankAccount
from cqrs_lab.stores.arrow import event_arrow_schema
from cqrs_lab.stores.duckdb import DuckDBEventStore, DuckDBQueryStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def bank(store: DuckDBEventStore, queries: DuckDBQueryStore | None = None) -> CqrsFramework[BankAccount]:
    dispatchers = [QueryProcessor(BankAccountQuery, queries)] if queries is not None else []
    return CqrsFramework(BankAccount, store, dispatchers, ids=SequentialIds())


def open_account(framework: CqrsFramework[BankAccount], account: str, *deposits: str) -> None:
    framework.execute(account, OpenBankAccount(account_id=account))
    for amount in deposits:
        framework.execute(account, DepositMoney(amount=Decimal(amount)))


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )


# -- files and processes -------------------------------------------------------
def test_events_views_and_checkpoints_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bank.duckdb"
    with DuckDBEventStore(path) as store, DuckDBQueryStore(store) as queries:
        open_account(bank(store, queries), "A-1", "10.50")
        queries.commit_batch([], checkpoint=("proj", 0, 2))
    with DuckDBEventStore(path) as store, DuckDBQueryStore(path) as queries:
        assert [e.sequence for e in store.load_events("BankAccount", "A-1")] == [1, 2]
        assert queries.load(BankAccountQuery, "A-1").payload.balance == Decimal("10.50")
        assert queries.load_checkpoint("proj") == 2
        assert store.commit(store.load_events("BankAccount", "A-1")[:0]) == []
        open_account(bank(store), "A-2")
        assert [e.position for e in store.read_all()] == [1, 2, 3]


def test_in_memory_query_store_shares_the_event_store_database() -> None:
    with DuckDBEventStore() as store, DuckDBQueryStore(store) as queries:
        open_account(bank(store, queries), "A-1", "5.00")
        assert store.sql("SELECT count(*) FROM queries").fetchall() == [(1,)]
        assert queries.load(BankAccountQuery, "A-1").payload.balance == Decimal("5.00")


def test_query_store_on_its_own_memory_database_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="DuckDBEventStore"):
        DuckDBQueryStore(":memory:")


def test_two_event_stores_on_one_file_share_positions(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    with DuckDBEventStore(path) as first, DuckDBEventStore(str(path)) as second:
        open_account(bank(first), "A-1")
        open_account(bank(second), "A-2")
        open_account(bank(first), "A-3")
        assert [(e.position, e.aggregate_id) for e in second.read_all()] == [
            (1, "A-1"),
            (2, "A-2"),
            (3, "A-3"),
        ]


def test_second_process_opening_a_file_in_use_gets_store_locked_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "busy.duckdb"
    with DuckDBEventStore(path) as store:
        open_account(bank(store), "A-1")
        for read_only in (False, True):
            result = run_python(f"""
                from cqrs_lab import StoreLockedError
                from cqrs_lab.stores.duckdb import DuckDBEventStore
                try:
                    DuckDBEventStore({str(path)!r}, read_only={read_only})
                except StoreLockedError as exc:
                    print("LOCKED", exc)
                """)
            assert result.stdout.startswith("LOCKED"), result.stderr
            assert str(path) in result.stdout
            assert "one read-write process per file" in result.stdout
            assert "PostgresEventStore" in result.stdout
        assert "read_only=True" in result.stdout or "read_only" in result.stdout


def test_a_store_that_is_dropped_without_close_releases_the_file(tmp_path: Path) -> None:
    import gc

    path = tmp_path / "dropped.duckdb"
    store = DuckDBEventStore(path)
    open_account(bank(store), "A-1")
    del store
    gc.collect()
    result = run_python(f"""
        from cqrs_lab.stores.duckdb import DuckDBEventStore
        with DuckDBEventStore({str(path)!r}) as store:
            print(store.export_arrow().num_rows)
        """)
    assert result.stdout.strip() == "1", result.stderr


def test_another_process_reads_a_file_no_one_writes_in_read_only_mode(tmp_path: Path) -> None:
    path = tmp_path / "done.duckdb"
    with DuckDBEventStore(path) as store:
        open_account(bank(store), "A-1", "1.00", "2.00")
    result = run_python(f"""
        import cqrs_lab.examples.bank_account
        from cqrs_lab.stores.duckdb import DuckDBEventStore
        with DuckDBEventStore({str(path)!r}, read_only=True) as store:
            print([e.sequence for e in store.read_all()])
            print(store.sql("SELECT sum((payload->>'amount')::DECIMAL(18, 2)) FROM events_view").fetchall())
        """)
    assert result.stdout.splitlines() == ["[1, 2, 3]", "[(Decimal('3.00'),)]"], result.stderr


def test_writing_through_a_read_only_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ro.duckdb"
    with DuckDBEventStore(path) as store:
        open_account(bank(store), "A-1")
        exported = store.export_arrow()
    with DuckDBEventStore(path, read_only=True) as store, DuckDBQueryStore(path, read_only=True) as queries:
        assert store.read_only
        with pytest.raises(StoreError, match="read_only=True"):
            bank(store).execute("A-1", DepositMoney(amount=Decimal(1)))
        with pytest.raises(StoreError, match="read_only=True"):
            store.import_arrow(exported)
        with pytest.raises(StoreError, match="read_only=True"):
            queries.commit(QueryContext("A-1", 0, BankAccountQuery()))
        with pytest.raises(StoreError, match="read_only=True"):
            queries.reset(["BankAccountQuery"])
        assert [e.sequence for e in store.read_all()] == [1]


def test_one_file_cannot_be_open_read_only_and_read_write_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "both.duckdb"
    with DuckDBEventStore(path), pytest.raises(ConfigurationError, match="already open read-write"):
        DuckDBEventStore(path, read_only=True)


def test_read_only_open_of_a_file_without_cqrs_lab_tables_says_to_open_it_writable(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(StoreUnavailableError, match="without read_only"):
        DuckDBEventStore(path, read_only=True)


def test_missing_folder_gives_store_unavailable_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        DuckDBEventStore(tmp_path / "no" / "such" / "folder" / "x.duckdb")


def test_a_file_that_is_not_a_duckdb_database_gives_store_unavailable_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("these are not the bytes you are looking for\n" * 100)
    with pytest.raises(StoreUnavailableError, match=r"notes\.duckdb"):
        DuckDBEventStore(path)


def test_database_stamped_by_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.duckdb"
    DuckDBEventStore(path).close()
    with duckdb.connect(str(path)) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99)")
    with pytest.raises(SchemaVersionError, match="newer cqrs_lab"):
        DuckDBEventStore(path)
    with pytest.raises(SchemaVersionError):
        DuckDBQueryStore(path)


def test_a_foreign_database_with_its_own_events_table_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TABLE events (id INTEGER, what TEXT)")
    with pytest.raises(StoreError, match="another application"):
        DuckDBEventStore(path)


def test_closed_store_says_it_is_closed(tmp_path: Path) -> None:
    store = DuckDBEventStore(tmp_path / "c.duckdb")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.load_events("BankAccount", "A-1")


def test_query_store_keeps_the_database_open_after_its_event_store_closes(tmp_path: Path) -> None:
    store = DuckDBEventStore()
    queries = DuckDBQueryStore(store)
    store.close()
    queries.commit(QueryContext("v", 0, BankAccountQuery(account_id="v")))
    assert queries.load(BankAccountQuery, "v").version == 1
    queries.close()


# -- concurrency inside the process -------------------------------------------
def test_threads_updating_one_view_through_two_query_stores_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "race.duckdb"
    import threading

    with DuckDBQueryStore(path) as first, DuckDBQueryStore(path) as second:
        conflicts: list[int] = []

        def bump(queries: DuckDBQueryStore) -> None:
            done = 0
            while done < 50:
                context = queries.load(BankAccountQuery, "v")
                context.payload.written_checks.append("x")
                try:
                    queries.commit(context)
                    done += 1
                except ConcurrencyError:
                    conflicts.append(1)

        threads = [threading.Thread(target=bump, args=(q,)) for q in (first, second, first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = first.load(BankAccountQuery, "v")
        assert final.version == 200
        assert len(final.payload.written_checks) == 200


# -- SQL access --------------------------------------------------------------
def test_events_view_exposes_payload_and_metadata_fields_to_sql() -> None:
    with DuckDBEventStore() as store:
        open_account(bank(store), "A-1", "10.50", "0.25")
        open_account(bank(store), "A-2", "7.00")
        relation = store.sql(
            "SELECT aggregate_id, sum((payload->>'amount')::DECIMAL(18, 2)) AS deposited, count(*) AS events"
            " FROM events_view WHERE event_type = ? GROUP BY aggregate_id ORDER BY aggregate_id",
            ["CustomerDepositedMoney"],
        )
        frame = relation.df()
        assert frame.to_dict("records") == [
            {"aggregate_id": "A-1", "deposited": Decimal("10.75"), "events": 2},
            {"aggregate_id": "A-2", "deposited": Decimal("7.00"), "events": 1},
        ]
        commands = store.sql(
            "SELECT command_type, command_id, correlation_id FROM events_view ORDER BY position"
        )
        rows = commands.fetchall()
        assert rows[0] == (
            "OpenBankAccount",
            "00000000-0000-0000-0000-000000000001",
            "00000000-0000-0000-0000-000000000001",
        )
        table = store.sql("SELECT position, recorded_at FROM events_view").to_arrow_table()
        assert table.num_rows == 5
        assert table.schema.field("recorded_at").type == pa.timestamp("us", tz="UTC")


def test_sql_can_be_evaluated_in_another_thread() -> None:
    import threading

    with DuckDBEventStore() as store:
        open_account(bank(store), "A-1")
        relation = store.sql("SELECT count(*) AS n FROM events_view")
        result: list[object] = []
        worker = threading.Thread(target=lambda: result.append(relation.fetchall()))
        worker.start()
        worker.join()
        assert result == [[(1,)]]


def test_bad_sql_is_a_store_error_pointing_at_events_view() -> None:
    with DuckDBEventStore() as store, pytest.raises(StoreError, match="events_view"):
        store.sql("SELECT nope FROM nowhere")


# -- bulk paths --------------------------------------------------------------
def _rows(count: int) -> list[dict[str, object]]:
    return [
        {
            "aggregate_type": "BankAccount",
            "aggregate_id": f"A-{i % 100}",
            "sequence": i // 100 + 1,
            "event_type": "BankAccountOpened" if i < 100 else "CustomerDepositedMoney",
            "event_version": "1.0",
            "payload": f'{{"account_id":"A-{i % 100}"}}' if i < 100 else '{"amount":"1.00","balance":"1.00"}',
            "metadata": "{}",
            "recorded_at": T0,
            "event_id": f"e{i}",
        }
        for i in range(count)
    ]


def test_bulk_import_of_a_dataframe_assigns_positions_in_order(tmp_path: Path) -> None:
    with DuckDBEventStore(tmp_path / "bulk.duckdb") as store:
        assert store.import_events(pd.DataFrame(_rows(20_000))) == 20_000
        assert store.sql("SELECT min(position), max(position), count(*) FROM events").fetchall() == [
            (1, 20_000, 20_000)
        ]
        assert [e.sequence for e in store.load_events("BankAccount", "A-7")][-1] == 200
        framework = bank(store)
        framework.execute("A-7", DepositMoney(amount=Decimal("1.00")))
        assert store.export_arrow(after_position=20_000).column("sequence").to_pylist() == [201]


def test_import_of_a_payload_that_is_not_json_is_a_corrupt_record_error_and_imports_nothing() -> None:
    rows = _rows(3)
    rows[2]["payload"] = "{not json"
    with DuckDBEventStore() as store:
        with pytest.raises(CorruptRecordError, match="not valid JSON"):
            store.import_arrow(rows)
        assert store.export_arrow().num_rows == 0
        assert store.import_arrow(_rows(3)) == 3


def test_parquet_export_is_written_by_duckdb_with_the_arrow_schema(tmp_path: Path) -> None:
    with DuckDBEventStore() as store:
        open_account(bank(store), "A-1", "3.00")
        target = tmp_path / "log.parquet"
        assert store.export_events(target) == 2
        assert "DuckDB" in pq.ParquetFile(target).metadata.created_by
        assert pq.read_table(target).cast(event_arrow_schema()).equals(store.export_arrow())
        with pytest.raises(ConfigurationError, match="does not exist"):
            store.export_events(tmp_path / "missing" / "log.parquet")
