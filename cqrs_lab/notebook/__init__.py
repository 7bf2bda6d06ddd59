"""The notebook kit: event logs as DataFrames, state history, a command stepper and a
process stepper, inline specs, timelines, flow diagrams and deterministic charts.

Everything here renders deterministically (no random ids, no wall-clock
times), so notebooks that use it can be checked by nbval. It loads pandas,
pyarrow and ipywidgets; ``import cqrs_lab`` alone loads none of them.
"""

from __future__ import annotations

from cqrs_lab.notebook.charts import svg_charts
from cqrs_lab.notebook.flow import FlowDiagram, flow_diagram
from cqrs_lab.notebook.frames import ENVELOPE_COLUMNS, EventSource, events_frame, events_polars, events_table
from cqrs_lab.notebook.handout import handout_html, write_handout
from cqrs_lab.notebook.history import HISTORY_UUID, state_at, state_history, styled_state_history
from cqrs_lab.notebook.process_stepper import ProcessStep, ProcessStepper, SentCommand, step_through_process
from cqrs_lab.notebook.specs import Spec, SpecOutcome, SpecReport, run_specs
from cqrs_lab.notebook.stepper import CommandStepper, Step, step_through
from cqrs_lab.notebook.timeline import Lane, Link, Sticky, Timeline, timeline

__all__ = [
    "ENVELOPE_COLUMNS",
    "HISTORY_UUID",
    "CommandStepper",
    "EventSource",
    "FlowDiagram",
    "Lane",
    "Link",
    "ProcessStep",
    "ProcessStepper",
    "SentCommand",
    "Spec",
    "SpecOutcome",
    "SpecReport",
    "Step",
    "Sticky",
    "Timeline",
    "events_frame",
    "events_polars",
    "events_table",
    "flow_diagram",
    "handout_html",
    "run_specs",
    "state_at",
    "state_history",
    "step_through",
    "step_through_process",
    "styled_state_history",
    "svg_charts",
    "timeline",
    "write_handout",
]
