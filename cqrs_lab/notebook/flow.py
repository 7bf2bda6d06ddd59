"""A flow diagram of a framework: commands → aggregate → events → queries.

It is drawn as inline SVG by cqrs_lab itself, so it shows wherever HTML does:
JupyterLab, a handout opened offline, GitHub. ``FlowDiagram.mermaid`` gives
the same diagram as Mermaid source, for documents that render Mermaid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from cqrs_lab._render import AGGREGATE, COMMAND, EVENT, VIEW, Swatch
from cqrs_lab.domain import Command, Event, Query
from cqrs_lab.framework import CqrsFramework, QueryProcessor
from cqrs_lab.notebook.frames import events_frame

__all__ = ["FlowDiagram", "flow_diagram", "framework_queries"]


def _style(swatch: Swatch) -> str:
    return f"fill:{swatch.fill},stroke:{swatch.stroke},color:{swatch.text}"


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


@dataclass(frozen=True)
class FlowDiagram:
    """Who talks to whom; shown by Jupyter as SVG (``svg()``); ``mermaid`` is the same as Mermaid source."""

    aggregate: str
    commands: tuple[str, ...]
    events: tuple[str, ...]
    queries: tuple[str, ...]
    produces: tuple[tuple[str, str], ...] = ()
    """(command, event) pairs seen in the store: which command produced which event."""

    @property
    def mermaid(self) -> str:
        """The diagram as Mermaid flowchart source (for Markdown documents that render Mermaid)."""
        lines = ["flowchart LR"]
        groups = (("commands", "Commands", "C", self.commands), ("events", "Events", "E", self.events),
                  ("queries", "Queries", "Q", self.queries))
        for group, title, prefix, names in groups:
            if names:
                lines.append(f'    subgraph {group} ["{title}"]')
                lines.extend(f'        {prefix}{i}["{_label(n)}"]' for i, n in enumerate(names))
                lines.append("    end")
        lines.append(f'    A["{_label(self.aggregate)}"]')
        lines.extend(f"    C{i} --> A" for i in range(len(self.commands)))
        lines.extend(f"    A --> E{i}" for i in range(len(self.events)))
        if self.events:
            lines.extend(f"    events --> Q{i}" for i in range(len(self.queries)))
        else:
            lines.extend(f"    A -.-> Q{i}" for i in range(len(self.queries)))
        classes = (("command", COMMAND, "C", self.commands), ("event", EVENT, "E", self.events),
                   ("query", VIEW, "Q", self.queries))
        lines.append(f"    classDef aggregate {_style(AGGREGATE)}")
        lines.append("    class A aggregate")
        for name, swatch, prefix, names in classes:
            if names:
                lines.append(f"    classDef {name} {_style(swatch)}")
                lines.append(f"    class {','.join(f'{prefix}{i}' for i in range(len(names)))} {name}")
        return "\n".join(lines)

    def svg(self) -> str:
        """The diagram as a standalone ``<svg>`` element: four columns, arrows left to right."""
        columns = [
            ("Commands", COMMAND, list(self.commands)),
            ("", AGGREGATE, [self.aggregate]),
            ("Events", EVENT, list(self.events)),
            ("Queries", VIEW, list(self.queries)),
        ]
        widths = [max([_box_width(n) for n in names] or [0]) for _, _, names in columns]
        tallest = max(len(names) for _, _, names in columns)
        height = _TOP + tallest * (_BOX_H + _BOX_GAP) + _PAD
        xs, x = [], _PAD
        for width in widths:
            xs.append(x)
            x += width + (_ARROW_W if width else 0)
        width = x - _ARROW_W + _PAD
        boxes: list[list[tuple[int, int]]] = []  # (x, y) of each box, column by column
        parts = [
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' style='max-width:100%;height:auto' {_FONT} font-size='12'>",
            f"<rect x='0' y='0' width='{width}' height='{height}' fill='{_PAPER}' stroke='{_GRID}'/>",
        ]
        for (title, swatch, names), left, box_w in zip(columns, xs, widths, strict=True):
            top = _TOP + (tallest - len(names)) * (_BOX_H + _BOX_GAP) // 2
            places = [(left, top + i * (_BOX_H + _BOX_GAP)) for i in range(len(names))]
            boxes.append(places)
            if title and names:
                group_h = len(names) * (_BOX_H + _BOX_GAP) - _BOX_GAP
                parts.append(
                    f"<rect x='{left - 6}' y='{top - 6}' width='{box_w + 12}' height='{group_h + 12}' "
                    f"rx='4' fill='none' stroke='{_GRID}' stroke-dasharray='4 3'/>"
                    f"<text x='{left - 6}' y='{top - 11}' fill='{_INK}' font-size='11'>{title}</text>"
                )
            for name, (bx, by) in zip(names, places, strict=True):
                parts.append(
                    f"<g><title>{escape(self._tooltip(title, name))}</title>"
                    f"<rect x='{bx}' y='{by}' width='{box_w}' height='{_BOX_H}' rx='3' "
                    f"fill='{swatch.fill}' stroke='{swatch.stroke}'/>"
                    f"<text x='{bx + 8}' y='{by + _BOX_H // 2 + 4}' fill='{swatch.text}'>"
                    f"{escape(name)}</text></g>"
                )
        commands, (aggregate,), events, queries = boxes
        ax, ay = aggregate
        parts.extend(_arrow(cx + widths[0], cy + _BOX_H // 2, ax, ay + _BOX_H // 2) for cx, cy in commands)
        parts.extend(_arrow(ax + widths[1], ay + _BOX_H // 2, ex, ey + _BOX_H // 2) for ex, ey in events)
        if events:
            group_right = events[0][0] + widths[2] + 6
            group_middle = (events[0][1] + events[-1][1] + _BOX_H) // 2
            parts.extend(_arrow(group_right, group_middle, qx, qy + _BOX_H // 2) for qx, qy in queries)
        else:
            parts.extend(_arrow(ax + widths[1], ay + _BOX_H // 2, qx, qy + _BOX_H // 2, dashed=True)
                         for qx, qy in queries)
        parts.append("</svg>")
        return "".join(parts)

    def _tooltip(self, column: str, name: str) -> str:
        if column == "Events":
            made_by = [command for command, event in self.produces if event == name]
            return f"{name}, produced by {', '.join(made_by)}" if made_by else name
        if column == "Commands":
            makes = [event for command, event in self.produces if command == name]
            return f"{name}, produces {', '.join(makes)}" if makes else name
        return name

    def _repr_html_(self) -> str:
        return f"<div class='cqrs-lab-flow'>{self.svg()}</div>"

    def __repr__(self) -> str:
        return (
            f"FlowDiagram({self.aggregate}: {len(self.commands)} command(s), "
            f"{len(self.events)} event(s), {len(self.queries)} query(ies))"
        )


_FONT = "font-family='ui-monospace,SFMono-Regular,Menlo,Consolas,monospace'"
_INK, _GRID, _PAPER = "#263238", "#90a4ae", "#ffffff"
_BOX_H, _BOX_GAP, _ARROW_W, _PAD, _TOP = 28, 12, 56, 12, 34
_CHAR_W = 7.3  # the advance of one character at font-size 12 in a monospace font


def _box_width(name: str) -> int:
    return round(len(name) * _CHAR_W) + 16


def _arrow(x1: int, y1: int, x2: int, y2: int, *, dashed: bool = False) -> str:
    """A line from (x1, y1) to (x2, y2) with a head at the end (a polygon: no ids, no markers)."""
    dash = " stroke-dasharray='5 4'" if dashed else ""
    length = max(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5, 1)
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    bx, by = x2 - 8 * ux, y2 - 8 * uy
    head = f"{x2},{y2} {bx - 4 * uy:.1f},{by + 4 * ux:.1f} {bx + 4 * uy:.1f},{by - 4 * ux:.1f}"
    return (f"<line x1='{x1}' y1='{y1}' x2='{bx:.1f}' y2='{by:.1f}' stroke='{_INK}' "
            f"stroke-width='1.2'{dash}/>"
            f"<polygon points='{head}' fill='{_INK}'/>")


def framework_queries(framework: CqrsFramework[Any]) -> list[str]:
    """The query types a framework's ``QueryProcessor`` dispatchers keep."""
    return [d.query_cls.query_type for d in framework.dispatchers if isinstance(d, QueryProcessor)]


def _names(items: Sequence[str | type[Any]] | None, attribute: str) -> list[str]:
    return [i if isinstance(i, str) else getattr(i, attribute, i.__name__) for i in items or ()]


def _merge(first: list[str], more: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *more]))


def flow_diagram(
    framework: CqrsFramework[Any],
    *,
    commands: Sequence[str | type[Command]] | None = None,
    events: Sequence[str | type[Event]] | None = None,
    queries: Sequence[str | type[Query]] | None = None,
) -> FlowDiagram:
    """The flow of ``framework``'s aggregate type.

    Commands and events are not declared by an aggregate, so they are found in
    the store (event types, and the ``command_type`` metadata ``CqrsFramework``
    records) and added to the ones passed explicitly (listed first, in the
    order given). Queries are those passed plus the framework's
    ``QueryProcessor`` dispatchers.
    """
    log = events_frame(framework)
    seen_events = log["event_type"].drop_duplicates().tolist()
    produces: list[tuple[str, str]] = []
    if "metadata.command_type" in log.columns:
        pairs = log[["metadata.command_type", "event_type"]].dropna().drop_duplicates()
        produces = list(pairs.itertuples(index=False, name=None))
    seen_commands = [command for command, _ in produces]
    return FlowDiagram(
        aggregate=framework.aggregate_type,
        commands=_merge(_names(commands, "__name__"), seen_commands),
        events=_merge(_names(events, "event_type"), seen_events),
        queries=_merge(_names(queries, "query_type"), framework_queries(framework)),
        produces=tuple(dict.fromkeys(produces)),
    )
