"""A timeline of event streams as inline SVG, in EventStorming colours.

One lane per stream; columns follow the global order, so how streams
interleave is visible. The picture is at most ``width`` pixels wide: each
column is as wide as its sticky needs, and columns that do not fit wrap to
further rows, each naming the lanes that have stickies there, so nothing is
cut off and no lane looks empty. A command (blue) stands before the events
(orange) it produced when the events' metadata names it (``command_type``, which
``CqrsFramework`` records); the views (green) a framework's dispatchers keep
stand at the end of each lane. A command a process manager sent (its metadata
names the ``process``) has a policy (lilac) before it, in a lane of the process
instance, and arrows link the event that caused it to the policy and the policy
to its commands; a policy also names that event's position, since an arrow is
only drawn within a row. Colours are explicit fills on a white
background, so the picture reads the same in light and dark themes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from itertools import islice
from typing import Any, Literal

from cqrs_lab._render import COMMAND, EVENT, POLICY, VIEW, Swatch, arrow, fields_text
from cqrs_lab.domain import Query
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import ConfigurationError
from cqrs_lab.framework import CqrsFramework
from cqrs_lab.notebook.flow import framework_queries
from cqrs_lab.stores.base import EventStore

__all__ = ["DEFAULT_WIDTH", "Lane", "Link", "Sticky", "Timeline", "timeline"]

Kind = Literal["command", "event", "policy", "view"]
_SWATCHES: dict[Kind, Swatch] = {"command": COMMAND, "event": EVENT, "policy": POLICY, "view": VIEW}

_LABEL_W, _STICKY_H, _LANE_H, _LEGEND_H, _PAD, _GAP, _SPACE = 132, 66, 80, 30, 8, 16, 8
_LEGEND_STEP = 90  # the legend's entries: command, event, (policy,) view
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
    """The stickies of one stream, left to right; or of one process instance (``process`` set:
    ``aggregate_type`` is then the process's name, ``aggregate_id`` the instance's id)."""

    aggregate_type: str
    aggregate_id: str
    stickies: tuple[Sticky, ...]
    process: bool = False

    @property
    def name(self) -> str:
        return f"{self.aggregate_type}/{self.aggregate_id}"


@dataclass(frozen=True)
class Link:
    """An arrow from the sticky in column ``source`` to the one in column ``target``: an event to
    the policy it triggered, a policy to a command it sent. ``dashed`` when time passed between
    (a deadline)."""

    source: int
    target: int
    dashed: bool = False


@dataclass(frozen=True)
class Timeline:
    """Lanes of stickies; renders as SVG in Jupyter (``_repr_html_``), at most ``width`` px wide."""

    lanes: tuple[Lane, ...]
    columns: int
    truncated: bool = False
    """True when more events matched than ``max_events``; only the first are shown."""
    width: int = DEFAULT_WIDTH
    """The widest the picture may be, in pixels; columns that do not fit wrap to a new row."""
    links: tuple[Link, ...] = ()
    """Arrows between stickies (drawn when both ends are in the same row)."""

    def count(self, kind: Kind) -> int:
        return sum(s.kind == kind for lane in self.lanes for s in lane.stickies)

    def __repr__(self) -> str:
        streams = sum(not lane.process for lane in self.lanes)
        policies = self.count("policy")
        more = (f", {policies} policy(ies)" if policies else "") + (", truncated" if self.truncated else "")
        return (
            f"Timeline({streams} stream(s), {self.count('command')} command(s), "
            f"{self.count('event')} event(s){more})"
        )

    def kinds(self) -> list[Kind]:
        """The kinds the legend shows: command, event and view, and policy when there is one."""
        return [kind for kind in _SWATCHES if kind != "policy" or self.count("policy")]

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
        rows, widths, kinds = self.rows(), self.column_widths(), self.kinds()
        legend_w = _PAD + _LEGEND_STEP * len(kinds)
        width = max(_LABEL_W + max(sum(widths[c] for c in columns) for columns, _ in rows) + _PAD, legend_w)
        lanes_drawn = sum(len(lanes) for _, lanes in rows) or 1
        height = (_LEGEND_H + lanes_drawn * _LANE_H + (len(rows) - 1) * _GAP + _PAD
                  + (18 if self.truncated else 0))
        parts = [
            # JupyterLab (and a handout) shrink an SVG wider than the output to fit; at the
            # default width it is drawn at its own size in a notebook column 1000 px wide.
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' style='max-width:100%;height:auto' {_FONT} font-size='11'>",
            f"<rect x='0' y='0' width='{width}' height='{height}' fill='{_PAPER}' stroke='{_GRID}'/>",
            *_legend(kinds),
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
            drawn: list[str] = []
            boxes: dict[int, tuple[int, int, int]] = {}  # column -> x, y and width of its sticky
            for lane in lanes:
                drawn.extend(_lane(lane, top, width))
                for sticky in lane.stickies:
                    if sticky.column in xs:
                        box = (xs[sticky.column], top + (_LANE_H - _STICKY_H) // 2, _sticky_width(sticky))
                        boxes.setdefault(sticky.column, box)
                        drawn.append(_sticky(sticky, *box))
                top += _LANE_H
            # the row's links first: the stickies an arrow passes are drawn over it
            parts.extend(_link(link, boxes) for link in self.links
                         if link.source in boxes and link.target in boxes)
            parts.extend(drawn)
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


def _legend(kinds: Sequence[Kind]) -> Iterator[str]:
    x = _PAD
    for kind in kinds:
        swatch = _SWATCHES[kind]
        yield (f"<rect x='{x}' y='8' width='14' height='14' rx='2' fill='{swatch.fill}' "
               f"stroke='{swatch.stroke}'/><text x='{x + 20}' y='19' fill='{_INK}'>{kind}</text>")
        x += _LEGEND_STEP


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


def _lane(lane: Lane, top: int, width: int) -> Iterator[str]:
    """The guide lines and the name of one lane of one row (its stickies are drawn apart)."""
    middle = top + _LANE_H // 2
    kind = _cut(f"{lane.aggregate_type} (policy)", _LABEL_CHARS + 2) if lane.process else lane.aggregate_type
    yield f"<line x1='0' y1='{top}' x2='{width}' y2='{top}' stroke='{_GRID}'/>"
    yield (f"<line x1='{_LABEL_W - 8}' y1='{middle}' x2='{width - _PAD}' y2='{middle}' "
           f"stroke='{_GRID}' stroke-width='2'/>")
    yield (f"<text x='{_PAD}' y='{middle - 4}' fill='{_INK}' font-size='10'>"
           f"{escape(kind)}</text>"
           f"<text x='{_PAD}' y='{middle + 10}' fill='{_INK}' font-weight='bold'>"
           f"{escape(_cut(lane.aggregate_id, _LABEL_CHARS))}</text>")


def _sticky(sticky: Sticky, x: int, y: int, width: int) -> str:
    swatch = _SWATCHES[sticky.kind]
    text = "".join(
        f"<text x='{x + 6}' y='{y + 15 + 13 * i}' fill='{swatch.text}'>{escape(line)}</text>"
        for i, line in enumerate(_lines(sticky.label))
    )
    detail = (f"<text x='{x + 6}' y='{y + _STICKY_H - 7}' fill='{swatch.text}' font-size='10'>"
              f"{escape(_detail(sticky))}</text>") if sticky.detail else ""
    return (f"<g><title>{escape(sticky.tooltip or sticky.label)}</title>"
            f"<rect x='{x}' y='{y}' width='{width}' height='{_STICKY_H}' rx='3' "
            f"fill='{swatch.fill}' stroke='{swatch.stroke}'/>{text}{detail}</g>")


def _link(link: Link, boxes: dict[int, tuple[int, int, int]]) -> str:
    """An arrow from the right edge of one sticky to the left edge of a later one."""
    (x1, y1, w1), (x2, y2, _) = boxes[link.source], boxes[link.target]
    return arrow(x1 + w1, y1 + _STICKY_H // 2, x2, y2 + _STICKY_H // 2, POLICY.stroke, dashed=link.dashed)


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
    lanes: dict[tuple[bool, str, str], list[Sticky]] = {}  # (process?, type or process, id) -> stickies
    links: list[Link] = []
    events: dict[str, tuple[EventEnvelope, int]] = {}  # event id -> envelope, column
    policies: dict[tuple[str, ...], int] = {}  # what a policy answers -> its column
    column = 0
    previous_command: str | None = None
    for envelope in envelopes:
        lane = lanes.setdefault((False, envelope.aggregate_type, envelope.aggregate_id), [])
        metadata = envelope.metadata
        command_id = metadata.get("command_id")
        command_type = metadata.get("command_type")
        if command_type and (command_id is None or command_id != previous_command):
            if metadata.get("process"):
                key = tuple(metadata.get(k, "") for k in _POLICY_KEYS)
                if key not in policies:
                    policies[key] = column
                    cause = events.get(metadata.get("causation_id", ""))
                    lanes.setdefault((True, metadata["process"], metadata.get("process_id", "")), []).append(
                        _policy(metadata, cause, column)
                    )
                    if cause is not None:
                        links.append(Link(cause[1], column, dashed=bool(metadata.get("deadline"))))
                    column += 1
                links.append(Link(policies[key], column))
            tooltip = f"{command_type} (command {command_id})"
            lane.append(Sticky("command", command_type, column, tooltip=tooltip))
            column += 1
        previous_command = command_id
        events[envelope.event_id] = (envelope, column)
        lane.append(
            Sticky(
                "event",
                envelope.event_type,
                column,
                detail=_mark(envelope),
                tooltip=f"{envelope.event_type}({fields_text(envelope.payload)})",
            )
        )
        column += 1
    names = _view_names(source, views)
    if lanes and names:
        for (process, _, _), lane_stickies in lanes.items():
            if not process:
                lane_stickies.extend(
                    Sticky("view", name, column + i, tooltip=f"view {name}") for i, name in enumerate(names)
                )
        column += len(names)
    drawn = tuple(Lane(t, i, tuple(s), process) for (process, t, i), s in lanes.items())
    return Timeline(drawn, column, truncated, width, tuple(links))


_POLICY_KEYS = ("process", "process_id", "causation_id", "deadline", "rejected_command")
"""The metadata that tells the policies of a process apart: one sticky per instance and cause."""


def _mark(envelope: EventEnvelope) -> str:
    """Where an event is: ``#sequence @position`` (no position before it is stored)."""
    return f"#{envelope.sequence}" + (f" @{envelope.position}" if envelope.position else "")


def _policy(metadata: Mapping[str, str], cause: tuple[EventEnvelope, int] | None, column: int) -> Sticky:
    """The policy sticky before the first command a process instance sent in answer to one cause:
    an event, a deadline set on an event, or the rejection of a command it sent."""
    process, pid = metadata["process"], metadata.get("process_id", "")
    deadline, rejected = metadata.get("deadline"), metadata.get("rejected_command")
    if cause is None:
        on, at, event = process, "", f"event {metadata.get('causation_id')} (not in this timeline)"
    else:
        envelope, mark = cause[0], _mark(cause[0])
        on, at = f"on {envelope.event_type}", mark.split()[-1]
        event = f"{envelope.event_type} of {envelope.aggregate_type}/{envelope.aggregate_id} {mark}"
    detail = f"from {at}" if at else ""
    if rejected:
        label, why = f"on {rejected} rejected", f"{rejected} rejected, sent on {event}"
    elif deadline:
        label, detail, why = deadline, f"deadline {at}".strip(), f"deadline {deadline!r} set on {event}"
    else:
        label, why = on, event
    return Sticky("policy", label, column, detail=detail, tooltip=f"policy {process} {pid}: {why}")
