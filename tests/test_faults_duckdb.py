"""DuckDB under real faults: foreign files, a full disk, a writer killed mid-commit.

A DuckDB store path must be a DuckDB database or not exist yet: anything else is
refused before DuckDB sees it and left byte for byte as it was. A full disk is a
``StoreError`` saying so (never a ``ConcurrencyError``, so ``retries`` does not repeat
it), and once space is back the same store works. A writer killed with SIGKILL in the
middle of a commit or an import leaves every acknowledged event readable and nothing
of the unacknowledged one half-written.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import Field

from cqrs_lab import (
    Aggregate,
    Command,
    ConcurrencyError,
    CqrsFramework,
    Event,
    EventEnvelope,
    Query,
    QueryContext,
    StoreError,
    StoreUnavailableError,
)
from cqrs_lab.cli import main
from cqrs_lab.stores.duckdb import DuckDBEventStore, DuckDBQueryStore
from tests.fault_kit import (
    BOX,
    IMPORTER,
    WRITER,
    Note,
    check_log,
    envelope,
    fill,
    killed_after,
    row,
    tmpfs,
)


def digest(path: Path) -> tuple[str, float]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime


# -- foreign files ----------------------------------------------------------------------
def _parquet(path: Path) -> None:
    pq.write_table(pa.table({"amount": [1, 2, 3]}), path)


def _sqlite(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE ledger (amount INTEGER)")
    conn.close()


FOREIGN = {
    "ledger.parquet": _parquet,
    "report.csv": lambda p: p.write_text("account,amount\nA-1,10\n"),
    "data.json": lambda p: p.write_text('[{"account": "A-1"}]'),
    "app.sqlite": _sqlite,
    "notes.duckdb": lambda p: p.write_text("not a database\n" * 50),
    "empty.duckdb": lambda p: p.write_bytes(b""),
    "short.duckdb": lambda p: p.write_bytes(b"DUCK"),
}


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_a_file_that_is_not_a_duckdb_database_is_refused_and_left_untouched(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    FOREIGN[name](path)
    before = digest(path)
    for open_store in (DuckDBEventStore, DuckDBQueryStore, lambda p: DuckDBEventStore(p, read_only=True)):
        with pytest.raises(StoreUnavailableError, match="not a DuckDB database") as caught:
            open_store(path)
        assert str(path) in str(caught.value)
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no .wal or other file beside it


def test_the_cli_refuses_to_import_into_a_csv_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.csv"
    report.write_text("account,amount\nA-1,10\n")
    source = tmp_path / "events.jsonl"
    with DuckDBEventStore() as store:
        store.commit([envelope("a", 1, Note(text="x"))])
        store.export_events(source)
    before = digest(report)
    assert main(["import", str(source), "--db", str(report)]) == 2
    err = capsys.readouterr().err
    assert str(report) in err and "not a DuckDB database" in err
    assert len(err.strip().splitlines()) == 1
    assert digest(report) == before


def test_a_directory_or_a_device_is_refused(tmp_path: Path) -> None:
    for path in (tmp_path, Path("/dev/null"), Path("/dev/zero")):
        with pytest.raises(StoreUnavailableError, match="not a regular file") as caught:
            DuckDBEventStore(path)
        assert str(path) in str(caught.value)


def test_a_named_pipe_is_refused_without_opening_it(tmp_path: Path) -> None:
    """In a child process, so that a regression (DuckDB blocking on the pipe) fails the test."""
    fifo = tmp_path / "events.duckdb"
    os.mkfifo(fifo)
    code = f"""
        from cqrs_lab import StoreUnavailableError
        from cqrs_lab.stores.duckdb import DuckDBEventStore
        try:
            DuckDBEventStore({str(fifo)!r})
        except StoreUnavailableError as exc:
            print(exc)
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=True
    )
    assert "named pipe" in done.stdout and str(fifo) in done.stdout


# -- a full disk (a small tmpfs mounted by the test) -----------------------------------------
@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 4 MB tmpfs of the test's own."""
    with tmpfs("4m") as mount:
        yield mount


class Deposit(Command):
    pass


class Deposited(Event):
    event_type = "faults.Deposited"
    blob: str


HANDLED: list[Command] = []


class Account(Aggregate):
    """Each deposit writes a 4 kB event, so that a small disk fills in a few dozen commands."""

    aggregate_type = "faults.Account"

    def handle(self, command: Command) -> list[Event]:
        HANDLED.append(command)
        return [Deposited(blob="x" * 4096)]

    def apply(self, event: Event) -> None:
        pass


def deposit_until_it_fails(framework: CqrsFramework[Account]) -> tuple[int, BaseException]:
    """Deposits until one raises; how many were acknowledged, and the error."""
    for acknowledged in itertools.count():
        HANDLED.clear()
        try:
            framework.execute("A-1", Deposit())
        except Exception as exc:
            return acknowledged, exc
    raise AssertionError("unreachable")


def test_a_full_disk_during_commits_is_a_store_error_and_the_store_recovers(small_disk: Path) -> None:
    path = small_disk / "bank.duckdb"
    store = DuckDBEventStore(path)
    framework = CqrsFramework(Account, store, retries=5)
    framework.execute("A-1", Deposit())
    filler = fill(small_disk, leave=256 * 1024)
    acknowledged, error = deposit_until_it_fails(framework)
    acknowledged += 1
    assert type(error) is StoreError, error
    assert "disk" in str(error).lower() and str(path) in str(error)
    assert len(HANDLED) == 1  # retries=5 did not repeat a full disk: it is not a lost race
    assert acknowledged > 2
    assert len(store.load_events("faults.Account", "A-1")) == acknowledged

    filler.unlink()
    framework.execute("A-1", Deposit())  # the same store works again
    store.close()
    with DuckDBEventStore(path, read_only=True) as reopened:
        sequences = [e.sequence for e in reopened.load_events("faults.Account", "A-1")]
    assert sequences == list(range(1, acknowledged + 2))


def test_a_full_disk_during_an_import_is_a_store_error_and_imports_nothing(small_disk: Path) -> None:
    path = small_disk / "bank.duckdb"
    with DuckDBEventStore(path) as store:
        store.commit([envelope("a", 1, Note(text="acknowledged"))])
        filler = fill(small_disk, leave=128 * 1024)
        rows = [row(f"s{i}", 1, payload='{"text": "' + "x" * 400 + '"}') for i in range(5000)]
        with pytest.raises(StoreError) as caught:
            store.import_events(rows)
        assert not isinstance(caught.value, ConcurrencyError | StoreUnavailableError)
        assert "disk" in str(caught.value).lower()
        assert [e.event_id for e in store.read_all()] == ["a-1"]
        filler.unlink()
        assert store.import_events(rows[:10]) == 10
        assert [e.position for e in store.read_all()] == list(range(1, 12))


class Ledger(Query):
    query_type = "faults.Ledger"
    notes: list[str] = Field(default_factory=list)

    def update(self, envelope: EventEnvelope) -> None:
        self.notes = [*self.notes, "x" * 4096]


def commit_views_until_it_fails(views: DuckDBQueryStore) -> BaseException:
    for n in itertools.count(1):
        try:
            views.commit(QueryContext(f"v-{n}", 0, Ledger(notes=["y" * 4096] * 4)))
        except Exception as exc:
            return exc
    raise AssertionError("unreachable")


def test_a_full_disk_during_a_view_commit_is_a_store_error_not_a_race(small_disk: Path) -> None:
    path = small_disk / "views.duckdb"
    with DuckDBEventStore(path) as store, DuckDBQueryStore(store) as views:
        views.commit(QueryContext("v-0", 0, Ledger()))
        filler = fill(small_disk, leave=128 * 1024)
        error = commit_views_until_it_fails(views)
        assert type(error) is StoreError, error
        assert "disk" in str(error).lower() and str(path) in str(error)
        filler.unlink()
        assert views.load(Ledger, "v-0").version == 1
        views.commit(QueryContext("v-after", 0, Ledger()))
        assert views.load(Ledger, "v-after").version == 1


# -- SIGKILL mid-commit and mid-import ---------------------------------------------------------
@pytest.mark.slow
def test_a_writer_killed_mid_commit_loses_no_acknowledged_event_and_half_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "killed.duckdb"
    acknowledged = killed_after(WRITER, ["duckdb", str(path)], lines=150)
    assert len(acknowledged) >= 150
    with DuckDBEventStore(path, read_only=True) as store:
        check_log(list(store.read_all()), acknowledged)


@pytest.mark.slow
def test_a_process_killed_mid_import_leaves_the_import_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "import.duckdb"
    with DuckDBEventStore(path) as store:
        store.commit([envelope("a", 1, Note(text="acknowledged"))])
    printed = killed_after(IMPORTER, ["duckdb", str(path)], lines=1)
    assert printed[0] == "importing"
    with DuckDBEventStore(path) as store:
        assert [e.event_id for e in store.load_events(BOX, "a")] == ["a-1"]
        [(count,)] = store.sql(
            "SELECT count(*) FROM events WHERE aggregate_type = 'killtest.Bulk'"
        ).fetchall()
        assert count in (0, 100_000)
        check_log(list(store.read_all()), ["a-1"])
        store.commit([envelope("a", 2, Note(text="after the kill"))])
        assert [e.sequence for e in store.load_events(BOX, "a")] == [1, 2]
