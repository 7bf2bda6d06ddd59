"""Event logs as pandas DataFrames: ``events_frame``.

A store that can export Arrow (``export_arrow``) is read in one batch and its
JSON payloads are expanded column-wise by Arrow's JSON reader, one event type
at a time; nothing is decoded envelope by envelope unless a row needs an
upcaster. Envelope lists go through the same expansion, so the same events
give the same frame whichever way they come in.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from functools import reduce
from typing import Any, Union, get_args, get_origin

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

__all__ = ["ENVELOPE_COLUMNS", "EventSource", "events_frame"]

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


def events_frame(
    source: EventSource,
    *,
    aggregate_id: str | Iterable[str] | None = None,
    aggregate_type: str | None = None,
    event_types: str | type[Event] | Iterable[str | type[Event]] | None = None,
    after_position: int | None = None,
    to_position: int | None = None,
) -> pd.DataFrame:
    """One row per event: the envelope, its metadata and its payload fields as columns.

    Columns, in this order: ``ENVELOPE_COLUMNS`` (``recorded_at`` in UTC); one
    ``metadata.<key>`` column per metadata key (sorted); then the payload
    fields, event type by event type in order of first appearance. Nested
    objects become ``parent.child`` columns; a field an event type lacks is
    missing (NaN/None) in its rows; a payload field whose name is taken by an
    envelope column is called ``payload.<name>``.

    Values: a ``Decimal`` field becomes an Arrow decimal column
    (``pd.ArrowDtype(pa.decimal128(38, s))``, ``s`` the most decimal places
    seen, so ``10.5`` shows as ``10.50`` beside ``1.25``; each value is a
    ``decimal.Decimal``), or a column of ``Decimal`` objects when the values do
    not fit that. ``datetime`` fields become UTC timestamps. Everything else is
    as in the stored JSON: dates, enums and UUIDs as strings, lists as lists.

    ``source`` is an ``EventStore``, a ``CqrsFramework`` (its store, limited
    to its aggregate type unless ``aggregate_type`` says otherwise) or
    envelopes. ``after_position`` is exclusive, ``to_position`` inclusive.
    Events stored at an older version are upcast, as loading them would.
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
        table = _upcast(table.sort_by("position"), codec)
        classes = {name: codec.event_class(name) for name in pc.unique(table["event_type"]).to_pylist()}
    else:
        envelopes = source.read_all(after) if hasattr(source, "read_all") else source
        table, classes = _envelope_table(envelopes)
        table = _select(table, aggregate_type, aggregate_id, event_types, after_position, to_position)
    return _frame(table, classes)


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


def _names(event_types: str | type[Event] | Iterable[str | type[Event]]) -> list[str]:
    items = [event_types] if isinstance(event_types, str | type) else list(event_types)
    return [t if isinstance(t, str) else t.event_type for t in items]


def _select(
    table: pa.Table,
    aggregate_type: str | None,
    aggregate_id: str | Iterable[str] | None,
    event_types: str | type[Event] | Iterable[str | type[Event]] | None,
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


def _parse_lines(texts: pa.Array) -> pa.Table | None:
    """JSON objects (one per element) as an Arrow table, or ``None`` when Arrow cannot read them.

    Strings stay strings: Arrow's guess that an ISO text is a timestamp is undone.
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
    except pa.ArrowInvalid:
        return None
    if table.num_rows != len(texts):
        return None
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


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


def _decimals(values: list[Any]) -> list[Any]:
    """Decimal text to ``Decimal``; missing values (``None``) and numbers unchanged."""
    try:
        return list(map(Decimal, values))
    except (TypeError, ArithmeticError):
        return [Decimal(v) if isinstance(v, str) else v for v in values]


def _decimal_column(texts: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    """Decimal text as an Arrow decimal column at the largest scale seen.

    Values that do not fit (over 38 digits, ``NaN``) give a column of ``Decimal`` objects.
    """
    dot = pc.find_substring(texts, ".")
    places = pc.if_else(pc.greater_equal(dot, 0), pc.subtract(pc.subtract(pc.utf8_length(texts), dot), 1), 0)
    scale = pc.max(places).as_py() or 0
    try:
        values = pc.cast(texts, pa.decimal128(38, scale))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return pd.Series(_decimals(texts.to_pylist()), index=index, dtype=object)
    return pd.Series(values, index=index, dtype=pd.ArrowDtype(values.type))


def _column(values: pa.ChunkedArray | pd.Series, kind: Any, index: pd.Index) -> pd.Series:
    """One payload column in pandas; ``kind`` is the field's declared type when it needs converting."""
    if kind is datetime:
        texts = values.to_pandas() if isinstance(values, pa.ChunkedArray) else values
        return pd.Series(pd.to_datetime(texts, utc=True, format="ISO8601").array, index=index)
    if isinstance(values, pd.Series):
        items = values.astype(object).where(values.notna(), None).tolist()
        return pd.Series(_decimals(items) if kind is Decimal else items, index=index, dtype=object)
    if kind is Decimal and pa.types.is_string(values.type):
        return pd.Series(_decimals(values.to_pylist()), index=index, dtype=object)
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        return pd.Series(values.to_pylist(), index=index, dtype=object)
    series: pd.Series = values.to_pandas()
    series.index = index
    return series


def _payload_part(texts: pa.Array, kinds: dict[str, Any], index: pd.Index) -> pd.DataFrame:
    """The payload fields of one event type's rows; fields named in ``kinds`` are converted."""
    parsed = _parse_lines(texts)
    if parsed is not None:
        columns = zip(parsed.column_names, parsed.columns, strict=True)
        return pd.DataFrame({name: _column(values, kinds.get(name), index) for name, values in columns},
                            index=index)
    raw = pd.json_normalize([json.loads(t) for t in texts.to_pylist()])
    return pd.DataFrame({name: _column(raw[name], kinds.get(name), index) for name in raw.columns},
                        index=index)


def _payload_frame(table: pa.Table, classes: dict[str, type[Event] | None]) -> pd.DataFrame:
    """Payload columns of every row, event type by event type, back in row order.

    ``Decimal`` fields become one Arrow decimal column after the event types
    are put together (one scale for the whole column); a field name that is
    ``Decimal`` in one event type and something else in another is converted
    to ``Decimal`` objects in the rows of the first only.
    """
    index = pd.RangeIndex(table.num_rows)
    event_types = pc.unique(table["event_type"]).to_pylist()
    declared: dict[str, set[Any]] = {}
    for event_type in event_types:
        for name, kind in _declared(classes.get(event_type)).items():
            declared.setdefault(name, set()).add(kind)
    shared = {name for name, kinds in declared.items() if kinds == {Decimal}}
    parts = []
    for event_type in event_types:
        converted = {
            name: kind
            for name, kind in _declared(classes.get(event_type)).items()
            if kind in (Decimal, datetime) and name not in shared
        }
        mask = pc.equal(table["event_type"], event_type)
        rows = pd.Index(pc.indices_nonzero(mask).to_numpy())
        parts.append(_payload_part(table["payload"].filter(mask).combine_chunks(), converted, rows))
    if not parts:
        return pd.DataFrame(index=index)
    frame = pd.concat(parts).reindex(index)
    for name in sorted(shared & set(frame.columns)):
        if pd.api.types.is_string_dtype(frame[name]):
            frame[name] = _decimal_column(pa.array(frame[name], pa.string()), index)
    return frame


def _metadata_frame(texts: pa.Array) -> pd.DataFrame:
    index = pd.RangeIndex(len(texts))
    parsed = _parse_lines(texts) if len(texts) else pa.table({})
    if parsed is not None and all(pa.types.is_string(f.type) for f in parsed.schema):
        frame = pd.DataFrame({name: _column(values, None, index)
                              for name, values in zip(parsed.column_names, parsed.columns, strict=True)},
                             index=index)
    else:
        rows = [{k: str(v) for k, v in json.loads(t).items()} for t in texts.to_pylist()]
        frame = pd.DataFrame(rows, index=index)
    frame = frame[sorted(frame.columns)]
    return frame.rename(columns=lambda key: f"metadata.{key}")


def _frame(table: pa.Table, classes: dict[str, type[Event] | None]) -> pd.DataFrame:
    table = table.combine_chunks()
    envelope = table.select(list(ENVELOPE_COLUMNS)).to_pandas()
    metadata = _metadata_frame(table["metadata"].combine_chunks())
    payload = _payload_frame(table, classes)
    taken = set(envelope.columns) | set(metadata.columns)
    payload = payload.rename(columns=lambda name: f"payload.{name}" if name in taken else name)
    frame: pd.DataFrame = pd.concat([envelope, metadata, payload], axis=1)
    return frame
