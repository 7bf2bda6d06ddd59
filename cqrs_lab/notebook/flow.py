"""A Mermaid flow diagram of a framework: commands → aggregate → events → queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    """Who talks to whom; ``mermaid`` is the diagram source, shown by Jupyter as Markdown."""

    aggregate: str
    commands: tuple[str, ...]
    events: tuple[str, ...]
    queries: tuple[str, ...]
    produces: tuple[tuple[str, str], ...] = ()
    """(command, event) pairs seen in the store: which command produced which event."""

    @property
    def mermaid(self) -> str:
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

    def _repr_markdown_(self) -> str:
        return f"```mermaid\n{self.mermaid}\n```"

    def __repr__(self) -> str:
        return (
            f"FlowDiagram({self.aggregate}: {len(self.commands)} command(s), "
            f"{len(self.events)} event(s), {len(self.queries)} query(ies))"
        )


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
