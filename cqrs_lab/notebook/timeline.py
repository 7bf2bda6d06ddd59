"""A timeline of event streams as inline SVG, in EventStorming colours.

One lane per stream; columns follow the global order, so how streams
interleave is visible. A command (blue) stands before the events (orange) it
produced when the events' metadata names it (``command_type``, which
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
from cqrs_lab.framework import CqrsFramework
from cqrs_lab.notebook.flow import framework_queries
from cqrs_lab.stores.base import EventStore

__all__ = ["Lane", "Sticky", "Timeline", "timeline"]

Kind = Literal["command", "event", "view"]
_SWATCHES: dict[Kind, Swatch] = {"command": COMMAND, "event": EVENT, "view": VIEW}

_LABEL_W, _COL_W, _STICKY_W, _STICKY_H, _LANE_H, _LEGEND_H, _PAD = 180, 150, 140, 58, 74, 30, 8
_CHARS = 20  # characters per sticky line at the font size used
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
    """Lanes of stickies; renders as SVG in Jupyter (``_repr_html_``)."""

    lanes: tuple[Lane, ...]
    columns: int
    truncated: bool = False
    """True when more events matched than ``max_events``; only the first are shown."""

    def count(self, kind: Kind) -> int:
        return sum(s.kind == kind for lane in self.lanes for s in lane.stickies)

    def __repr__(self) -> str:
        more = ", truncated" if self.truncated else ""
        return (
            f"Timeline({len(self.lanes)} stream(s), {self.count('command')} command(s), "
            f"{self.count('event')} event(s){more})"
        )

    def svg(self) -> str:
        """The picture as a standalone ``<svg>`` element."""
        width = _LABEL_W + max(self.columns, 1) * _COL_W + _PAD
        height = _LEGEND_H + max(len(self.lanes), 1) * _LANE_H + _PAD + (18 if self.truncated else 0)
        parts = [
            # max-width:none: JupyterLab shrinks SVGs to the output width, which makes a
            # long timeline unreadable; the wrapper scrolls instead.
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' style='max-width:none' {_FONT} font-size='11'>",
            f"<rect x='0' y='0' width='{width}' height='{height}' fill='{_PAPER}' stroke='{_GRID}'/>",
            *_legend(),
        ]
        for row, lane in enumerate(self.lanes):
            parts.extend(_lane(lane, _LEGEND_H + row * _LANE_H, width))
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
        return f"<div class='cqrs-lab-timeline' style='overflow-x:auto'>{self.svg()}</div>"


def _legend() -> Iterator[str]:
    x = _PAD
    for kind, swatch in _SWATCHES.items():
        yield (f"<rect x='{x}' y='8' width='14' height='14' rx='2' fill='{swatch.fill}' "
               f"stroke='{swatch.stroke}'/><text x='{x + 20}' y='19' fill='{_INK}'>{kind}</text>")
        x += 90


def _lines(label: str) -> list[str]:
    """The label in at most two lines of ``_CHARS`` characters, split between CamelCase words."""
    words = re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])|[^A-Za-z0-9]+", label) or [label]
    lines = [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + len(word) > _CHARS:
            lines.append("")
        lines[-1] += word
    if len(lines) > 2:
        lines = [lines[0], "".join(lines[1:])]
    return [line if len(line) <= _CHARS else line[: _CHARS - 1] + "…" for line in lines]


def _lane(lane: Lane, top: int, width: int) -> Iterator[str]:
    middle = top + _LANE_H // 2
    yield f"<line x1='0' y1='{top}' x2='{width}' y2='{top}' stroke='{_GRID}'/>"
    yield (f"<line x1='{_LABEL_W - 8}' y1='{middle}' x2='{width - _PAD}' y2='{middle}' "
           f"stroke='{_GRID}' stroke-width='2'/>")
    yield (f"<text x='{_PAD}' y='{middle - 4}' fill='{_INK}' font-size='10'>"
           f"{escape(lane.aggregate_type)}</text>"
           f"<text x='{_PAD}' y='{middle + 10}' fill='{_INK}' font-weight='bold'>"
           f"{escape(_lines(lane.aggregate_id)[0])}</text>")
    for sticky in lane.stickies:
        swatch = _SWATCHES[sticky.kind]
        x = _LABEL_W + sticky.column * _COL_W
        y = top + (_LANE_H - _STICKY_H) // 2
        text = "".join(
            f"<text x='{x + 6}' y='{y + 16 + 13 * i}' fill='{swatch.text}'>{escape(line)}</text>"
            for i, line in enumerate(_lines(sticky.label))
        )
        detail = (f"<text x='{x + 6}' y='{y + _STICKY_H - 7}' fill='{swatch.text}' font-size='10'>"
                  f"{escape(sticky.detail[:_CHARS + 4])}</text>") if sticky.detail else ""
        yield (f"<g><title>{escape(sticky.tooltip or sticky.label)}</title>"
               f"<rect x='{x}' y='{y}' width='{_STICKY_W}' height='{_STICKY_H}' rx='3' "
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
) -> Timeline:
    """A ``Timeline`` of the events from ``source`` (a store, a framework or envelopes).

    Filters as in ``events_frame``; at most ``max_events`` events are drawn.
    ``views`` names the views to show at the end of each lane (default: the
    queries of a framework's ``QueryProcessor`` dispatchers).
    """
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
    return Timeline(lanes, column, truncated)
