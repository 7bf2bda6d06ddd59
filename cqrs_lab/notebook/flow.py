"""A flow diagram of a framework: commands → aggregate → events → queries.

It is drawn as inline SVG by cqrs_lab itself, so it shows wherever HTML does:
JupyterLab, a handout opened offline, GitHub. ``FlowDiagram.mermaid`` gives
the same diagram as Mermaid source, for documents that render Mermaid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import pandas as pd

from cqrs_lab._render import AGGREGATE, COMMAND, EVENT, POLICY, VIEW, Swatch, arrow
from cqrs_lab.domain import Command, Event, Query
from cqrs_lab.framework import CqrsFramework, QueryProcessor
from cqrs_lab.notebook.frames import events_frame

__all__ = ["FlowDiagram", "flow_diagram", "framework_queries", "policy_name"]


def _style(swatch: Swatch) -> str:
    return f"fill:{swatch.fill},stroke:{swatch.stroke},color:{swatch.text}"


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


@dataclass(frozen=True)
class FlowDiagram:
    """Who talks to whom; shown by Jupyter as SVG (``svg()``); ``mermaid`` is the same as Mermaid source.

    Policies (process managers, lilac) stand on both sides: those that send
    commands to the aggregate before the commands, those that react to its
    events after the events (beside the queries). A policy is named after its
    process and what it answers: ``Checkout on PaymentReceived`` (an event),
    ``Checkout at payment-timeout`` (a deadline), ``Checkout on ConfirmOrder
    rejected`` (a command the domain rejected).
    """

    aggregate: str
    commands: tuple[str, ...]
    events: tuple[str, ...]
    queries: tuple[str, ...]
    produces: tuple[tuple[str, str], ...] = ()
    """(command, event) pairs seen in the store: which command produced which event."""
    policies: tuple[str, ...] = ()
    """The policies that sent commands to this aggregate."""
    sends: tuple[tuple[str, str], ...] = ()
    """(policy, command) pairs: which policy sent which command to this aggregate."""
    reactions: tuple[str, ...] = ()
    """The policies that sent commands (to any aggregate) in answer to this aggregate's events."""
    triggers: tuple[tuple[str, str], ...] = ()
    """(event, policy) pairs: which of this aggregate's events made which policy send a command."""

    @property
    def mermaid(self) -> str:
        """The diagram as Mermaid flowchart source (for Markdown documents that render Mermaid)."""
        lines = ["flowchart LR"]
        groups = (("senders", "Policies", "P", self.policies), ("commands", "Commands", "C", self.commands),
                  ("events", "Events", "E", self.events), ("queries", "Queries", "Q", self.queries),
                  ("reactions", "Policies", "R", self.reactions))
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
        lines.extend(f"    P{self.policies.index(p)} --> C{self.commands.index(c)}" for p, c in self.sends)
        lines.extend(f"    E{self.events.index(e)} --> R{self.reactions.index(p)}" for e, p in self.triggers)
        classes = (("command", COMMAND, "C", self.commands), ("event", EVENT, "E", self.events),
                   ("query", VIEW, "Q", self.queries),
                   ("policy", POLICY, "P", self.policies), ("reaction", POLICY, "R", self.reactions))
        lines.append(f"    classDef aggregate {_style(AGGREGATE)}")
        lines.append("    class A aggregate")
        for name, swatch, prefix, names in classes:
            if names:
                lines.append(f"    classDef {name} {_style(swatch)}")
                lines.append(f"    class {','.join(f'{prefix}{i}' for i in range(len(names)))} {name}")
        return "\n".join(lines)

    def svg(self) -> str:
        """The diagram as a standalone ``<svg>`` element: columns of boxes, arrows left to right.

        The columns: policies that send commands here, commands, the aggregate,
        events, then queries with the policies that react to the events below them.
        """
        columns: list[list[_Group]] = [
            [_Group("senders", "Policies", POLICY, self.policies)],
            [_Group("commands", "Commands", COMMAND, self.commands)],
            [_Group("aggregate", "", AGGREGATE, (self.aggregate,))],
            [_Group("events", "Events", EVENT, self.events)],
            [_Group("queries", "Queries", VIEW, self.queries),
             _Group("reactions", "Policies", POLICY, self.reactions)],
        ]
        widths = [max([_box_width(n) for g in groups for n in g.names] or [0]) for groups in columns]
        slots = [_slots(groups) for groups in columns]
        tallest = max(slots)
        height = _TOP + tallest * (_BOX_H + _BOX_GAP) + _PAD
        xs, x = [], _PAD
        for width in widths:
            xs.append(x)
            x += width + (_ARROW_W if width else 0)
        width = x - _ARROW_W + _PAD
        boxes: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (column, group) -> (x, y) of its boxes
        parts = [
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' style='max-width:100%;height:auto' {_FONT} font-size='12'>",
            f"<rect x='0' y='0' width='{width}' height='{height}' fill='{_PAPER}' stroke='{_GRID}'/>",
        ]
        for column, (groups, left, box_w, used) in enumerate(zip(columns, xs, widths, slots, strict=True)):
            top = _TOP + (tallest - used) * (_BOX_H + _BOX_GAP) // 2
            for number, group in enumerate(groups):
                places = [(left, top + i * (_BOX_H + _BOX_GAP)) for i in range(len(group.names))]
                boxes[(column, number)] = places
                if group.names:
                    parts.append(self._group(group, places, box_w))
                    top += (len(group.names) + 1) * (_BOX_H + _BOX_GAP)
        (policies,), (commands,), (aggregate,), (events,), (queries, reactions) = (
            [boxes[(c, g)] for g in range(len(groups))] for c, groups in enumerate(columns)
        )
        ax, ay = aggregate[0]
        parts.extend(_arrow(cx + widths[1], cy + _BOX_H // 2, ax, ay + _BOX_H // 2) for cx, cy in commands)
        parts.extend(_arrow(ax + widths[2], ay + _BOX_H // 2, ex, ey + _BOX_H // 2) for ex, ey in events)
        if events:
            group_right = events[0][0] + widths[3] + 6
            group_middle = (events[0][1] + events[-1][1] + _BOX_H) // 2
            parts.extend(_arrow(group_right, group_middle, qx, qy + _BOX_H // 2) for qx, qy in queries)
        else:
            parts.extend(_arrow(ax + widths[2], ay + _BOX_H // 2, qx, qy + _BOX_H // 2, dashed=True)
                         for qx, qy in queries)
        for policy, command in self.sends:
            (px, py), (cx, cy) = policies[self.policies.index(policy)], commands[self.commands.index(command)]
            parts.append(_arrow(px + widths[0], py + _BOX_H // 2, cx, cy + _BOX_H // 2, POLICY.stroke))
        for event, policy in self.triggers:
            (ex, ey), (rx, ry) = events[self.events.index(event)], reactions[self.reactions.index(policy)]
            parts.append(_arrow(ex + widths[3], ey + _BOX_H // 2, rx, ry + _BOX_H // 2, POLICY.stroke))
        parts.append("</svg>")
        return "".join(parts)

    def _group(self, group: _Group, places: list[tuple[int, int]], box_w: int) -> str:
        """A titled, dashed frame around a group's boxes, and the boxes (one when untitled: the aggregate)."""
        parts = []
        if group.title:
            left, top = places[0]
            group_h = len(places) * (_BOX_H + _BOX_GAP) - _BOX_GAP
            parts.append(
                f"<rect x='{left - 6}' y='{top - 6}' width='{box_w + 12}' height='{group_h + 12}' "
                f"rx='4' fill='none' stroke='{_GRID}' stroke-dasharray='4 3'/>"
                f"<text x='{left - 6}' y='{top - 11}' fill='{_INK}' font-size='11'>{group.title}</text>"
            )
        swatch = group.swatch
        for name, (bx, by) in zip(group.names, places, strict=True):
            parts.append(
                f"<g><title>{escape(self._tooltip(group, name))}</title>"
                f"<rect x='{bx}' y='{by}' width='{box_w}' height='{_BOX_H}' rx='3' "
                f"fill='{swatch.fill}' stroke='{swatch.stroke}'/>"
                f"<text x='{bx + 8}' y='{by + _BOX_H // 2 + 4}' fill='{swatch.text}'>"
                f"{escape(name)}</text></g>"
            )
        return "".join(parts)

    def _tooltip(self, group: _Group, name: str) -> str:
        if group.role == "events":
            made_by = [command for command, event in self.produces if event == name]
            tip = f"{name}, produced by {', '.join(made_by)}" if made_by else name
            answered = [policy for event, policy in self.triggers if event == name]
            return f"{tip}; answered by {', '.join(answered)}" if answered else tip
        if group.role == "commands":
            makes = [event for command, event in self.produces if command == name]
            tip = f"{name}, produces {', '.join(makes)}" if makes else name
            senders = [policy for policy, command in self.sends if command == name]
            return f"{tip}; sent by {', '.join(senders)}" if senders else tip
        if group.role == "senders":
            sent = [command for policy, command in self.sends if policy == name]
            return f"policy {name}: sends {', '.join(sent)} to {self.aggregate}"
        if group.role == "reactions":
            events = [event for event, policy in self.triggers if policy == name]
            return f"policy {name}: answers {', '.join(events)} of {self.aggregate}"
        return name

    def _repr_html_(self) -> str:
        return f"<div class='cqrs-lab-flow'>{self.svg()}</div>"

    def __repr__(self) -> str:
        policies = len(dict.fromkeys([*self.policies, *self.reactions]))
        return (
            f"FlowDiagram({self.aggregate}: {len(self.commands)} command(s), "
            f"{len(self.events)} event(s), {len(self.queries)} query(ies)"
            + (f", {policies} policy(ies))" if policies else ")")
        )


@dataclass(frozen=True)
class _Group:
    """Boxes of one kind in a column, under a title."""

    role: str
    title: str
    swatch: Swatch
    names: tuple[str, ...]


def _slots(groups: list[_Group]) -> int:
    """How many box heights a column's groups take: their boxes, one free slot between two groups."""
    filled = [len(g.names) for g in groups if g.names]
    return sum(filled) + max(len(filled) - 1, 0)


_FONT = "font-family='ui-monospace,SFMono-Regular,Menlo,Consolas,monospace'"
_INK, _GRID, _PAPER = "#263238", "#90a4ae", "#ffffff"
_BOX_H, _BOX_GAP, _ARROW_W, _PAD, _TOP = 28, 12, 56, 12, 34
_CHAR_W = 7.3  # the advance of one character at font-size 12 in a monospace font


def _box_width(name: str) -> int:
    return round(len(name) * _CHAR_W) + 16


def _arrow(x1: int, y1: int, x2: int, y2: int, colour: str = _INK, *, dashed: bool = False) -> str:
    return arrow(x1, y1, x2, y2, colour, dashed=dashed)


def framework_queries(framework: CqrsFramework[Any]) -> list[str]:
    """The query types a framework's ``QueryProcessor`` dispatchers keep."""
    return [d.query_cls.query_type for d in framework.dispatchers if isinstance(d, QueryProcessor)]


def _names(items: Sequence[str | type[Any]] | None, attribute: str) -> list[str]:
    return [i if isinstance(i, str) else getattr(i, attribute, i.__name__) for i in items or ()]


def _merge(first: list[str], more: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *more]))


def policy_name(metadata: Mapping[str, str], cause_type: str | None = None) -> str:
    """The policy that sent a command, from the command's metadata (``process``,
    ``rejected_command``, ``deadline``) and the type of the event that caused it:
    ``Checkout on ConfirmOrder rejected``, ``Checkout at payment-timeout``,
    ``Checkout on OrderPlaced``."""
    process = metadata["process"]
    if metadata.get("rejected_command"):
        return f"{process} on {metadata['rejected_command']} rejected"
    if metadata.get("deadline"):
        return f"{process} at {metadata['deadline']}"
    return f"{process} on {cause_type}" if cause_type else process


def _policies(log: pd.DataFrame, aggregate_type: str) -> tuple[list[str], list[tuple[str, str]],
                                                                list[str], list[tuple[str, str]]]:
    """From the whole log: the policies that sent commands to ``aggregate_type`` (and which),
    and those that sent commands in answer to its events (and to which)."""
    if "metadata.process" not in log.columns:
        return [], [], [], []
    types = dict(zip(log["event_id"], log["event_type"], strict=True))
    own = set(log.loc[log["aggregate_type"] == aggregate_type, "event_id"])
    keys = [c for c in log.columns if c.startswith("metadata.")]
    policies: dict[str, None] = {}
    sends: dict[tuple[str, str], None] = {}
    reactions: dict[str, None] = {}
    triggers: dict[tuple[str, str], None] = {}
    for row in log[log["metadata.process"].notna()][["aggregate_type", *keys]].to_dict("records"):
        metadata = {str(k).removeprefix("metadata."): v for k, v in row.items() if isinstance(v, str)}
        cause = metadata.get("causation_id", "")
        name = policy_name(metadata, types.get(cause))
        if row["aggregate_type"] == aggregate_type and "command_type" in metadata:
            policies[name] = None
            sends[(name, metadata["command_type"])] = None
        if cause in own:
            reactions[name] = None
            triggers[(types[cause], name)] = None
    return list(policies), list(sends), list(reactions), list(triggers)


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
    ``QueryProcessor`` dispatchers. Policies come from the metadata process
    runners give the commands they send (``process``, ``causation_id``,
    ``deadline``, ``rejected_command``), anywhere in the store: those that sent
    commands to this aggregate, and those that answered its events.
    """
    log = events_frame(framework.event_store, payloads=False)
    own = log[log["aggregate_type"] == framework.aggregate_type]
    seen_events = own["event_type"].drop_duplicates().tolist()
    produces: list[tuple[str, str]] = []
    if "metadata.command_type" in own.columns:
        pairs = own[["metadata.command_type", "event_type"]].dropna().drop_duplicates()
        produces = list(pairs.itertuples(index=False, name=None))
    seen_commands = [command for command, _ in produces]
    policies, sends, reactions, triggers = _policies(log, framework.aggregate_type)
    return FlowDiagram(
        aggregate=framework.aggregate_type,
        commands=_merge(_names(commands, "__name__"), seen_commands),
        events=_merge(_names(events, "event_type"), seen_events),
        queries=_merge(_names(queries, "query_type"), framework_queries(framework)),
        produces=tuple(dict.fromkeys(produces)),
        policies=tuple(policies),
        sends=tuple(sends),
        reactions=tuple(reactions),
        triggers=tuple(triggers),
    )
