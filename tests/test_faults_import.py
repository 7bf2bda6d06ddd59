"""Imports are checked before anything is written, on every store, and are all or nothing.

Every rule broken by the input is an ``InvalidImportError`` naming the row (or the line
of a JSON Lines file) and the column: required columns and their types, non-null
JSON-object payloads and metadata within the JSON limits, sequences that are positive,
do not repeat, do not skip and continue what the store holds for the stream. A
sequence that another writer takes between the check and the insert is a lost race,
and only that is a ``ConcurrencyError``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cqrs_lab import ConcurrencyError, EventEnvelope, InvalidImportError
from cqrs_lab.codec import MAX_JSON_DEPTH
from cqrs_lab.stores.arrow import read_events_file
from tests.conftest import Backend
from tests.fault_kit import BOX, Note, envelope, row


def rejected(store: Any, data: Any, *needles: str) -> InvalidImportError:
    """Import ``data``; expect ``InvalidImportError`` naming ``needles``; the log is unchanged."""
    before = [(e.position, e.event_id) for e in store.read_all()]
    with pytest.raises(InvalidImportError) as caught:
        store.import_events(data)
    for needle in needles:
        assert needle in str(caught.value), str(caught.value)
    assert "Nothing was imported" in str(caught.value)
    assert [(e.position, e.event_id) for e in store.read_all()] == before
    return caught.value


def jsonl(tmp_path: Path, lines: list[Any]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x, default=str)) + "\n" for x in lines))
    return path


# -- payload and metadata ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ("null", "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        ('"text"', "not a JSON object"),
        ("17", "not a JSON object"),
        ("{not json", "not valid JSON"),
        ('{"a": 1', "not valid JSON"),
        ("", "not valid JSON"),
        ('{"a": 1,}', "not valid JSON"),  # DuckDB's JSON reader would take it; events could not be read
        ('{"a": [1, 2, ]}', "not valid JSON"),
    ],
)
def test_a_payload_that_is_not_a_json_object_is_refused_naming_row_and_column(
    backend: Backend, payload: str, why: str
) -> None:
    store = backend.event_store()
    store.commit([envelope("kept", 1, Note(text="kept"))])
    rejected(store, [row("a", 1), row("a", 2, payload=payload)], "row 2", "'payload'", why)


def test_metadata_that_is_not_a_json_object_is_refused(backend: Backend) -> None:
    store = backend.event_store()
    rejected(store, [row("a", 1, metadata='["x"]')], "row 1", "'metadata'", "not a JSON object")
    rejected(store, [row("a", 1), row("a", 2, metadata="{oops")], "row 2", "'metadata'", "not valid JSON")


def test_a_payload_nested_deeper_than_the_limit_is_refused(backend: Backend) -> None:
    store = backend.event_store()
    deep = '{"d": ' + "[" * MAX_JSON_DEPTH + "0" + "]" * MAX_JSON_DEPTH + "}"
    fine = '{"d": ' + "[" * (MAX_JSON_DEPTH - 1) + "0" + "]" * (MAX_JSON_DEPTH - 1) + "}"
    tricky = '{"d": "' + "[" * 500 + '"}'  # brackets inside a string do not nest
    rejected(store, [row("a", 1, payload=fine), row("a", 2, payload=deep)], "row 2", "'payload'", "levels")
    assert store.import_events([row("a", 1, payload=fine), row("a", 2, payload=tricky)]) == 2


def test_jsonl_with_a_null_payload_is_refused_naming_the_line(backend: Backend, tmp_path: Path) -> None:
    store = backend.event_store()
    path = jsonl(tmp_path, [row("a", 1, payload={}), "", row("a", 2, payload=None)])
    rejected(store, path, "line 3", "'payload'")


@pytest.mark.parametrize(
    "column", ["aggregate_type", "aggregate_id", "event_type", "event_version", "event_id"]
)
def test_a_nul_character_in_a_text_column_is_refused(backend: Backend, column: str) -> None:
    store = backend.event_store()
    rows = [row("a", 1), row("a", 2), row("b", 1)]
    rows[2][column] = rows[2][column] + "\x00"
    rejected(store, rows, "row 3", repr(column), "NUL")


def test_rows_are_named_right_in_a_table_of_several_chunks_or_a_slice(backend: Backend) -> None:
    """The byte-level checks read Arrow buffers chunk by chunk, from each chunk's offset."""
    store = backend.event_store()
    first = pa.Table.from_pylist([row("a", n) for n in range(1, 4)])
    second = pa.Table.from_pylist([row("a", 4), row("a", 5, payload="[5]"), row("a", 6)])
    chunked = pa.concat_tables([first, second])
    assert chunked.column("payload").num_chunks == 2
    rejected(store, chunked, "row 5", "'payload'", "not a JSON object")
    keys = pa.concat_tables([first, pa.Table.from_pylist([row("a", 4), row("a\x00", 1)])])
    rejected(store, keys, "row 5", "'aggregate_id'", "NUL")
    sliced = pa.Table.from_pylist([row("z", 1, payload="oops"), row("a", 1), row("a", 2, payload="")]).slice(
        1
    )
    rejected(store, sliced, "row 2", "'payload'", "not valid JSON")
    assert store.import_events(sliced.slice(0, 1)) == 1


# -- columns and types ------------------------------------------------------------------
def test_jsonl_with_a_mixed_type_column_is_refused_naming_line_and_column(
    backend: Backend, tmp_path: Path
) -> None:
    store = backend.event_store()
    path = jsonl(tmp_path, [row("a", 1, payload={}), {**row("b", 1, payload={}), "aggregate_id": 5}])
    rejected(store, path, "line 2", "'aggregate_id'", "text")


def test_jsonl_with_a_sequence_beyond_64_bits_is_refused(backend: Backend, tmp_path: Path) -> None:
    store = backend.event_store()
    path = jsonl(tmp_path, [row("a", 2**64, payload={})])
    rejected(store, path, "line 1", "'sequence'")


@pytest.mark.parametrize("value", ["1", 1.5, True, None])
def test_jsonl_with_a_sequence_that_is_not_an_integer_is_refused(
    backend: Backend, tmp_path: Path, value: Any
) -> None:
    store = backend.event_store()
    path = jsonl(tmp_path, [row("a", 1, payload={}), row("a", value, payload={})])
    rejected(store, path, "line 2", "'sequence'")


def test_jsonl_line_that_is_not_json_or_lacks_a_column_is_refused(backend: Backend, tmp_path: Path) -> None:
    store = backend.event_store()
    rejected(store, jsonl(tmp_path, [row("a", 1, payload={}), "{oops"]), "line 2", "not valid JSON")
    incomplete = row("a", 1, payload={})
    del incomplete["event_id"]
    rejected(store, jsonl(tmp_path, [incomplete]), "line 1", "'event_id'")


def test_a_table_with_a_column_of_the_wrong_type_or_missing_is_refused(backend: Backend) -> None:
    store = backend.event_store()
    table = pa.Table.from_pylist([row("a", 1), row("a", 2)])
    rejected(store, table.drop_columns(["payload"]), "'payload'", "missing")
    bad = table.set_column(
        table.schema.get_field_index("sequence"), "sequence", pa.array(["1", "two"], pa.string())
    )
    rejected(store, bad, "row 2", "'sequence'", "two")
    rejected(store, [row("a", 1), row("a", 2, event_id=None)], "row 2", "'event_id'", "empty")


def test_csv_rows_are_named_by_their_line(backend: Backend, tmp_path: Path) -> None:
    store = backend.event_store()
    source = tmp_path / "events.csv"
    lines = [
        "position,aggregate_type,aggregate_id,sequence,event_type,event_version,payload,metadata,"
        "recorded_at,event_id",
        f'1,{BOX},a,1,faults.Note,1.0,"{{""text"": ""x""}}",{{}},2024-05-01T00:00:00Z,e1',
        f"2,{BOX},a,2,faults.Note,1.0,null,{{}},2024-05-01T00:00:00Z,e2",
    ]
    source.write_text("\n".join(lines) + "\n")
    rejected(store, source, "line 3", "'payload'")


# -- sequences ----------------------------------------------------------------------------
@pytest.mark.parametrize("sequence", [0, -1, -(2**63)])
def test_a_sequence_that_is_not_positive_is_refused(backend: Backend, sequence: int) -> None:
    store = backend.event_store()
    rejected(store, [row("a", 1), row("b", sequence)], "row 2", "'sequence'", "positive")


def test_a_stream_with_a_gap_is_refused_naming_the_missing_sequence(backend: Backend) -> None:
    store = backend.event_store()
    rejected(store, [row("a", 1), row("a", 2), row("a", 5)], f"{BOX}/a", "sequence 3", "missing")


def test_a_sequence_twice_in_the_input_is_refused(backend: Backend) -> None:
    store = backend.event_store()
    rejected(store, [row("x", 1), row("twice", 1), row("twice", 1)], f"{BOX}/twice sequence 1", "twice")


def test_an_import_continues_each_stored_stream_or_is_refused(backend: Backend) -> None:
    store = backend.event_store()
    store.commit([envelope("a", 1, Note(text="1")), envelope("a", 2, Note(text="2"))])
    rejected(store, [row("b", 1), row("a", 2)], f"{BOX}/a sequence 2", "already stored")
    rejected(store, [row("b", 1), row("a", 4)], f"{BOX}/a", "sequence 3", "missing")
    assert (
        store.import_events([row("a", 4, position=2), row("a", 3, position=1), row("b", 1, position=3)]) == 3
    )
    assert [e.sequence for e in store.load_events(BOX, "a")] == [1, 2, 3, 4]
    assert [e.position for e in store.read_all()] == [1, 2, 3, 4, 5]


def test_a_race_between_the_check_and_the_insert_is_a_concurrency_error(backend: Backend) -> None:
    """Another writer commits the stream's next sequence after the import was checked."""
    store = backend.event_store()
    lookup = store._stream_heads

    def heads_then_a_concurrent_commit(*streams: Any) -> Any:
        found = lookup(*streams)
        store.commit([envelope("a", 1, Note(text="the other writer"))])
        return found

    store._stream_heads = heads_then_a_concurrent_commit
    with pytest.raises(ConcurrencyError, match=rf"{BOX}/a sequence 1"):
        store.import_events([row("b", 1), row("a", 1)])
    del store._stream_heads
    assert [(e.aggregate_id, e.payload) for e in store.read_all()] == [("a", Note(text="the other writer"))]


def test_an_export_imports_into_an_empty_store_of_every_kind(backend: Backend, tmp_path: Path) -> None:
    source = backend.event_store()
    source.commit([envelope("a", 1, Note(text="1")), envelope("b", 1, Note(text="x"))])
    source.commit([envelope("a", 2, Note(text="2"))])
    for suffix in (".parquet", ".jsonl", ".csv"):
        path = tmp_path / f"log{suffix}"
        source.export_events(path)
        copy = Backend("memory").event_store()
        assert copy.import_events(path) == 3
        assert [(e.aggregate_id, e.sequence) for e in copy.read_all()] == [("a", 1), ("b", 1), ("a", 2)]
        assert read_events_file(path).num_rows == 3


def test_the_envelopes_of_a_valid_import_read_back(backend: Backend) -> None:
    store = backend.event_store()
    assert store.import_events([row("a", 1), row("a", 2)]) == 2
    loaded = store.load_events(BOX, "a")
    assert [e.payload for e in loaded] == [Note(text="a 1"), Note(text="a 2")]
    assert all(isinstance(e, EventEnvelope) for e in loaded)
