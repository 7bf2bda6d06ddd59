"""Event logs as typed tables: ``events_frame`` (pandas) and ``events_polars`` (Polars).

A store that can export Arrow (``export_arrow``) is read in one batch and its
JSON payloads are expanded column-wise by Arrow's JSON reader, one event type
at a time; nothing is decoded envelope by envelope unless a row needs an
upcaster. Envelope lists go through the same expansion, so the same events
give the same frame whichever way they come in.

Every column is an Arrow column (``pd.ArrowDtype`` in pandas), typed from the
event classes: integers stay integers where an event type lacks the field,
``Decimal`` fields are exact decimals, dates are dates, and a missing value is
always the same marker (``<NA>`` in pandas, ``null`` in Polars).
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from functools import reduce
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from cqrs_lab.codec import EventCodec, default_codec, encode_metadata
from cqrs_lab.domain import Event
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import ConfigurationError
from cqrs_lab.framework import CqrsFramework
from cqrs_lab.stores.arrow import event_arrow_schema
from cqrs_lab.stores.base import EventStore

if TYPE_CHECKING:
    import polars as pl

__all__ = ["ENVELOPE_COLUMNS", "EventSource", "events_frame", "events_polars", "events_table"]

ENVELOPE_COLUMNS = (
    "position",
    "aggregate_type",
    "aggregate_id",
    "sequence",
    "event_type",
    "event_version",
    "recorded_at",
    "event_id",
)
"""The first columns of every events frame, in this order."""

EventSource = EventStore | CqrsFramework[Any] | Iterable[EventEnvelope]
"""Where events come from: a store, a framework (its store, its aggregate type) or envelopes."""

EventTypes = str | type[Event] | Iterable[str | type[Event]]


def events_table(
    source: EventSource,
    *,
    aggregate_id: str | Iterable[str] | None = None,
    aggregate_type: str | None = None,
    event_types: EventTypes | None = None,
    after_position: int | None = None,
    to_position: int | None = None,
    payloads: bool = True,
) -> pa.Table:
    """One row per event as an Arrow table; ``events_frame`` and ``events_polars`` convert it.

    Columns, in this order: ``ENVELOPE_COLUMNS`` (``recorded_at`` a UTC
    timestamp); one ``metadata.<key>`` column per metadata key (sorted); then
    the payload fields, event type by event type in order of first appearance.
    Nested objects become ``parent.child`` columns; a field an event type
    lacks is null in its rows; a payload field whose name is taken by an
    envelope column is called ``payload.<name>``.

    Types come from the event classes: ``int`` fields are ``int64``,
    ``Decimal`` fields ``decimal128(38, s)`` (``s`` the most decimal places
    seen, so ``10.5`` shows as ``10.50`` beside ``1.25``), ``datetime`` fields
    UTC timestamps, ``date`` fields dates, lists lists; enums and UUIDs are
    text. A field whose events disagree on its type (text in one event type, a
    number in another) is text: its JSON.

    ``source`` is an ``EventStore``, a ``CqrsFramework`` (its store, limited
    to its aggregate type unless ``aggregate_type`` says otherwise) or
    envelopes. ``after_position`` is exclusive, ``to_position`` inclusive.
    Events stored at an older version are upcast, as loading them would.

    ``payloads=False`` leaves the payload columns out: only the envelope and
    its metadata, read without any event class (nothing is decoded or upcast).
    """
    if isinstance(source, CqrsFramework):
        aggregate_type = source.aggregate_type if aggregate_type is None else aggregate_type
        source = source.event_store
    after = after_position or 0
    classes: dict[str, type[Event] | None]
    export = getattr(source, "export_arrow", None)
    if export is not None:
        codec: EventCodec = getattr(source, "codec", default_codec)
        table = _select(export(after), aggregate_type, aggregate_id, event_types, after_position, to_position)
        table = table.sort_by("position")
        if not payloads:
            return _typed(table, None)
        table = _upcast(table, codec)
        classes = {name: codec.event_class(name) for name in pc.unique(table["event_type"]).to_pylist()}
    else:
        envelopes = source.read_all(after) if hasattr(source, "read_all") else source
        table, classes = _envelope_table(envelopes)
        table = _select(table, aggregate_type, aggregate_id, event_types, after_position, to_position)
    return _typed(table, classes if payloads else None)


def events_frame(
    source: EventSource,
    *,
    aggregate_id: str | Iterable[str] | None = None,
    aggregate_type: str | None = None,
    event_types: EventTypes | None = None,
    after_position: int | None = None,
    to_position: int | None = None,
    payloads: bool = True,
) -> pd.DataFrame:
    """One row per event as a pandas DataFrame: the envelope, its metadata and its payload fields.

    Columns and types are those of ``events_table``, each column a
    ``pd.ArrowDtype``: ``int64[pyarrow]``, ``decimal128(38, 2)[pyarrow]``,
    ``string[pyarrow]``, ``timestamp[us, tz=UTC][pyarrow]`` ...; a missing
    value is ``<NA>`` (``pd.NA``) in every column. A decimal value comes out
    as a ``decimal.Decimal``. The filters and ``payloads`` are those of ``events_table``.
    """
    table = events_table(
        source, aggregate_id=aggregate_id, aggregate_type=aggregate_type, event_types=event_types,
        after_position=after_position, to_position=to_position, payloads=payloads,
    )
    frame: pd.DataFrame = table.to_pandas(types_mapper=pd.ArrowDtype)
    return frame


def events_polars(
    source: EventSource,
    *,
    aggregate_id: str | Iterable[str] | None = None,
    aggregate_type: str | None = None,
    event_types: EventTypes | None = None,
    after_position: int | None = None,
    to_position: int | None = None,
) -> pl.DataFrame:
    """``events_frame`` as a Polars DataFrame (same columns and types; needs ``pip install polars``)."""
    try:
        import polars as pl
    except ImportError as exc:
        raise ConfigurationError(
            "events_polars needs Polars: pip install polars (or the notebooks extra, "
            "pip install 'cqrs-lab[notebooks]'); events_frame gives the same table in pandas"
        ) from exc
    table = events_table(
        source, aggregate_id=aggregate_id, aggregate_type=aggregate_type, event_types=event_types,
        after_position=after_position, to_position=to_position,
    )
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # a Table gives a DataFrame (a single array, a Series)
    return frame


# -- the log as an Arrow table -----------------------------------------------------
def _envelope_table(envelopes: Iterable[EventEnvelope]) -> tuple[pa.Table, dict[str, type[Event] | None]]:
    items = list(envelopes)
    bad = next((e for e in items if not isinstance(e, EventEnvelope)), None)
    if bad is not None:
        raise ConfigurationError(
            f"events_frame needs envelopes (EventEnvelope), a store or a CqrsFramework, not "
            f"{type(bad).__name__}: commit the events first, or use state_history for bare events"
        )
    columns: dict[str, list[Any]] = {
        "position": [e.position for e in items],
        "aggregate_type": [e.aggregate_type for e in items],
        "aggregate_id": [e.aggregate_id for e in items],
        "sequence": [e.sequence for e in items],
        "event_type": [e.event_type for e in items],
        "event_version": [e.event_version for e in items],
        "payload": [e.payload.model_dump_json() for e in items],
        "metadata": [encode_metadata(e.metadata) for e in items],
        "recorded_at": [e.recorded_at for e in items],
        "event_id": [e.event_id for e in items],
    }
    classes: dict[str, type[Event] | None] = {e.event_type: type(e.payload) for e in items}
    return pa.Table.from_pydict(columns, schema=event_arrow_schema()), classes


def _names(event_types: EventTypes) -> list[str]:
    items = [event_types] if isinstance(event_types, str | type) else list(event_types)
    return [t if isinstance(t, str) else t.event_type for t in items]


def _select(
    table: pa.Table,
    aggregate_type: str | None,
    aggregate_id: str | Iterable[str] | None,
    event_types: EventTypes | None,
    after_position: int | None,
    to_position: int | None,
) -> pa.Table:
    conditions = []
    if aggregate_type is not None:
        conditions.append(pc.equal(table["aggregate_type"], aggregate_type))
    if aggregate_id is not None:
        ids = [aggregate_id] if isinstance(aggregate_id, str) else list(aggregate_id)
        conditions.append(pc.is_in(table["aggregate_id"], value_set=pa.array(ids, pa.string())))
    if event_types is not None:
        names = pa.array(_names(event_types), pa.string())
        conditions.append(pc.is_in(table["event_type"], value_set=names))
    if after_position is not None:
        conditions.append(pc.greater(table["position"], after_position))
    if to_position is not None:
        conditions.append(pc.less_equal(table["position"], to_position))
    if not conditions:
        return table
    return table.filter(reduce(pc.and_, conditions))


def _upcast(table: pa.Table, codec: EventCodec) -> pa.Table:
    """Rewrite rows stored at an older version (or of an unknown type, which raises) via the codec."""
    pairs = table.group_by(["event_type", "event_version"], use_threads=False).aggregate([]).to_pylist()
    stale = []
    for pair in pairs:
        cls = codec.event_class(pair["event_type"])
        if cls is None or cls.event_version != pair["event_version"]:
            stale.append(pc.and_(pc.equal(table["event_type"], pair["event_type"]),
                                 pc.equal(table["event_version"], pair["event_version"])))
    if not stale:
        return table
    mask = reduce(pc.or_, stale).combine_chunks()
    payloads, versions = [], []
    for row in table.filter(mask).select(["aggregate_type", "aggregate_id", "sequence", "position",
                                          "event_type", "event_version", "payload"]).to_pylist():
        where = (f"event {row['aggregate_type']}/{row['aggregate_id']} sequence {row['sequence']}"
                 f" (position {row['position']})")
        event = codec.decode(row["event_type"], row["event_version"], row["payload"], where)
        payloads.append(codec.encode(event))
        versions.append(event.event_version)
    for name, values in (("payload", payloads), ("event_version", versions)):
        column = pc.replace_with_mask(table[name].combine_chunks(), mask, pa.array(values, pa.string()))
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


# -- JSON text to columns -----------------------------------------------------------
def _text_for_times(kind: pa.DataType) -> pa.DataType:
    """``kind`` with every inferred timestamp/date/time turned back into text."""
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
        return pa.string()
    if pa.types.is_struct(kind):
        return pa.struct([kind.field(i).with_type(_text_for_times(kind.field(i).type))
                          for i in range(kind.num_fields)])
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_text_for_times(kind.value_type)))
    return kind


def _flat(table: pa.Table) -> pa.Table:
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


def _parse_lines(texts: pa.Array) -> pa.Table:
    """JSON objects (one per element) as a flat Arrow table: nested objects become ``a.b`` columns.

    Strings stay strings: Arrow's guess that an ISO text is a timestamp is
    undone. JSON that Arrow's reader cannot type (a field that is a number in
    one row and text in another) is read in Python, and such a field is text.
    """
    whole = pa.array([0, len(texts)], pa.int64())
    lines = pa.LargeListArray.from_arrays(whole, texts.cast(pa.large_string()))
    text = pc.binary_join(lines, pa.scalar("\n", pa.large_string()))[0].as_buffer()
    try:
        table = pa_json.read_json(pa.BufferReader(text))
        schema = pa.schema([f.with_type(_text_for_times(f.type)) for f in table.schema])
        if schema != table.schema:
            options = pa_json.ParseOptions(explicit_schema=schema)
            table = pa_json.read_json(pa.BufferReader(text), parse_options=options)
        if table.num_rows == len(texts):
            return _flat(table)
    except pa.ArrowInvalid:
        pass
    rows = pd.json_normalize([json.loads(t) for t in texts.to_pylist()])
    columns = {}
    for name in rows.columns:
        values = [None if _missing(v) else v for v in rows[name].tolist()]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = _json_text(values)
    return pa.table(columns)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _json_text(values: list[Any]) -> pa.Array:
    """Values as text: strings as they are, anything else as its JSON."""
    texts = [v if v is None or isinstance(v, str) else json.dumps(v, default=str, sort_keys=True)
             for v in values]
    return pa.array(texts, pa.string())


def _unoptional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _declared(cls: type[Event] | None) -> dict[str, Any]:
    """The type each payload field declares (``X | None`` counts as ``X``)."""
    if cls is None:
        return {}
    return {name: _unoptional(info.annotation) for name, info in cls.model_fields.items()}


def _decimal_array(texts: pa.Array) -> pa.Array:
    """Decimal text as an Arrow decimal column at the largest scale seen (text if it does not fit)."""
    dot = pc.find_substring(texts, ".")
    places = pc.if_else(pc.greater_equal(dot, 0), pc.subtract(pc.subtract(pc.utf8_length(texts), dot), 1), 0)
    scale = pc.max(places).as_py() or 0
    try:
        return pc.cast(texts, pa.decimal128(38, scale))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return texts  # over 38 digits, or NaN: exact as text rather than rounded


def _converted(values: pa.Array, kind: Any) -> pa.Array:
    """A payload column of one event type, as the type its field declares (``date``, ``datetime``)."""
    if not pa.types.is_string(values.type):
        return values
    try:
        if kind is datetime:
            try:
                return pc.cast(values, pa.timestamp("us", tz="UTC"))
            except pa.ArrowInvalid:  # no UTC offset in the text: a naive time, taken as UTC
                return pc.cast(pc.cast(values, pa.timestamp("us")), pa.timestamp("us", tz="UTC"))
        if kind is date:
            return pc.cast(values, pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return values
    return values


def _common_type(kinds: set[pa.DataType]) -> pa.DataType | None:
    """One type for all of ``kinds`` (``int64`` and ``double`` give ``double``), or ``None``."""
    if len(kinds) == 1:
        return next(iter(kinds))
    try:
        schemas = [pa.schema([pa.field("x", kind)]) for kind in kinds]
        return pa.unify_schemas(schemas, promote_options="permissive").field("x").type
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def _assemble(pieces: list[tuple[np.ndarray, pa.Array]], length: int) -> pa.Array:
    """One column of ``length`` rows from pieces (row numbers, values); other rows are null."""
    kinds = {values.type for _, values in pieces if not pa.types.is_null(values.type)}
    kind = _common_type(kinds) if kinds else pa.null()
    if kind is None:
        pieces = [(rows, _json_text(values.to_pylist())) for rows, values in pieces]
        kind = pa.string()
    values = pa.concat_arrays([v.cast(kind) for _, v in pieces] + [pa.nulls(1, kind)])
    where = np.full(length, len(values) - 1, dtype=np.int64)
    where[np.concatenate([rows for rows, _ in pieces])] = np.arange(len(values) - 1)
    return values.take(pa.array(where))


def _payload_columns(table: pa.Table, classes: dict[str, type[Event] | None]) -> dict[str, pa.Array]:
    """Payload columns of every row, read event type by event type, put back in row order.

    ``Decimal`` fields are read as text and made one decimal column once the
    event types are put together, so the whole column has one scale.
    """
    pieces: dict[str, list[tuple[np.ndarray, pa.Array]]] = {}
    decimals: set[str] = set()
    for event_type in pc.unique(table["event_type"]).to_pylist():
        kinds = _declared(classes.get(event_type))
        decimals |= {name for name, kind in kinds.items() if kind is Decimal}
        mask = pc.equal(table["event_type"], event_type)
        rows = pc.indices_nonzero(mask).to_numpy()
        part = _parse_lines(table["payload"].filter(mask).combine_chunks())
        for name, values in zip(part.column_names, part.columns, strict=True):
            pieces.setdefault(name, []).append((rows, _converted(values.combine_chunks(), kinds.get(name))))
    columns = {name: _assemble(items, table.num_rows) for name, items in pieces.items()}
    for name in decimals & set(columns):
        if pa.types.is_string(columns[name].type):
            columns[name] = _decimal_array(columns[name])
    return columns


def _metadata_columns(texts: pa.Array) -> dict[str, pa.Array]:
    """One text column per metadata key, ``metadata.<key>``, keys sorted."""
    parsed = _parse_lines(texts) if len(texts) else pa.table({})
    columns = {}
    for name in sorted(parsed.column_names):
        values = parsed[name].combine_chunks()
        if not pa.types.is_string(values.type):
            values = _json_text(values.to_pylist())
        columns[f"metadata.{name}"] = values
    return columns


def _typed(table: pa.Table, classes: dict[str, type[Event] | None] | None) -> pa.Table:
    """The envelope, metadata and payload columns (no payload columns when ``classes`` is None)."""
    table = table.combine_chunks()
    columns: dict[str, pa.Array] = {name: table[name].combine_chunks() for name in ENVELOPE_COLUMNS}
    columns.update(_metadata_columns(table["metadata"].combine_chunks()))
    if classes is None:
        return pa.table(columns)
    for name, values in _payload_columns(table, classes).items():
        columns[f"payload.{name}" if name in columns else name] = values
    return pa.table(columns)
