"""A timeline of event streams as inline SVG, in EventStorming colours.

One lane per stream; columns follow the global order, so how streams
interleave is visible. The picture is at most ``width`` pixels wide: each
column is as wide as its sticky needs, and columns that do not fit wrap to
further rows, each naming the lanes that have stickies there, so nothing is
cut off and no lane looks empty. A command (blue) stands before the events
(orange) it produced when the events' metadata names it (``command_type``, which
``CqrsFramework`` records); the views (green) a framework's dispatchers keep
stand at the end of each lane. Colours are explicit fills on a white
background, so the picture reads the same in light and dark themes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from html import escape
from itertools import islice
from typing import Any, Literal

from cqrs_lab._render import COMMAND, EVENT, VIEW, Swatch, fields_text
from cqrs_lab.domain import Query
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import ConfigurationError
from cqrs_lab.framework import CqrsFramework
from cqrs_lab.notebook.flow import framework_queries
from cqrs_lab.stores.base import EventStore

__all__ = ["DEFAULT_WIDTH", "Lane", "Sticky", "Timeline", "timeline"]

Kind = Literal["command", "event", "view"]
_SWATCHES: dict[Kind, Swatch] = {"command": COMMAND, "event": EVENT, "view": VIEW}

_LABEL_W, _STICKY_H, _LANE_H, _LEGEND_H, _PAD, _GAP, _SPACE = 132, 66, 80, 30, 8, 16, 8
_LEGEND_W = 8 + 90 * 3  # the legend's three entries
_CHARS, _LINES = 13, 3  # at most this many characters per sticky line, and lines per label
_LABEL_CHARS = 18  # characters of a lane's name
_CHAR_W = 6.7  # the advance of one character at font-size 11 in a monospace font
_MIN_STICKY_W, _MAX_STICKY_W = 64, round(_CHARS * _CHAR_W) + 12
DEFAULT_WIDTH = 880
"""Fits the output area of a notebook column 1000 px wide (JupyterLab's prompt and padding take the rest)."""
_FONT = "font-family='ui-monospace,SFMono-Regular,Menlo,Consolas,monospace'"
_INK, _GRID, _PAPER = "#263238", "#cfd8dc", "#ffffff"


@dataclass(frozen=True)
class Sticky:
    """One note on a lane: its kind, its label, a small second line and a hover text."""

    kind: Kind
    label: str
    column: int
    detail: str = ""
    tooltip: str = ""


@dataclass(frozen=True)
class Lane:
    """The stickies of one stream, left to right."""

    aggregate_type: str
    aggregate_id: str
    stickies: tuple[Sticky, ...]

    @property
    def name(self) -> str:
        return f"{self.aggregate_type}/{self.aggregate_id}"


@dataclass(frozen=True)
class Timeline:
    """Lanes of stickies; renders as SVG in Jupyter (``_repr_html_``), at most ``width`` px wide."""

    lanes: tuple[Lane, ...]
    columns: int
    truncated: bool = False
    """True when more events matched than ``max_events``; only the first are shown."""
    width: int = DEFAULT_WIDTH
    """The widest the picture may be, in pixels; columns that do not fit wrap to a new row."""

    def count(self, kind: Kind) -> int:
        return sum(s.kind == kind for lane in self.lanes for s in lane.stickies)

    def __repr__(self) -> str:
        more = ", truncated" if self.truncated else ""
        return (
            f"Timeline({len(self.lanes)} stream(s), {self.count('command')} command(s), "
            f"{self.count('event')} event(s){more})"
        )

    def column_widths(self) -> list[int]:
        """How wide each column is drawn: as wide as its widest sticky needs (columns are compressed)."""
        widths = [_MIN_STICKY_W + _SPACE] * max(self.columns, 1)
        for lane in self.lanes:
            for sticky in lane.stickies:
                widths[sticky.column] = max(widths[sticky.column], _sticky_width(sticky) + _SPACE)
        return widths

    def rows(self) -> list[tuple[range, tuple[Lane, ...]]]:
        """The rows the picture wraps to: their columns, and the lanes with stickies in them."""
        room = self.width - _LABEL_W - _PAD
        rows: list[range] = []
        start, used = 0, 0
        for column, width in enumerate(self.column_widths()):
            if column > start and used + width > room:
                rows.append(range(start, column))
                start, used = column, 0
            used += width
        rows.append(range(start, max(self.columns, 1)))
        return [
            (columns, tuple(lane for lane in self.lanes if any(s.column in columns for s in lane.stickies)))
            for columns in rows
        ]

    def svg(self) -> str:
        """The picture as a standalone ``<svg>`` element, at most ``width`` pixels wide."""
        rows, widths = self.rows(), self.column_widths()
        width = max(_LABEL_W + max(sum(widths[c] for c in columns) for columns, _ in rows) + _PAD, _LEGEND_W)
        lanes_drawn = sum(len(lanes) for _, lanes in rows) or 1
        height = (_LEGEND_H + lanes_drawn * _LANE_H + (len(rows) - 1) * _GAP + _PAD
                  + (18 if self.truncated else 0))
        parts = [
            # JupyterLab (and a handout) shrink an SVG wider than the output to fit; at the
            # default width it is drawn at its own size in a notebook column 1000 px wide.
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' style='max-width:100%;height:auto' {_FONT} font-size='11'>",
            f"<rect x='0' y='0' width='{width}' height='{height}' fill='{_PAPER}' stroke='{_GRID}'/>",
            *_legend(),
        ]
        top = _LEGEND_H
        for number, (columns, lanes) in enumerate(rows):
            if number:
                parts.append(_wrap_marker(top - _GAP // 2, width, columns, self.columns))
            x = _LABEL_W
            xs = {}
            for column in columns:
                xs[column] = x
                x += widths[column]
            for lane in lanes:
                parts.extend(_lane(lane, top, width, xs))
                top += _LANE_H
            top += _GAP
        if not self.lanes:
            parts.append(f"<text x='{_PAD}' y='{_LEGEND_H + 30}' fill='{_INK}'>no events</text>")
        if self.truncated:
            parts.append(
                f"<text x='{_PAD}' y='{height - 8}' fill='{_INK}'>more events follow: "
                "raise max_events or pass after_position= to see them</text>"
            )
        parts.append("</svg>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return f"<div class='cqrs-lab-timeline'>{self.svg()}</div>"


def _wrap_marker(y: int, width: int, columns: range, total: int) -> str:
    """The dashed line above a continued row, saying which columns it holds."""
    return (f"<line x1='0' y1='{y}' x2='{width}' y2='{y}' stroke='{_GRID}' stroke-dasharray='4 3'/>"
            f"<text x='{width - _PAD}' y='{y - 2}' fill='{_INK}' font-size='9' text-anchor='end'>"
            f"continued: columns {columns.start + 1}-{columns.stop} of {total}</text>")


def _legend() -> Iterator[str]:
    x = _PAD
    for kind, swatch in _SWATCHES.items():
        yield (f"<rect x='{x}' y='8' width='14' height='14' rx='2' fill='{swatch.fill}' "
               f"stroke='{swatch.stroke}'/><text x='{x + 20}' y='19' fill='{_INK}'>{kind}</text>")
        x += 90


def _lines(label: str) -> list[str]:
    """The label in at most ``_LINES`` lines of ``_CHARS`` characters, split between CamelCase words."""
    words = re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])|[^A-Za-z0-9]+", label) or [label]
    lines = [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + len(word) > _CHARS:
            lines.append("")
        lines[-1] += word
    if len(lines) > _LINES:
        lines = [*lines[: _LINES - 1], "".join(lines[_LINES - 1 :])]
    return [_cut(line, _CHARS) for line in lines]


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _sticky_width(sticky: Sticky) -> int:
    chars = max([len(line) for line in _lines(sticky.label)] + [len(_detail(sticky))])
    return min(_MAX_STICKY_W, max(_MIN_STICKY_W, round(chars * _CHAR_W) + 12))


def _detail(sticky: Sticky) -> str:
    return sticky.detail[:_CHARS]


def _lane(lane: Lane, top: int, width: int, xs: dict[int, int]) -> Iterator[str]:
    """One lane of one row; ``xs`` places the row's columns (a sticky in another column is left out)."""
    middle = top + _LANE_H // 2
    yield f"<line x1='0' y1='{top}' x2='{width}' y2='{top}' stroke='{_GRID}'/>"
    yield (f"<line x1='{_LABEL_W - 8}' y1='{middle}' x2='{width - _PAD}' y2='{middle}' "
           f"stroke='{_GRID}' stroke-width='2'/>")
    yield (f"<text x='{_PAD}' y='{middle - 4}' fill='{_INK}' font-size='10'>"
           f"{escape(lane.aggregate_type)}</text>"
           f"<text x='{_PAD}' y='{middle + 10}' fill='{_INK}' font-weight='bold'>"
           f"{escape(_cut(lane.aggregate_id, _LABEL_CHARS))}</text>")
    for sticky in lane.stickies:
        if sticky.column not in xs:
            continue
        swatch = _SWATCHES[sticky.kind]
        x = xs[sticky.column]
        y = top + (_LANE_H - _STICKY_H) // 2
        text = "".join(
            f"<text x='{x + 6}' y='{y + 15 + 13 * i}' fill='{swatch.text}'>{escape(line)}</text>"
            for i, line in enumerate(_lines(sticky.label))
        )
        detail = (f"<text x='{x + 6}' y='{y + _STICKY_H - 7}' fill='{swatch.text}' font-size='10'>"
                  f"{escape(_detail(sticky))}</text>") if sticky.detail else ""
        yield (f"<g><title>{escape(sticky.tooltip or sticky.label)}</title>"
               f"<rect x='{x}' y='{y}' width='{_sticky_width(sticky)}' height='{_STICKY_H}' rx='3' "
               f"fill='{swatch.fill}' stroke='{swatch.stroke}'/>{text}{detail}</g>")


def _envelopes(
    source: EventStore | CqrsFramework[Any] | Iterable[EventEnvelope],
    aggregate_type: str | None,
    aggregate_id: str | None,
    after_position: int | None,
    to_position: int | None,
) -> Iterator[EventEnvelope]:
    if isinstance(source, CqrsFramework):
        aggregate_type = aggregate_type or source.aggregate_type
        source = source.event_store
    ordered = True  # stores give events in position order: stop at to_position
    if aggregate_type is not None and aggregate_id is not None and hasattr(source, "load_events"):
        items: Iterable[EventEnvelope] = source.load_events(aggregate_type, aggregate_id)
    elif hasattr(source, "read_all"):
        items = source.read_all(after_position or 0)
    else:
        items, ordered = source, False
    for envelope in items:
        if to_position is not None and envelope.position > to_position:
            if ordered:
                return
            continue
        if (
            (after_position is None or envelope.position > after_position)
            and (aggregate_type is None or envelope.aggregate_type == aggregate_type)
            and (aggregate_id is None or envelope.aggregate_id == aggregate_id)
        ):
            yield envelope


def _view_names(source: object, views: Sequence[str | type[Query]] | None) -> list[str]:
    if views is not None:
        return [v if isinstance(v, str) else v.query_type for v in views]
    return framework_queries(source) if isinstance(source, CqrsFramework) else []


def timeline(
    source: EventStore | CqrsFramework[Any] | Iterable[EventEnvelope],
    *,
    aggregate_type: str | None = None,
    aggregate_id: str | None = None,
    after_position: int | None = None,
    to_position: int | None = None,
    views: Sequence[str | type[Query]] | None = None,
    max_events: int = 100,
    width: int = DEFAULT_WIDTH,
) -> Timeline:
    """A ``Timeline`` of the events from ``source`` (a store, a framework or envelopes).

    Filters as in ``events_frame``; at most ``max_events`` events are drawn.
    ``views`` names the views to show at the end of each lane (default: the
    queries of a framework's ``QueryProcessor`` dispatchers). ``width`` is
    the widest the picture may be, in pixels: columns that do not fit wrap to
    further rows (the default fits a notebook column 1000 px wide).
    """
    narrowest = _LABEL_W + _MAX_STICKY_W + _SPACE + _PAD
    if width < narrowest:
        raise ConfigurationError(f"timeline width={width} is too narrow: give at least {narrowest} (pixels)")
    found = _envelopes(source, aggregate_type, aggregate_id, after_position, to_position)
    envelopes = list(islice(found, max_events + 1))
    truncated = len(envelopes) > max_events
    envelopes = envelopes[:max_events]
    stickies: dict[tuple[str, str], list[Sticky]] = {}
    column = 0
    previous_command: str | None = None
    for envelope in envelopes:
        lane = stickies.setdefault((envelope.aggregate_type, envelope.aggregate_id), [])
        command_id = envelope.metadata.get("command_id")
        command_type = envelope.metadata.get("command_type")
        if command_type and (command_id is None or command_id != previous_command):
            tooltip = f"{command_type} (command {command_id})"
            lane.append(Sticky("command", command_type, column, tooltip=tooltip))
            column += 1
        previous_command = command_id
        lane.append(
            Sticky(
                "event",
                envelope.event_type,
                column,
                detail=f"#{envelope.sequence}" + (f" @{envelope.position}" if envelope.position else ""),
                tooltip=f"{envelope.event_type}({fields_text(envelope.payload)})",
            )
        )
        column += 1
    names = _view_names(source, views)
    if stickies and names:
        for lane_stickies in stickies.values():
            lane_stickies.extend(
                Sticky("view", name, column + i, tooltip=f"view {name}") for i, name in enumerate(names)
            )
        column += len(names)
    lanes = tuple(Lane(t, i, tuple(s)) for (t, i), s in stickies.items())
    return Timeline(lanes, column, truncated, width)
