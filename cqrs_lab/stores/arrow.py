"""Arrow interchange for event logs: the schema, and file import/export.

Every store exports and imports events as an Arrow table with
``EVENT_ARROW_SCHEMA`` (payload and metadata as JSON text). Files (Parquet,
JSON Lines, CSV) and pandas DataFrames go through the same table.
"""

from __future__ import annotations

import gzip
import io
import json
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from cqrs_lab.errors import ConfigurationError, CorruptRecordError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "EventFormat",
    "event_arrow_schema",
    "format_for",
    "number_positions",
    "read_events_file",
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


def to_event_table(data: Any) -> pa.Table:
    """Coerce an Arrow table, a pandas DataFrame or a list of dicts to ``event_arrow_schema()``.

    ``position`` may be missing (imports assign positions anew).
    """
    import pyarrow as pa

    schema = event_arrow_schema()
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, list):
        table = pa.Table.from_pylist(data)
    else:
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            raise ConfigurationError(
                f"cannot import events from a {type(data).__name__}: give an Arrow table, "
                "a pandas DataFrame, a list of dicts, or a file path"
            )
        table = pa.Table.from_pandas(data, preserve_index=False)
    if "position" not in table.column_names:
        table = table.append_column("position", pa.array(range(1, table.num_rows + 1), pa.int64()))
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise CorruptRecordError(
            f"the events to import lack column(s) {', '.join(missing)}; expected {', '.join(schema.names)}"
        )
    columns = []
    for field in schema:
        column = table.column(field.name)
        try:
            column = column.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise CorruptRecordError(f"column {field.name!r} cannot be read as {field.type}: {exc}") from exc
        if column.null_count:
            raise CorruptRecordError(f"column {field.name!r} has {column.null_count} empty value(s)")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def write_events_file(table: pa.Table, path: str | Path, fmt: str | None = None) -> int:
    """Write an event table to Parquet, JSON Lines or CSV; returns the row count."""
    kind = format_for(path, fmt)
    target = Path(path)
    if not target.parent.exists():
        raise ConfigurationError(
            f"cannot write {str(target)!r}: folder {str(target.parent)!r} does not exist"
        )
    if kind == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, target)
    elif kind == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, target)
    else:
        with _open_text(target, "w") as out:
            for row in table.to_pylist():
                row["payload"] = json.loads(row["payload"])
                row["metadata"] = json.loads(row["metadata"])
                row["recorded_at"] = row["recorded_at"].isoformat()
                out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    return int(table.num_rows)


def _open_text(path: Path, mode: Literal["r", "w"]) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        # mtime=0: the same events give the same bytes (sample data is regenerated and compared)
        return io.TextIOWrapper(gzip.GzipFile(path, mode + "b", mtime=0), encoding="utf-8")
    return path.open(mode, encoding="utf-8")


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def read_events_file(path: str | Path, fmt: str | None = None) -> pa.Table:
    """Read an event file written by ``write_events_file`` (or any with the same columns)."""
    import pyarrow as pa

    kind = format_for(path, fmt)
    source = Path(path)
    if not source.is_file():
        raise ConfigurationError(f"cannot import {str(source)!r}: no such file")
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
            rows = []
            with _open_text(source, "r") as lines:
                for number, line in enumerate(lines, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                        row["payload"] = _json_text(row["payload"])
                        row["metadata"] = _json_text(row.get("metadata", {}))
                        row["recorded_at"] = datetime.fromisoformat(row["recorded_at"])
                    except (ValueError, KeyError, TypeError) as exc:
                        raise CorruptRecordError(
                            f"{str(source)!r} line {number} is not an event: {exc!r}"
                        ) from exc
                    rows.append(row)
            table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, ValueError, OSError) as exc:
        raise CorruptRecordError(f"cannot read {str(source)!r} as {kind}: {exc}") from exc
    return to_event_table(table)
