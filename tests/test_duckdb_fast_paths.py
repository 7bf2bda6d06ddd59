"""The DuckDB store's fast paths return what a fresh process reads from the file.

What a writable database remembers of its streams (heads and snapshots), so a
command on a cached aggregate reads nothing and a snapshot load reads little:
several store objects on one file, threads, a file another process wrote, raw
SQL through ``sql()``, refused commits, imports. And ``read_all``, which reads
Arrow columns in pages of at least 10,000 rows.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cqrs_lab import ConcurrencyError, CqrsFramework, EventEnvelope, SequentialIds
from cqrs_lab.stores.duckdb import DuckDBEventStore
from tests.conftest import in_threads
from tests.domain_fixtures import Counter, Increment, Incremented

STREAM = Counter.aggregate_type


class Reads:
    """Counts the stream and snapshot queries a DuckDB store runs (not their time)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.streams = 0
        self.snapshots = 0
        from cqrs_lab.stores import duckdb as module

        real_first, real_stream = module._first, DuckDBEventStore._stream_rows

        def first(conn: Any, statement: str, params: Any = None) -> Any:
            if statement == module._LOAD_SNAPSHOT:
                self.snapshots += 1
            return real_first(conn, statement, params)

        def stream_rows(store: DuckDBEventStore, conn: Any, key: Any, after: int) -> Any:
            before = store._nothing_after(key, after)
            rows = real_stream(store, conn, key, after)
            self.streams += 0 if before else 1
            return rows

        monkeypatch.setattr(module, "_first", first)
        monkeypatch.setattr(DuckDBEventStore, "_stream_rows", stream_rows)


def counter(store: DuckDBEventStore, start: int = 1, **kwargs: Any) -> CqrsFramework[Counter]:
    return CqrsFramework(Counter, store, ids=SequentialIds(start), **kwargs)


def fresh(path: Path, aggregate_id: str = "c") -> Counter:
    """The state a fresh process reads from the file (the file must be closed here)."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                from cqrs_lab import CqrsFramework
                from cqrs_lab.stores.duckdb import DuckDBEventStore
                from tests.domain_fixtures import Counter
                with DuckDBEventStore({str(path)!r}, read_only=True) as store:
                    state = CqrsFramework(Counter, store, cache_size=0).load({aggregate_id!r})
                print(state.model_dump_json())
            """),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    return Counter.model_validate_json(done.stdout.strip().splitlines()[-1])


def test_a_command_on_a_cached_aggregate_reads_nothing_once_the_store_knows_the_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = Reads(monkeypatch)
    store = DuckDBEventStore(tmp_path / "k.duckdb")
    fw = counter(store)
    fw.execute("c", Increment(by=1))  # a new stream: read (empty), then known from its commits
    assert reads.streams == 1
    for _ in range(6):
        fw.execute("c", Increment(by=3) if _ else Increment(by=2))
    assert reads.streams == 1
    last = fw.events("c")[-1]
    assert store.stream_head(STREAM, "c") == (7, last.event_id)
    assert fw.load("c").value == 18
    store.close()
    assert fresh(tmp_path / "k.duckdb").value == 18


def test_several_store_objects_on_one_file_see_each_others_commits(tmp_path: Path) -> None:
    path = tmp_path / "k.duckdb"
    first, second = DuckDBEventStore(path), DuckDBEventStore(path)
    mine, theirs = counter(first), counter(second, start=1_000_000)
    for _ in range(3):
        mine.execute("c", Increment(by=1))
        theirs.execute("c", Increment(by=10))
    committed = mine.execute("c", Increment(by=100))
    assert committed[0].sequence == 7
    assert mine.load("c") == theirs.load("c")
    assert mine.load("c").value == 133
    first.close()
    second.close()
    assert fresh(path).value == 133


def test_threads_on_several_store_objects_keep_every_command(tmp_path: Path) -> None:
    path = tmp_path / "k.duckdb"
    stores = [DuckDBEventStore(path) for _ in range(4)]
    frameworks = [counter(s, start=1 + n * 1_000_000, retries=200) for n, s in enumerate(stores)]

    def work(n: int) -> None:
        for i in range(25):
            frameworks[n].execute(f"c{i % 3}", Increment(by=1))

    assert in_threads(work, 4) == []
    loaded = {f"c{i}": [fw.load(f"c{i}").value for fw in frameworks] for i in range(3)}
    assert sum(values[0] for values in loaded.values()) == 100
    assert all(len(set(values)) == 1 for values in loaded.values())  # every framework agrees
    for s in stores:
        s.close()
    assert [fresh(path, f"c{i}").value for i in range(3)] == [v[0] for v in loaded.values()]


def test_threads_loading_from_snapshots_on_several_store_objects_keep_every_command(tmp_path: Path) -> None:
    path = tmp_path / "k.duckdb"
    stores = [DuckDBEventStore(path) for _ in range(4)]
    frameworks = [
        counter(s, start=1 + n * 1_000_000, retries=200, snapshot_every=5, cache_size=0)
        for n, s in enumerate(stores)
    ]

    def work(n: int) -> None:
        for i in range(20):
            frameworks[n].execute(f"s{i % 2}", Increment(by=1))

    assert in_threads(work, 4) == []
    loaded = [[fw.load(f"s{i}").value for fw in frameworks] for i in range(2)]
    assert [values[0] for values in loaded] == [40, 40]
    assert all(len(set(values)) == 1 for values in loaded)
    for s in stores:
        s.close()
    assert [fresh(path, f"s{i}").value for i in range(2)] == [40, 40]


def test_a_store_opened_after_another_process_wrote_the_file_reads_what_it_wrote(tmp_path: Path) -> None:
    path = tmp_path / "k.duckdb"
    store = DuckDBEventStore(path)
    fw = counter(store)
    for _ in range(3):
        fw.execute("c", Increment(by=1))
    assert store.stream_head(STREAM, "c") is not None
    store.close()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                from cqrs_lab import CqrsFramework, SequentialIds
                from cqrs_lab.stores.duckdb import DuckDBEventStore
                from tests.domain_fixtures import Counter, Increment
                with DuckDBEventStore({str(path)!r}) as store:
                    fw = CqrsFramework(Counter, store, ids=SequentialIds(5_000_000))
                    fw.execute("c", Increment(by=40))
                    fw.execute("c", Increment(by=50))
            """),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    reopened = DuckDBEventStore(path)
    assert reopened.stream_head(STREAM, "c") is None  # nothing is assumed about the file
    fw.event_store = reopened  # the framework's cache still holds the state at version 3
    assert fw.load("c").value == 93
    assert fw.execute("c", Increment(by=1))[0].sequence == 6
    reopened.close()
    assert fresh(path).value == 94


def test_rows_written_with_sql_are_read(tmp_path: Path) -> None:
    path = tmp_path / "k.duckdb"
    store = DuckDBEventStore(path)
    fw = counter(store)
    fw.execute("c", Increment(by=1))
    fw.execute("c", Increment(by=1))
    assert store.stream_head(STREAM, "c") is not None
    store.sql(
        "INSERT INTO events SELECT position + 100, aggregate_type, aggregate_id, sequence + 1, event_type,"
        " event_version, '{\"by\": 40}', metadata, recorded_at, 'raw-1' FROM events WHERE sequence = 2"
    )
    assert store.stream_head(STREAM, "c") is None
    assert fw.load("c").value == 42
    assert fw.execute("c", Increment(by=1))[0].sequence == 4
    store.close()
    assert fresh(path).value == 43


def test_nothing_is_known_while_a_relation_from_sql_is_alive(tmp_path: Path) -> None:
    """A relation may write later (``insert_into``): while one lives, every load asks the file."""
    path = tmp_path / "k.duckdb"
    store = DuckDBEventStore(path)
    fw = counter(store)
    fw.execute("c", Increment(by=1))
    relation = store.sql(
        "SELECT position + 100 AS position, aggregate_type, aggregate_id, sequence + 3 AS sequence,"
        " event_type, event_version, payload, metadata, recorded_at, 'raw-' || event_id AS event_id"
        " FROM events WHERE sequence = 1"
    )
    fw.execute("c", Increment(by=1))
    fw.execute("c", Increment(by=1))
    assert store.stream_head(STREAM, "c") is None
    relation.insert_into("events")  # sequence 4, a copy of the first event
    del relation
    assert fw.execute("c", Increment(by=1))[0].sequence == 5
    assert fw.load("c").value == 5
    store.close()
    assert fresh(path).value == 5


def test_relation_writes_a_stream_the_store_then_reads(tmp_path: Path) -> None:
    path = tmp_path / "k.duckdb"
    store = DuckDBEventStore(path)
    fw = counter(store)
    fw.execute("c", Increment(by=1))
    relation = store.sql(
        "SELECT position + 100 AS position, aggregate_type, aggregate_id, sequence + 1 AS sequence,"
        " event_type, event_version, payload, metadata, recorded_at, 'raw-' || event_id AS event_id"
        " FROM events WHERE sequence = 1"
    )
    fw.load("c")  # a load while the relation is alive: nothing is remembered from it
    relation.insert_into("events")
    assert fw.load("c").value == 2
    store.close()
    assert fresh(path).value == 2


def test_a_snapshot_written_with_sql_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k.duckdb"
    store = DuckDBEventStore(path)
    fw = counter(store, snapshot_every=2, cache_size=0)
    for _ in range(4):
        fw.execute("c", Increment(by=1))
    reads = Reads(monkeypatch)
    assert fw.load("c").value == 4
    assert (reads.snapshots, reads.streams) == (0, 0)  # both known: the load read nothing
    store.sql('UPDATE snapshots SET payload = \'{"value": 1000, "notes": []}\' WHERE version = 4')
    assert fw.load("c").value == 1000  # both read again
    assert fw.load("c").value == 1000  # and known again
    assert (reads.snapshots, reads.streams) == (1, 1)
    store.close()


def test_a_snapshot_load_reads_nothing_when_this_process_wrote_the_snapshot_and_what_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "k.duckdb"
    first, second = DuckDBEventStore(path), DuckDBEventStore(path)
    writer = counter(first, snapshot_every=4, cache_size=0)
    for _ in range(6):
        writer.execute("c", Increment(by=1))
    counter(second, start=1_000_000, snapshot_every=4, cache_size=0).execute("c", Increment(by=10))
    reads = Reads(monkeypatch)
    reader = counter(first, snapshot_every=4, cache_size=0)
    assert reader.load("c").value == 16
    snapshot, tail = first.load_snapshot_and_stream(STREAM, "c")
    assert snapshot is not None and snapshot.version == 4
    assert [row[0] for row in tail] == [5, 6, 7]
    assert (reads.snapshots, reads.streams) == (0, 0)
    first.close()
    second.close()
    assert fresh(path).value == 16
    reopened = DuckDBEventStore(path)
    assert reopened.load_snapshot_and_stream(STREAM, "c") == (snapshot, tail)
    assert (reads.snapshots, reads.streams) == (1, 1)  # a new process reads both, once
    assert reopened.load_snapshot_and_stream(STREAM, "c") == (snapshot, tail)
    assert (reads.snapshots, reads.streams) == (1, 1)
    reopened.close()


def test_events_after_a_snapshot_beyond_the_kept_number_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cqrs_lab.stores import duckdb as module

    monkeypatch.setattr(module, "_TAIL_ROWS", 1)
    store = DuckDBEventStore(tmp_path / "k.duckdb")
    fw = counter(store, snapshot_every=3, cache_size=0)
    for _ in range(4):  # a snapshot at 3, then event 4: kept
        fw.execute("c", Increment(by=1))
    reads = Reads(monkeypatch)
    assert fw.load("c").value == 4
    assert reads.streams == 0
    fw.execute("c", Increment(by=1))  # two events after the snapshot: no longer kept
    assert fw.load("c").value == 5
    assert reads.streams == 1
    store.close()


def test_snapshot_loads_return_what_the_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "k.duckdb"
    store = DuckDBEventStore(path)
    fw = counter(store, snapshot_every=3)
    for _ in range(7):
        fw.execute("c", Increment(by=2))
    known = store.load_snapshot_and_stream(STREAM, "c")
    assert known[0] is not None and known[0].version == 6
    assert [row[0] for row in known[1]] == [7]
    store.close()
    reopened = DuckDBEventStore(path)
    assert reopened.load_snapshot_and_stream(STREAM, "c") == known
    assert reopened.load_snapshot(STREAM, "c") == known[0]
    reopened.close()


def test_a_refused_commit_forgets_the_stream(tmp_path: Path) -> None:
    store = DuckDBEventStore(tmp_path / "k.duckdb")
    fw = counter(store)
    fw.execute("c", Increment(by=1))
    fw.execute("c", Increment(by=1))
    assert store.stream_head(STREAM, "c") is not None
    taken = EventEnvelope(STREAM, "c", 2, Incremented(by=5), event_id="dup")
    with pytest.raises(ConcurrencyError):
        store.commit([taken])
    assert store.stream_head(STREAM, "c") is None
    assert fw.load("c").value == 2
    store.close()


def test_an_import_forgets_what_it_may_continue(tmp_path: Path) -> None:
    path = tmp_path / "k.duckdb"
    store = DuckDBEventStore(path)
    fw = counter(store)
    fw.execute("c", Increment(by=1))
    fw.execute("c", Increment(by=1))
    table = store.export_arrow()
    more = table.set_column(
        table.schema.get_field_index("sequence"),
        "sequence",
        [[s + 2 for s in table.column("sequence").to_pylist()]],
    ).set_column(
        table.schema.get_field_index("event_id"),
        "event_id",
        [[f"imported-{i}" for i in range(table.num_rows)]],
    )
    assert store.import_arrow(more) == 2
    assert store.stream_head(STREAM, "c") is None
    assert fw.load("c").value == 4
    store.close()


def test_a_read_only_store_knows_nothing(tmp_path: Path) -> None:
    path = tmp_path / "k.duckdb"
    with DuckDBEventStore(path) as store:
        counter(store).execute("c", Increment(by=1))
    with DuckDBEventStore(path, read_only=True) as reader:
        assert CqrsFramework(Counter, reader).load("c").value == 1
        assert reader.stream_head(STREAM, "c") is None


def test_read_all_over_several_pages_gives_every_event_once_in_order_with_its_time(tmp_path: Path) -> None:
    import pyarrow as pa

    from cqrs_lab.stores.arrow import event_arrow_schema

    n = 20_003
    start = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)
    table = pa.table(
        {
            "position": list(range(1, n + 1)),
            "aggregate_type": [STREAM] * n,
            "aggregate_id": [f"c{i % 7}" for i in range(n)],
            "sequence": [i // 7 + 1 for i in range(n)],
            "event_type": [Incremented.event_type] * n,
            "event_version": [Incremented.event_version] * n,
            "payload": [f'{{"by": {i}}}' for i in range(n)],
            "metadata": [f'{{"command_id": "{i // 3}"}}' for i in range(n)],
            "recorded_at": [start + timedelta(microseconds=37 * i) for i in range(n)],
            "event_id": [f"e{i}" for i in range(n)],
        },
        schema=event_arrow_schema(),
    )
    with DuckDBEventStore(tmp_path / "k.duckdb") as store:
        store.import_arrow(table)
        read = list(store.read_all(after_position=2, batch_size=5))
    assert [e.position for e in read] == list(range(3, n + 1))
    assert [e.payload for e in read[:2]] == [Incremented(by=2), Incremented(by=3)]
    assert read[-1].recorded_at == start + timedelta(microseconds=37 * (n - 1))
    assert read[-1].recorded_at.utcoffset() == timedelta(0)
    assert read[10_000].metadata == {"command_id": str(10_002 // 3)}
    assert (read[10_000].aggregate_id, read[10_000].sequence, read[10_000].event_id) == ("c6", 1429, "e10002")


_PLAN = "EXPLAIN SELECT * FROM main.events WHERE aggregate_id = 'c'"


def _optimized(plan: list[tuple[Any, ...]]) -> bool:
    """Whether the optimizer ran on the plan: it pushes the WHERE into the scan, so no
    operator of its own filters the rows ("Filters:" in the scan's box is the pushed one)."""
    return re.search(r"(?i)\bfilter\b", str(plan[0][1])) is None


def test_commits_run_without_the_optimizer_and_every_other_statement_with_it(tmp_path: Path) -> None:
    """Events go in through a connection of their own with DuckDB's optimizer off (it has
    nothing to do in an INSERT ... VALUES); loads and ``sql()`` keep it (index scans).
    Each kind of commit on it is read at once on the shared connection, and the file is
    free for another process after close."""
    path = tmp_path / "k.duckdb"
    store = DuckDBEventStore(path)
    fw = counter(store, snapshot_every=2)
    fw.execute("c", Increment(by=1))
    fw.execute("c", Increment(by=2))  # with a snapshot: one transaction on the writer
    fw.execute("c", Increment(by=3), command_id="once")  # with the command's row
    fw.execute("c", Increment(by=3), command_id="once")  # the repeat is found, not committed
    assert not _optimized(store._db.writer().execute(_PLAN).fetchall())
    assert _optimized(store._db.conn.execute(_PLAN).fetchall())
    assert _optimized(store.sql(_PLAN).fetchall())
    assert store.sql("SELECT count(*) FROM events_view").fetchall() == [(3,)]
    assert store.load_snapshot(STREAM, "c") is not None
    assert counter(store, cache_size=0).load("c").value == 6
    store.close()
    assert fresh(path).value == 6
