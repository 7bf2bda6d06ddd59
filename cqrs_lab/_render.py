"""Plain-HTML renderings for ``_repr_html_`` of core objects (stdlib only).

The notebook kit (``cqrs_lab.notebook``) builds richer views; these keep core
objects readable in Jupyter without importing it.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cqrs_lab.envelope import EventEnvelope
    from cqrs_lab.testing import SpecResult


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(
        f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>{escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<table>{cells}</table>"


def envelope_html(envelope: EventEnvelope) -> str:
    fields = envelope.payload.model_dump(mode="json")
    rows: list[tuple[str, Any]] = [
        ("event", f"{envelope.event_type} v{envelope.event_version}"),
        ("stream", f"{envelope.aggregate_type}/{envelope.aggregate_id} #{envelope.sequence}"),
        ("position", envelope.position),
        ("recorded_at", envelope.recorded_at.isoformat()),
        *fields.items(),
    ]
    return _table(rows)


def spec_html(result: SpecResult) -> str:
    status = "passed" if result.passed else "failed"
    colour = "#2e7d32" if result.passed else "#c62828"
    given = "".join(f"<li><code>{escape(repr(g))}</code></li>" for g in result.given) or "<li>nothing</li>"
    expected = result.expected if isinstance(result.expected, list) else [result.expected]
    then = "".join(f"<li><code>{escape(repr(e))}</code></li>" for e in expected)
    diff = f"<pre>{escape(result.message)}</pre>" if result.message else ""
    return (
        f"<div class='cqrs-lab-spec' style='border-left:4px solid {colour};padding:4px 8px'>"
        f"<b>{escape(result.title)}</b> — <span style='color:{colour}'>{status}</span>"
        f"<div><b>given</b><ul>{given}</ul></div>"
        f"<div><b>when</b> <code>{escape(repr(result.when))}</code></div>"
        f"<div><b>then</b> ({escape(result.expectation)})<ul>{then}</ul></div>{diff}</div>"
    )
