"""An aggregate's state after each of its events, and time travel to any point."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar, get_origin, overload

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel

from cqrs_lab._render import CHANGED
from cqrs_lab.domain import Aggregate, AggregateSource, Event, aggregate_class
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import ConfigurationError
from cqrs_lab.framework import replay
from cqrs_lab.notebook.frames import _decimal_array, _unoptional
from cqrs_lab.testing import as_envelope

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

__all__ = ["HISTORY_UUID", "state_at", "state_history", "styled_state_history"]

A = TypeVar("A", bound=Aggregate)

HISTORY_UUID = "cqrs-lab-history"
"""The fixed Styler uuid of ``styled_state_history`` tables (stable HTML ids)."""

_CHANGED_CLASS = "cqrs-lab-changed"


def _stream(aggregate_cls: type[Aggregate], items: Iterable[EventEnvelope | Event]) -> list[EventEnvelope]:
    """Envelopes of one stream; bare events get sequence numbers 1, 2, ..."""
    envelopes = [
        item if isinstance(item, EventEnvelope)
        else as_envelope(item, aggregate_type=aggregate_cls.aggregate_type, aggregate_id="", sequence=i)
        for i, item in enumerate(items, start=1)
    ]
    streams = sorted({(e.aggregate_type, e.aggregate_id) for e in envelopes})
    if len(streams) > 1:
        names = ", ".join(f"{t}/{i}" for t, i in streams[:3])
        raise ConfigurationError(
            f"the events belong to {len(streams)} streams ({names}{', ...' if len(streams) > 3 else ''}); "
            "pass the events of one aggregate, e.g. framework.events(aggregate_id)"
        )
    return envelopes


def _fields(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Field values (Python form); nested models become ``parent.child`` entries."""
    values: dict[str, Any] = {}
    dumped = model.model_dump()
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            values.update(_fields(value, f"{prefix}{name}."))
        else:
            values[f"{prefix}{name}"] = dumped[name]
    return values


def _annotations(cls: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """The declared type of each entry of ``_fields`` (``X | None`` counts as ``X``)."""
    kinds: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        kind = _unoptional(info.annotation)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            kinds.update(_annotations(kind, f"{prefix}{name}."))
        else:
            kinds[f"{prefix}{name}"] = kind
    return kinds


_SCALARS: dict[Any, pa.DataType] = {
    bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string(), date: pa.date32(),
    datetime: pa.timestamp("us", tz="UTC"),
}


def _column(values: list[Any], kind: Any, index: pd.Index) -> pd.Series:
    """One field's values as an Arrow-typed column; mappings and what Arrow cannot type as objects."""
    if kind is Decimal:
        texts = pa.array([None if v is None else str(v) for v in values], pa.string())
        array = _decimal_array(texts)
        return pd.Series(array, index=index, dtype=pd.ArrowDtype(array.type))
    if get_origin(kind) is not dict and kind is not dict:
        try:
            array = pa.array(values, type=_SCALARS.get(kind))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            array = None
        if array is not None and not pa.types.is_struct(array.type):
            return pd.Series(array, index=index, dtype=pd.ArrowDtype(array.type))
    return pd.Series([pd.NA if v is None else v for v in values], index=index, dtype=object)


def state_history(
    aggregate_cls: type[Aggregate] | AggregateSource, events: Iterable[EventEnvelope | Event]
) -> pd.DataFrame:
    """The aggregate's (or ``Decider``'s) state after each event: one row per event.

    Columns: ``sequence``, ``event_type``, then the aggregate's fields (nested
    models as ``parent.child``). Each column is typed from the field's
    declaration, as in ``events_frame``: ``int64[pyarrow]``, exact decimals
    (``Decimal`` values at one scale per column), dates, text, lists; a
    missing value is ``<NA>``. Mapping fields (``dict``) hold their dicts.
    ``events`` are envelopes of one stream or bare events (numbered 1, 2, ...).
    """
    aggregate_cls = aggregate_class(aggregate_cls)
    envelopes = _stream(aggregate_cls, events)
    state = aggregate_cls()
    kinds = {"sequence": int, "event_type": str, **_annotations(aggregate_cls)}
    rows = []
    for envelope in envelopes:
        state = replay(aggregate_cls, [envelope], state)
        rows.append({"sequence": envelope.sequence, "event_type": envelope.event_type, **_fields(state)})
    index = pd.RangeIndex(len(rows))
    return pd.DataFrame(
        {name: _column([row[name] for row in rows], kind, index) for name, kind in kinds.items()},
        index=index,
    )


def _changes(frame: pd.DataFrame, initial: dict[str, Any]) -> pd.DataFrame:
    """CSS classes marking each field cell that differs from the row before (or the initial state)."""
    previous = dict(initial)
    marks = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for label, row in frame.iterrows():
        for name, before in previous.items():
            if name in row.index and _differs(row[name], before):
                marks.loc[label, name] = _CHANGED_CLASS
        previous = {name: row[name] for name in previous}
    return marks


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(a != b)
    except (TypeError, ValueError):
        return repr(a) != repr(b)


@cache
def _styler_class() -> type[Styler]:
    """A ``Styler`` whose plain-text repr says what it shows (no memory address), for nbval.

    Made on first use: pandas' Styler needs jinja2, which nothing else here does.
    """
    from pandas.io.formats.style import Styler

    class HistoryStyler(Styler):
        def __repr__(self) -> str:
            return f"<state history: {len(self.index)} event(s), {len(self.columns) - 2} field(s)>"

    return HistoryStyler


def styled_state_history(
    aggregate_cls: type[Aggregate] | AggregateSource, events: Iterable[EventEnvelope | Event]
) -> Styler:
    """``state_history`` as a pandas Styler: each field that an event changed is highlighted.

    The first row is compared with the initial state (``aggregate_cls()``).
    The table uses the fixed uuid ``HISTORY_UUID`` and a CSS class rather than
    per-cell ids, so its HTML is the same on every run and two tables on one
    page do not restyle each other.
    """
    frame = state_history(aggregate_cls, events)
    initial = _fields(aggregate_class(aggregate_cls)())
    style = (
        f"background-color:{CHANGED.fill};color:{CHANGED.text};font-weight:bold"
    )
    return (
        _styler_class()(frame)
        .set_uuid(HISTORY_UUID)
        .set_td_classes(_changes(frame, initial))
        .set_table_styles([{"selector": f"td.{_CHANGED_CLASS}", "props": style}])
        .hide(axis="index")
    )


@overload
def state_at(
    aggregate_cls: type[A],
    events: Sequence[EventEnvelope | Event],
    *,
    sequence: int | None = None,
    at: datetime | None = None,
) -> A: ...


@overload
def state_at(
    aggregate_cls: AggregateSource,
    events: Sequence[EventEnvelope | Event],
    *,
    sequence: int | None = None,
    at: datetime | None = None,
) -> Any: ...


def state_at(
    aggregate_cls: type[A] | AggregateSource,
    events: Sequence[EventEnvelope | Event],
    *,
    sequence: int | None = None,
    at: datetime | None = None,
) -> Any:
    """Time travel: the state after the events up to ``sequence`` (inclusive); for a
    ``Decider``, its state.

    Or with ``at``, after the events recorded at or before that time; with
    neither, the current state. ``at`` must be timezone-aware and needs
    envelopes (bare events have no time).
    """
    if sequence is not None and at is not None:
        raise ConfigurationError("give state_at either sequence= or at=, not both")
    if at is not None and at.tzinfo is None:
        raise ConfigurationError(
            f"at={at.isoformat()} has no timezone; pass an aware datetime, e.g. datetime(..., tzinfo=UTC)"
        )
    if at is not None and any(not isinstance(e, EventEnvelope) for e in events):
        raise ConfigurationError("state_at(at=...) needs envelopes: bare events carry no recorded_at time")
    model = aggregate_class(aggregate_cls)
    envelopes = _stream(model, events)
    if sequence is not None:
        envelopes = [e for e in envelopes if e.sequence <= sequence]
    elif at is not None:
        envelopes = [e for e in envelopes if e.recorded_at <= at]
    state = replay(model, envelopes)
    return state if isinstance(aggregate_cls, type) else aggregate_cls.state_of(state)
