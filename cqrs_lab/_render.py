"""Plain-HTML renderings for ``_repr_html_`` of core objects (stdlib only).

The notebook kit (``cqrs_lab.notebook``) builds richer views on these helpers;
they keep core objects readable in Jupyter without importing it. Every colour
that fills a box comes with an explicit text colour, so the output reads the
same in light and dark themes, and nothing random or time-dependent is
rendered, so notebook outputs compare byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pydantic import BaseModel

    from cqrs_lab.envelope import EventEnvelope
    from cqrs_lab.testing import SpecResult


class Swatch(NamedTuple):
    """A fill with its border and a text colour that contrasts with it."""

    fill: str
    stroke: str
    text: str


# The EventStorming legend: commands blue, events orange, views green,
# aggregates yellow, policies (process managers) lilac; rejections red.
COMMAND = Swatch("#a8d1f0", "#1f5f8b", "#0b2239")
EVENT = Swatch("#ffb46b", "#b35c00", "#2b1400")
POLICY = Swatch("#dcc6ef", "#6a3d9a", "#240b3a")
VIEW = Swatch("#a9dfae", "#2e7d32", "#0b2b0e")
AGGREGATE = Swatch("#fff3a3", "#a08900", "#2b2500")
REJECTED = Swatch("#f6b3b3", "#c62828", "#3b0000")
PASSED = Swatch("#2e7d32", "#2e7d32", "#ffffff")
FAILED = Swatch("#c62828", "#c62828", "#ffffff")
CHANGED = Swatch("#fff3a3", "#a08900", "#2b2500")
NEUTRAL = Swatch("#eceff1", "#90a4ae", "#263238")
"""A count that says nothing good or bad (``0 failed``, ``0 passed``)."""


def badge(text: str, swatch: Swatch) -> str:
    """A small filled label."""
    return (
        f"<span style='background:{swatch.fill};color:{swatch.text};border:1px solid {swatch.stroke};"
        f"border-radius:3px;padding:0 6px;font-size:0.9em'>{escape(text)}</span>"
    )


def sticky(text: str, swatch: Swatch, detail: str = "") -> str:
    """An EventStorming sticky note as an inline block (``detail`` in a smaller line)."""
    small = f"<div style='font-size:0.8em'>{escape(detail)}</div>" if detail else ""
    return (
        f"<div style='display:inline-block;vertical-align:top;margin:2px;padding:4px 8px;"
        f"background:{swatch.fill};color:{swatch.text};border:1px solid {swatch.stroke};"
        f"border-radius:3px;font-family:monospace'>{escape(text)}{small}</div>"
    )


def arrow(x1: float, y1: float, x2: float, y2: float, colour: str, *, dashed: bool = False) -> str:
    """An SVG line from (x1, y1) to (x2, y2) with a head at the end (a polygon: no ids, no markers)."""
    dash = " stroke-dasharray='5 4'" if dashed else ""
    length = max(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5, 1)
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    bx, by = x2 - 8 * ux, y2 - 8 * uy
    head = f"{x2},{y2} {bx - 4 * uy:.1f},{by + 4 * ux:.1f} {bx + 4 * uy:.1f},{by - 4 * ux:.1f}"
    return (f"<line x1='{x1}' y1='{y1}' x2='{bx:.1f}' y2='{by:.1f}' stroke='{colour}' "
            f"stroke-width='1.2'{dash}/>"
            f"<polygon points='{head}' fill='{colour}'/>")


def table(rows: Iterable[tuple[str, Any]]) -> str:
    """A two-column (name, value) table."""
    cells = "".join(
        f"<tr><th style='text-align:left'>{escape(k)}</th>"
        f"<td style='text-align:left'>{escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<table>{cells}</table>"


def grid(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table with a header row; cells are HTML already (escape text before)."""
    head = "".join(f"<th style='text-align:left'>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{c}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fields_text(model: BaseModel) -> str:
    """A model's fields on one line: ``amount=10.00, balance=10.00``."""
    return ", ".join(f"{k}={v}" for k, v in model.model_dump(mode="json").items())


def model_html(model: BaseModel, title: str) -> str:
    """A pydantic model (aggregate, query) as a titled field table, values in JSON form."""
    fields = model.model_dump(mode="json")
    return f"<div><b>{escape(title)}</b>{table(fields.items())}</div>"


def counts_html(title: str, counts: Mapping[str, int], per_type: Mapping[str, int], noun: str) -> str:
    """A store summary: its kind, a few counts, then ``noun`` per type (e.g. streams per aggregate type)."""
    rows = [*counts.items(), *((f"{kind} {noun}", n) for kind, n in sorted(per_type.items()))]
    return f"<div><b>{escape(title)}</b>{table(rows)}</div>"


def envelope_html(envelope: EventEnvelope) -> str:
    fields = envelope.payload.model_dump(mode="json")
    rows: list[tuple[str, Any]] = [
        ("event", f"{envelope.event_type} v{envelope.event_version}"),
        ("stream", f"{envelope.aggregate_type}/{envelope.aggregate_id} #{envelope.sequence}"),
        ("position", envelope.position),
        ("recorded_at", envelope.recorded_at.isoformat()),
        *fields.items(),
    ]
    return table(rows)


# -- spec cards -----------------------------------------------------------------
def _items(result: SpecResult, value: Any) -> list[str]:
    """What one side of a spec's comparison shows, one line per item."""
    from cqrs_lab.errors import UserError

    if isinstance(value, UserError):
        return [f"rejected: {value!r}"]
    if result.expectation == "query" and hasattr(value, "model_dump"):
        return [f"{k}={v!r}" for k, v in value.model_dump(mode="json").items()]
    if isinstance(value, dict):
        return [f"UserError({value.get('message')!r}, code={value.get('code')!r})"]
    if isinstance(value, list):
        return [repr(v) for v in value]
    return [repr(value)]


def diff_html(expected: Sequence[str], actual: Sequence[str]) -> str:
    """Expected and actual side by side; rows that differ are marked."""
    rows = []
    for i in range(max(len(expected), len(actual))):
        lhs = expected[i] if i < len(expected) else ""
        rhs = actual[i] if i < len(actual) else ""
        style = f"background:{REJECTED.fill};color:{REJECTED.text}" if lhs != rhs else ""
        mark = "&#x2260;" if lhs != rhs else ""
        rows.append(
            f"<tr style='{style}'><td>{mark}</td>"
            f"<td style='text-align:left'><code>{escape(lhs or '—')}</code></td>"
            f"<td style='text-align:left'><code>{escape(rhs or '—')}</code></td></tr>"
        )
    return (
        "<table class='cqrs-lab-diff'><thead><tr><th></th><th style='text-align:left'>expected</th>"
        f"<th style='text-align:left'>actual</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def spec_html(result: SpecResult) -> str:
    """A given / when / then card; a failed spec shows expected and actual side by side."""
    swatch = PASSED if result.passed else FAILED
    given = "".join(f"<li><code>{escape(repr(g))}</code></li>" for g in result.given)
    when_items = result.when if isinstance(result.when, list) else [result.when]
    when = "".join(f"<li><code>{escape(repr(w))}</code></li>" for w in when_items)
    expected = _items(result, result.expected)
    then = "".join(f"<li><code>{escape(e)}</code></li>" for e in expected)
    failure = ""
    if not result.passed:
        summary = result.message.splitlines()[0] if result.message else "failed"
        failure = (
            f"<div style='margin-top:4px'><b>{escape(summary)}</b>"
            f"{diff_html(expected, _items(result, result.actual))}</div>"
        )
    return (
        f"<div class='cqrs-lab-spec' style='border:1px solid {swatch.stroke};border-left:6px solid "
        f"{swatch.stroke};border-radius:3px;padding:4px 8px;margin:4px 0'>"
        f"<div><b>{escape(result.title)}</b> {badge('passed' if result.passed else 'failed', swatch)}</div>"
        f"<div><b>given</b><ul style='margin:0'>{given or '<li>no previous events</li>'}</ul></div>"
        f"<div><b>when</b><ul style='margin:0'>{when or '<li>nothing</li>'}</ul></div>"
        f"<div><b>then</b> <i>{escape(result.expectation.replace('_', ' '))}</i>"
        f"<ul style='margin:0'>{then or '<li>nothing</li>'}</ul></div>{failure}</div>"
    )
