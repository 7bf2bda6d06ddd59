"""DuckDB files written by other DuckDB releases: read, or refused naming both versions.

``tests/data/duckdb-<release>.duckdb.gz`` are real cqrs_lab event logs written by
that DuckDB release (``tests/data/write_duckdb_file.py``). The main test run opens
them with the newest DuckDB, .ci/run's lowest-versions run with the oldest one
pyproject.toml allows, so both directions of the README's compatibility table
are checked: files of DuckDB 1.x open everywhere; files created by DuckDB 2.x
need DuckDB 2.x, and older releases get a ``SchemaVersionError`` saying so.
"""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from cqrs_lab import SchemaVersionError
from cqrs_lab.examples.bank_account import CustomerDepositedMoney
from cqrs_lab.stores.duckdb import DuckDBEventStore

DATA = Path(__file__).resolve().parent / "data"
FILES = sorted(DATA.glob("duckdb-*.duckdb.gz"))


def _major(version: str) -> int:
    return int(version.lstrip("v").split(".")[0])


def _release(path: Path) -> str:
    return path.name.removeprefix("duckdb-").removesuffix(".duckdb.gz")


def test_there_are_files_of_both_storage_generations() -> None:
    assert {_major(_release(f)) >= 2 for f in FILES} == {False, True}


@pytest.mark.parametrize("packed", FILES, ids=_release)
def test_a_file_of_another_duckdb_release_is_read_or_refused_naming_both(
    packed: Path, tmp_path: Path
) -> None:
    path = tmp_path / "events.duckdb"
    path.write_bytes(gzip.decompress(packed.read_bytes()))
    written_by = _release(packed)
    readable = _major(written_by) < 2 or _major(duckdb.__version__) >= 2
    if readable:
        with DuckDBEventStore(path) as store:
            events = store.load_events("BankAccount", "ACC-1")
        assert [e.sequence for e in events] == [1, 2]
        assert events[1].payload == CustomerDepositedMoney(amount=Decimal("12.50"), balance=Decimal("12.50"))
        return
    before = path.read_bytes()
    with pytest.raises(SchemaVersionError) as caught:
        DuckDBEventStore(path)
    message = str(caught.value)
    assert f"written by DuckDB v{written_by}" in message
    assert f"installed DuckDB {duckdb.__version__}" in message
    assert str(path) in message and "Upgrade DuckDB" in message
    assert path.read_bytes() == before
