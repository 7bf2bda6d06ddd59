"""Arrow interchange for event logs: the schema, file import/export, and import checks.

Every store exports and imports events as an Arrow table with
``EVENT_ARROW_SCHEMA`` (payload and metadata as JSON text). Files (Parquet,
JSON Lines, CSV) and pandas DataFrames go through the same table.

Imports are checked before anything is written (``check_import``, the same for
every store): each broken rule is an ``InvalidImportError`` naming the row (the
line, for CSV and JSON Lines files) and the column. Exports are written to a
temporary file beside the target and renamed over it once complete, so a failed
export leaves no partial file, and an existing file as it was.
"""

from __future__ import annotations

import gzip
import io
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from cqrs_lab.codec import MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_KEY_BYTES
from cqrs_lab.errors import ConfigurationError, InvalidImportError, StoreError
from cqrs_lab.stores.base import import_conflict

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "EventFormat",
    "StreamHeads",
    "check_import",
    "event_arrow_schema",
    "format_for",
    "invalid_json",
    "number_positions",
    "read_events_file",
    "replacing",
    "to_event_table",
    "write_events_file",
]

EventFormat = Literal["parquet", "jsonl", "csv"]
_SUFFIXES: dict[str, EventFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonl.gz": "jsonl",
    ".csv": "csv",
}

StreamHeads = Callable[[list[str], list[str]], Sequence[int]]
"""A store's lookup of the last stored sequence of streams (aggregate types, aggregate
ids; 0 for a stream with no events), in one query."""

# Where an imported table's rows came from, kept in its schema metadata so that
# errors name a file's lines: the file, its format, and (JSON Lines with blank
# lines only) the line of each row.
_SOURCE = b"cqrs_lab.source"
_FORMAT = b"cqrs_lab.format"
_LINES = b"cqrs_lab.lines"
_NOTHING = "Nothing was imported."


def event_arrow_schema() -> pa.Schema:
    """The Arrow schema of an exported event log (column order = ``EVENT_COLUMNS``)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("position", pa.int64(), nullable=False),
            pa.field("aggregate_type", pa.string(), nullable=False),
            pa.field("aggregate_id", pa.string(), nullable=False),
            pa.field("sequence", pa.int64(), nullable=False),
            pa.field("event_type", pa.string(), nullable=False),
            pa.field("event_version", pa.string(), nullable=False),
            pa.field("payload", pa.string(), nullable=False),
            pa.field("metadata", pa.string(), nullable=False),
            pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("event_id", pa.string(), nullable=False),
        ]
    )


def format_for(path: str | Path, fmt: str | None = None) -> EventFormat:
    """The file format named by ``fmt`` or by the file's suffix."""
    if fmt is not None:
        if fmt not in ("parquet", "jsonl", "csv"):
            raise ConfigurationError(f"unknown event file format {fmt!r}: use parquet, jsonl or csv")
        return fmt  # type: ignore[return-value]
    name = Path(path).name.lower()
    suffix = ".jsonl.gz" if name.endswith(".jsonl.gz") else Path(name).suffix
    if suffix not in _SUFFIXES:
        raise ConfigurationError(
            f"cannot tell the format of {str(path)!r} from its suffix {suffix!r}: "
            "use .parquet, .jsonl (or .jsonl.gz) or .csv, or pass the format explicitly"
        )
    return _SUFFIXES[suffix]


def number_positions(table: pa.Table, head: int) -> pa.Table:
    """``table`` in input position order (stable), its positions replaced by head+1, head+2, ..."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    positions = table.column("position")
    if table.num_rows > 1 and not pc.all(pc.less_equal(positions[:-1], positions[1:])).as_py():
        table = table.take(pc.sort_indices(positions))  # a stable sort
    numbered = pa.array(np.arange(head + 1, head + 1 + table.num_rows, dtype=np.int64))
    index = table.schema.get_field_index("position")
    return table.set_column(index, table.schema.field(index), numbered)


# -- naming the rows of an import --------------------------------------------------
def _row_namer(table: pa.Table) -> Callable[[int], str]:
    """Names row ``i`` (0-based) of ``table`` as its source does: a file's line, or "row n"."""
    meta = table.schema.metadata or {}
    source = meta.get(_SOURCE, b"").decode()
    prefix = f"{source!r} " if source else ""
    kind = meta.get(_FORMAT, b"").decode()
    if kind == "csv":
        return lambda i: f"{prefix}line {i + 2}"  # line 1 is the header
    if kind == "jsonl":
        lines = json.loads(meta[_LINES]) if _LINES in meta else None
        return lambda i: f"{prefix}line {lines[i] if lines else i + 1}"
    return lambda i: f"{prefix}row {i + 1}"


def _invalid(where: str, column: str | None, problem: str) -> InvalidImportError:
    at = f"{where}, column {column!r}" if column else where
    return InvalidImportError(f"cannot import: {at} {problem}. {_NOTHING}")


def _first(mask: Any) -> int | None:
    """The index of the first true value of a boolean Arrow array (None when there is none)."""
    import pyarrow.compute as pc

    index = pc.index(mask, True).as_py()
    return None if index < 0 else int(index)


# -- coercion to the event schema ---------------------------------------------------
def _from_rows(rows: list[dict[str, Any]]) -> pa.Table:
    """A table of ``rows`` (dicts); a value of another type than its column's other
    values is named by row and column."""
    import pyarrow as pa

    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        for column in columns:
            values = [row.get(column) for row in rows]
            try:
                pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                i, value = _odd_one_out(values)
                raise _invalid(
                    f"row {i + 1}",
                    column,
                    f"holds {value!r} ({type(value).__name__}), unlike the rows before it",
                ) from exc
        raise _invalid("the input", None, f"is not a table of events ({exc})") from exc


def _odd_one_out(values: list[Any]) -> tuple[int, Any]:
    """The first value Arrow cannot put in one column with the values before it."""
    import pyarrow as pa

    low, high = 0, len(values)  # values[:low] convert; values[:high] do not
    while high - low > 1:
        middle = (low + high) // 2
        try:
            pa.array(values[:middle])
            low = middle
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            high = middle
    return high - 1, values[high - 1]


def _cast(column: pa.ChunkedArray, field: pa.Field, name: Callable[[int], str]) -> pa.ChunkedArray:
    """``column`` as ``field.type``; the first value that cannot be is named by its row."""
    import pyarrow as pa

    try:
        return column.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        values = column.combine_chunks()
        low, high = 0, len(values)  # values[:low] cast; values[:high] do not
        while high - low > 1:
            middle = (low + high) // 2
            try:
                values[:middle].cast(field.type)
                low = middle
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                high = middle
        bad = values[high - 1].as_py()
        raise _invalid(
            name(high - 1), field.name, f"holds {bad!r}, which is not {_kind(field.type)}"
        ) from exc


def _kind(arrow_type: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_integer(arrow_type):
        return "a 64-bit integer"
    if pa.types.is_timestamp(arrow_type):
        return "a timestamp"
    return "text"


def to_event_table(data: Any) -> pa.Table:
    """Coerce an Arrow table, a pandas DataFrame or a list of dicts to ``event_arrow_schema()``.

    ``position`` may be missing (imports assign positions anew). A missing column,
    a value of the wrong type or an empty value is an ``InvalidImportError`` naming
    the row and column.
    """
    import pyarrow as pa

    schema = event_arrow_schema()
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, list):
        table = _from_rows(data)
    else:
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            raise ConfigurationError(
                f"cannot import events from a {type(data).__name__}: give an Arrow table, "
                "a pandas DataFrame, a list of dicts, or a file path"
            )
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            table = _from_rows([{str(k): v for k, v in r.items()} for r in data.to_dict("records")])
    if "position" not in table.column_names:
        table = table.append_column("position", pa.array(range(1, table.num_rows + 1), pa.int64()))
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise InvalidImportError(
            f"cannot import: the input has no column {', '.join(map(repr, missing))} (missing); "
            f"events have the columns {', '.join(schema.names)}. {_NOTHING}"
        )
    name = _row_namer(table)
    columns = []
    for field in schema:
        column = _cast(table.column(field.name), field, name)
        if column.null_count:
            raise _invalid(name(_first(column.is_null()) or 0), field.name, "is empty")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema.with_metadata(table.schema.metadata or {}))


# -- the checks of an import ----------------------------------------------------------
def check_import(table: pa.Table, heads: StreamHeads) -> None:
    """Refuse (``InvalidImportError``) an event table that cannot be imported whole.

    ``table`` has ``event_arrow_schema()`` (see ``to_event_table``). Checked, in
    vectorised passes: sequences are positive; aggregate types and ids fit the key
    limit; no text holds a NUL; payload and metadata are JSON objects within the
    JSON limits (``cqrs_lab.codec``); each stream's sequences neither repeat nor skip
    and continue the stream's stored head (``heads``, one lookup for all streams).
    """
    import pyarrow.compute as pc

    name = _row_namer(table)
    sequence = table.column("sequence")
    bad = _first(pc.less(sequence, 1))
    if bad is not None:
        raise _invalid(
            name(bad), "sequence", f"is {sequence[bad].as_py()}; sequences are positive (1, 2, ...)"
        )
    for column in ("aggregate_type", "aggregate_id", "event_type", "event_version", "event_id"):
        values = table.column(column)
        bad = _first_nul(values)
        if bad is not None:
            raise _invalid(name(bad), column, "contains a NUL character (\\x00), which no store keeps")
        if column in ("aggregate_type", "aggregate_id"):
            bad = _first(pc.greater(pc.binary_length(values), MAX_KEY_BYTES))
            if bad is not None:
                raise _invalid(
                    name(bad), column, f"is longer than {MAX_KEY_BYTES} bytes of UTF-8 (the key limit)"
                )
    _check_json(table, name)
    _check_streams(table, heads)


def _text_chunks(column: pa.ChunkedArray) -> Iterator[tuple[int, Any, Any]]:
    """Each chunk of a string column as ``(first row, offsets, bytes)`` numpy views: row
    ``first + i`` is ``bytes[offsets[i]:offsets[i + 1]]``. For checks of every byte in
    one pass, without a string object per value."""
    import numpy as np

    first = 0
    for chunk in column.chunks:
        _, offsets_buffer, data_buffer = chunk.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        data = (
            np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(1, np.uint8)
        )
        yield first, offsets.astype(np.int64) - int(offsets[0]), data[int(offsets[0]) : int(offsets[-1])]
        first += len(chunk)


def _first_nul(column: pa.ChunkedArray) -> int | None:
    """The first row of a string column holding a NUL character (None when none does)."""
    import numpy as np

    for first, offsets, data in _text_chunks(column):
        if data.size and data[(at := int(np.argmin(data)))] == 0:
            return first + int(np.searchsorted(offsets, at, side="right")) - 1
    return None


def _check_json(table: pa.Table, name: Callable[[int], str]) -> None:
    """Payload and metadata look like JSON objects (``{`` ... ``}``) within the size and
    depth limits. Whether the text between the braces is valid JSON is checked by the
    store's own JSON parser as it inserts (DuckDB, PostgreSQL), or by ``invalid_json``
    (the memory store, and to name the row when a parser refused one)."""
    import numpy as np
    import pyarrow.compute as pc

    for column in ("payload", "metadata"):
        values = table.column(column)
        for first, offsets, data in _text_chunks(values):
            lengths = np.diff(offsets)
            big = np.flatnonzero(lengths > MAX_JSON_BYTES)
            if big.size:
                where = name(first + int(big[0]))
                raise _invalid(where, column, f"is larger than {MAX_JSON_BYTES:,} bytes (the JSON limit)")
            # The first and last byte of every value, gathered at once ("{" and "}").
            braced = lengths > 0
            braced[braced] &= (data[offsets[:-1][braced]] == ord("{")) & (
                data[offsets[1:][braced] - 1] == ord("}")
            )
            if not braced.all():  # rare: look at those again without surrounding whitespace
                rows = first + np.flatnonzero(~braced)
                trimmed = pc.utf8_trim_whitespace(values.take(rows))
                bad = _first(pc.invert(pc.and_(pc.starts_with(trimmed, "{"), pc.ends_with(trimmed, "}"))))
                if bad is not None:
                    raise _not_an_object(name(int(rows[bad])), column, values[int(rows[bad])].as_py())
    _check_depth(table, name)


def _not_an_object(where: str, column: str, text: str) -> InvalidImportError:
    from pydantic_core import from_json

    shown = text if len(text) <= 60 else text[:50] + "..."
    try:
        from_json(text)
    except ValueError as exc:
        return _invalid(where, column, f"is not valid JSON ({shown!r}: {exc}); it must hold a JSON object")
    return _invalid(where, column, f"is not a JSON object ({shown!r}); it must hold one")


def invalid_json(table: pa.Table, rows: Iterable[int] | None = None) -> InvalidImportError | None:
    """The error naming the first row (of ``rows``, default all) whose payload or metadata
    is not a JSON object as pydantic's JSON parser (the one that reads events back) sees
    it; None when all are.

    One parse per value, in Python: the memory store's check, and how the SQL stores
    name the row after their own parser refused the import.
    """
    from pydantic_core import from_json

    name = _row_namer(table)
    indices = list(range(table.num_rows)) if rows is None else [int(i) for i in rows]
    picked = table if rows is None else table.take(indices)
    texts = zip(picked.column("payload").to_pylist(), picked.column("metadata").to_pylist(), strict=True)
    for i, values in zip(indices, texts, strict=True):
        for column, text in zip(("payload", "metadata"), values, strict=True):
            try:
                value = from_json(text)
            except ValueError:
                return _not_an_object(name(i), column, text)
            if not isinstance(value, dict):
                return _not_an_object(name(i), column, text)
    return None


def _check_depth(table: pa.Table, name: Callable[[int], str]) -> None:
    """No payload or metadata nests deeper than pydantic's JSON parser reads.

    A document too deep has more than ``MAX_JSON_DEPTH`` opening brackets, so only
    such rows (rare) are parsed, by the parser that will read them back.
    """
    import numpy as np
    import pyarrow.compute as pc
    from pydantic_core import from_json

    for column in ("payload", "metadata"):
        values = table.column(column)
        long = pc.greater(pc.binary_length(values), 2 * MAX_JSON_DEPTH)
        if not pc.any(long).as_py():
            continue
        brackets = pc.add(pc.count_substring(values, "["), pc.count_substring(values, "{"))
        suspects = np.flatnonzero(
            pc.and_(long, pc.greater(brackets, MAX_JSON_DEPTH)).to_numpy(zero_copy_only=False)
        )
        for i in suspects:
            try:
                from_json(values[int(i)].as_py())
            except ValueError as exc:
                raise _invalid(
                    name(int(i)),
                    column,
                    f"nests deeper than {MAX_JSON_DEPTH} levels, which the JSON reader refuses ({exc})",
                ) from exc


def _check_streams(table: pa.Table, heads: StreamHeads) -> None:
    """Per stream, the input's sequences are distinct and contiguous and continue the
    stored head: sorted by (stream, sequence) with numpy, then compared in one pass."""
    import numpy as np
    import pyarrow.compute as pc

    types = pc.dictionary_encode(table.column("aggregate_type").combine_chunks())
    ids = pc.dictionary_encode(table.column("aggregate_id").combine_chunks())
    type_codes = types.indices.to_numpy(zero_copy_only=False)
    id_codes = ids.indices.to_numpy(zero_copy_only=False)
    sequences = table.column("sequence").to_numpy()
    order = np.lexsort((sequences, id_codes, type_codes))
    t, i, s = type_codes[order], id_codes[order], sequences[order]
    starts = np.ones(len(s), dtype=bool)
    starts[1:] = (t[1:] != t[:-1]) | (i[1:] != i[:-1])

    def stream(k: int) -> tuple[str, str]:
        return str(types.dictionary[int(t[k])]), str(ids.dictionary[int(i[k])])

    step = np.diff(s)
    same = ~starts[1:]
    twice = np.flatnonzero(same & (step == 0))
    if len(twice):
        k = int(twice[0]) + 1
        raise InvalidImportError(import_conflict(*stream(k), int(s[k]), stored=False))
    skips = np.flatnonzero(same & (step > 1))
    if len(skips):
        k = int(skips[0])
        aggregate_type, aggregate_id = stream(k)
        raise InvalidImportError(
            f"cannot import: stream {aggregate_type}/{aggregate_id} skips from sequence {int(s[k])} to "
            f"{int(s[k + 1])} in the input: sequence {int(s[k]) + 1} is missing. {_NOTHING}"
        )
    first = np.flatnonzero(starts)
    stored = np.asarray(
        heads(
            types.dictionary.take(t[first]).to_pylist(),
            ids.dictionary.take(i[first]).to_pylist(),
        ),
        dtype=np.int64,
    )
    behind = np.flatnonzero(s[first] <= stored)
    if len(behind):
        k = int(first[behind[0]])
        raise InvalidImportError(import_conflict(*stream(k), int(s[k]), stored=True))
    ahead = np.flatnonzero(s[first] > stored + 1)
    if len(ahead):
        k, head = int(first[ahead[0]]), int(stored[ahead[0]])
        aggregate_type, aggregate_id = stream(k)
        raise InvalidImportError(
            f"cannot import: stream {aggregate_type}/{aggregate_id} holds events up to sequence {head}, "
            f"but the input starts it at sequence {int(s[k])}: sequence {head + 1} is missing. {_NOTHING}"
        )


# -- files --------------------------------------------------------------------------
@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed over it when the block ends without
    an error (and deleted when it does not). OS errors become ``StoreError``s."""
    if target.is_dir():
        raise ConfigurationError(f"cannot write {str(target)!r}: it is a folder; give a file name in it")
    if not target.parent.is_dir():
        raise ConfigurationError(
            f"cannot write {str(target)!r}: folder {str(target.parent)!r} does not exist"
        )
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        yield temporary
        temporary.replace(target)
    except OSError as exc:
        raise StoreError(
            f"cannot write {str(target)!r}: {exc.strerror or exc}. Nothing was written"
            f"{' (the existing file is unchanged)' if target.exists() else ''}."
        ) from exc
    finally:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)


def write_events_file(table: pa.Table, path: str | Path, fmt: str | None = None) -> int:
    """Write an event table to Parquet, JSON Lines or CSV; returns the row count.

    All or nothing: the file appears (or replaces the old one) only once complete.
    """
    kind = format_for(path, fmt)
    with replacing(Path(path)) as target:
        if kind == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, target)
        elif kind == "csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, target)
        else:
            gz = Path(path).name.lower().endswith(".gz")
            with _text_writer(target, str(path) if gz else None) as out:
                for row in table.to_pylist():
                    row["payload"] = json.loads(row["payload"])
                    row["metadata"] = json.loads(row["metadata"])
                    row["recorded_at"] = row["recorded_at"].isoformat()
                    out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    return int(table.num_rows)


@contextmanager
def _text_writer(path: Path, gzip_name: str | None) -> Iterator[IO[str]]:
    """A UTF-8 text file at ``path``; gzipped under ``gzip_name`` (the name in the gzip
    header: the target's, not the temporary file's) when one is given."""
    with path.open("wb") as raw:
        if gzip_name is None:
            with io.TextIOWrapper(raw, encoding="utf-8") as out:
                yield out
            return
        # mtime=0: the same events give the same bytes (sample data is regenerated and compared)
        with (
            gzip.GzipFile(gzip_name, "wb", fileobj=raw, mtime=0) as packed,
            io.TextIOWrapper(packed, encoding="utf-8") as out,
        ):
            yield out


def _text_reader(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.GzipFile(path, "rb"), encoding="utf-8")
    return path.open("r", encoding="utf-8")


_JSONL_TEXT = ("aggregate_type", "aggregate_id", "event_type", "event_version", "event_id")


def _jsonl_row(row: Any, where: str) -> dict[str, Any]:
    """One JSON Lines event as a row of ``event_arrow_schema()`` types, or an error naming the line."""
    if not isinstance(row, dict):
        raise _invalid(where, None, f"is a JSON {type(row).__name__}, not an event object")
    for column in _JSONL_TEXT:
        if column not in row:
            raise _invalid(where, column, "is missing")
        if not isinstance(row[column], str):
            raise _invalid(where, column, f"holds {row[column]!r}, which is not text")
    for column in ("sequence", "position"):
        if column not in row:
            if column == "sequence":
                raise _invalid(where, column, "is missing")
            continue
        value = row[column]
        if not isinstance(value, int) or isinstance(value, bool):
            raise _invalid(where, column, f"holds {value!r}, which is not an integer")
        if not -(2**63) <= value < 2**63:
            raise _invalid(where, column, f"holds {value}, which does not fit in 64 bits")
    payload = row.get("payload")
    if not isinstance(payload, dict | str):
        raise _invalid(where, "payload", f"holds {json.dumps(payload)}; it must hold a JSON object")
    metadata = row.get("metadata", {})
    if not isinstance(metadata, dict | str):
        raise _invalid(where, "metadata", f"holds {json.dumps(metadata)}; it must hold a JSON object")
    try:
        recorded_at = datetime.fromisoformat(row["recorded_at"])
    except KeyError:
        raise _invalid(where, "recorded_at", "is missing") from None
    except (TypeError, ValueError) as exc:
        raise _invalid(
            where, "recorded_at", f"holds {row['recorded_at']!r}, which is not a timestamp"
        ) from exc
    return {
        **row,
        "payload": _json_text(payload),
        "metadata": _json_text(metadata),
        "recorded_at": recorded_at,
    }


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def read_events_file(path: str | Path, fmt: str | None = None) -> pa.Table:
    """Read an event file written by ``write_events_file`` (or any with the same columns).

    The table remembers the file, so an import's errors name its lines.
    """
    import pyarrow as pa

    kind = format_for(path, fmt)
    source = Path(path)
    if not source.is_file():
        raise ConfigurationError(f"cannot import {str(source)!r}: no such file")
    meta = {_SOURCE: str(source).encode(), _FORMAT: kind.encode()}
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(source)
        elif kind == "csv":
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(
                source,
                convert_options=pacsv.ConvertOptions(
                    column_types={
                        "payload": pa.string(),
                        "metadata": pa.string(),
                        "event_version": pa.string(),
                        "aggregate_id": pa.string(),
                        "event_id": pa.string(),
                    }
                ),
            )
        else:
            rows, lines = [], []
            with _text_reader(source) as text:
                for number, line in enumerate(text, start=1):
                    if not line.strip():
                        continue
                    where = f"{str(source)!r} line {number}"
                    try:
                        parsed = json.loads(line)
                    except (ValueError, RecursionError) as exc:
                        raise _invalid(where, None, f"is not valid JSON ({exc})") from exc
                    rows.append(_jsonl_row(parsed, where))
                    lines.append(number)
            table = _from_rows(rows) if rows else event_arrow_schema().empty_table()
            if lines != list(range(1, len(lines) + 1)):
                meta[_LINES] = json.dumps(lines).encode()
    except (pa.ArrowInvalid, ValueError, OSError) as exc:
        raise InvalidImportError(f"cannot read {str(source)!r} as {kind}: {exc}. {_NOTHING}") from exc
    return to_event_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}))
