"""The committed sample log matches its deterministic generator."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cqrs_lab.examples.sample import SAMPLE_FILES, generate, write_sample
from cqrs_lab.stores.arrow import event_arrow_schema, read_events_file

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def committed() -> object:
    return read_events_file(DATA / SAMPLE_FILES[0])


def test_sample_files_hold_the_same_log_in_both_formats(committed: object) -> None:
    jsonl = read_events_file(DATA / SAMPLE_FILES[1])
    assert jsonl.equals(committed)


def test_sample_log_has_the_documented_shape(committed: object) -> None:
    table = pq.read_table(DATA / SAMPLE_FILES[0])
    assert table.schema.names == event_arrow_schema().names
    assert table.num_rows == 101_574
    assert len(set(table.column("aggregate_id").to_pylist())) == 3000
    assert table.column("position").to_pylist() == list(range(1, table.num_rows + 1))
    readme = (DATA / "README.md").read_text()
    assert "101,574 events" in readme


def test_a_shorter_run_regenerates_exactly_the_first_rows_of_the_committed_log(committed: object) -> None:
    prefix = generate(commands=3000)
    assert prefix.num_rows > 2000
    assert prefix.equals(committed.slice(0, prefix.num_rows))  # type: ignore[attr-defined]


def test_generator_is_deterministic_byte_for_byte(tmp_path: Path) -> None:
    table = generate(accounts=50, commands=500, seed=7)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_sample(tmp_path / "a", table)
    second = write_sample(tmp_path / "b", generate(accounts=50, commands=500, seed=7))
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert not generate(accounts=50, commands=500, seed=8).equals(table)
