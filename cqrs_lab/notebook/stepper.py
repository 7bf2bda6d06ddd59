"""Step through commands one at a time: ``step_through`` (pure) and the ``CommandStepper`` widget."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Generic, TypeVar

import ipywidgets as widgets
from pydantic import BaseModel

from cqrs_lab._render import CHANGED, COMMAND, EVENT, REJECTED, badge, fields_text, grid, sticky
from cqrs_lab.domain import Aggregate, AggregateSource, Command, Event, aggregate_class
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import UserError
from cqrs_lab.framework import CqrsFramework

__all__ = ["CommandStepper", "Step", "step_through"]

A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class Step(Generic[A]):
    """One command applied: what it produced (or why it was rejected) and the state around it."""

    number: int
    """1 for the first command."""
    command: Command
    events: list[Event]
    """The events the command produced (empty when rejected)."""
    error: UserError | None
    """The ``UserError`` that rejected the command, if it was rejected."""
    state_before: A
    state_after: A
    events_so_far: list[Event]
    """Every event of the stream after this step: the given ones, then each step's."""

    @property
    def accepted(self) -> bool:
        return self.error is None

    def changed_fields(self) -> list[str]:
        """Names of the aggregate fields this step changed."""
        before, after = self.state_before.model_dump(), self.state_after.model_dump()
        return [name for name in after if before.get(name) != after[name]]

    def _repr_html_(self) -> str:
        return step_html(self)

    def __repr__(self) -> str:
        outcome = (
            f"{len(self.events)} event(s)" if self.error is None else f"rejected: {self.error.message!r}"
        )
        return f"Step({self.number}, {type(self.command).__name__} -> {outcome})"


def step_through(
    aggregate_cls: type[A] | AggregateSource,
    commands: Iterable[Command],
    *,
    given: Iterable[Event | EventEnvelope] = (),
) -> list[Step[A]]:
    """Apply ``commands`` one by one to an aggregate (or ``Decider``) built from ``given``;
    one ``Step`` per command.

    A rejected command (``UserError``) is recorded in its step and changes
    nothing; the next command sees the same state. Nothing is stored.
    """
    history = [g.payload if isinstance(g, EventEnvelope) else g for g in given]
    state: A = aggregate_class(aggregate_cls)()  # type: ignore[assignment]
    for event in history:
        state.apply(event)
    steps: list[Step[A]] = []
    for number, command in enumerate(commands, start=1):
        before = state.model_copy(deep=True)
        try:
            events = list(state.handle(command) or [])
            error = None
        except UserError as exc:
            events, error = [], exc
        for event in events:
            state.apply(event)
        history = [*history, *events]
        steps.append(Step(number, command, events, error, before, state.model_copy(deep=True), history))
    return steps


def _state_table(before: BaseModel | None, after: BaseModel) -> str:
    new = after.model_dump(mode="json")
    old = before.model_dump(mode="json") if before is not None else new
    rows = []
    for name, value in new.items():
        cells = [escape(name), escape(str(old.get(name))), escape(str(value))]
        if old.get(name) != value:
            mark = f"background:{CHANGED.fill};color:{CHANGED.text}"
            cells = [f"<span style='{mark}'>{c}</span>" for c in cells]
        rows.append(cells)
    return grid(["field", "before", "after"], rows)


def _events_html(events: Sequence[Event], empty: str) -> str:
    return "".join(sticky(e.event_type, EVENT, fields_text(e)) for e in events) or f"<i>{empty}</i>"


def step_html(step: Step[Any], total: int | None = None) -> str:
    """A step as a card: the command, its events or its rejection, state before and after."""
    if step.error is not None:
        outcome = sticky(f"rejected: {step.error.message}", REJECTED, f"code={step.error.code}")
        status = badge("rejected", REJECTED)
    else:
        outcome = _events_html(step.events, "no events")
        status = badge("accepted", EVENT)
    return (
        f"<div class='cqrs-lab-step'><div><b>step {step.number}{'' if total is None else f' of {total}'}</b>"
        f" {status}</div>"
        f"<div>{sticky(type(step.command).__name__, COMMAND, fields_text(step.command))}"
        f" &#x2192; {outcome}</div>"
        f"{_state_table(step.state_before, step.state_after)}"
        f"<div>events so far: {len(step.events_so_far)}</div></div>"
    )


def _start_html(aggregate_cls: type[Aggregate], given: Sequence[Event], state: Aggregate, total: int) -> str:
    events = _events_html(given, "no previous events")
    return (
        f"<div class='cqrs-lab-step'><div><b>step 0</b> of {total}: {escape(aggregate_cls.__qualname__)}"
        f" before any command</div><div>given: {events}</div>{_state_table(None, state)}</div>"
    )


class CommandStepper(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no type hints
    """A widget to walk through ``commands``: Back/Next buttons, a slider and a Play button.

    Step 0 is the state built from ``given``; step k shows the k-th command,
    its events (or rejection) and the state before and after. With a
    ``CqrsFramework`` and ``aggregate_id``, ``given`` defaults to that
    aggregate's stored events; nothing is ever committed. The logic is
    ``step_through``; this class only wires widgets to it, and writes its
    ``Output`` by assigning ``outputs`` (never ``with out:``), so it works
    without a front end and its output is the same on every run.
    """

    def __init__(
        self,
        target: type[Aggregate] | AggregateSource | CqrsFramework[Any],
        commands: Sequence[Command],
        *,
        given: Iterable[Event | EventEnvelope] | None = None,
        aggregate_id: str | None = None,
        interval: int = 1000,
    ) -> None:
        if isinstance(target, CqrsFramework):
            self.aggregate_cls: type[Aggregate] = target.aggregate_cls
            if given is None and aggregate_id is not None:
                given = target.events(aggregate_id)
        else:
            self.aggregate_cls = aggregate_class(target)
        self.given = [g.payload if isinstance(g, EventEnvelope) else g for g in given or ()]
        self.steps: list[Step[Any]] = step_through(self.aggregate_cls, commands, given=self.given)
        self.initial = self.aggregate_cls()
        for event in self.given:
            self.initial.apply(event)
        total = len(self.steps)
        self.slider = widgets.IntSlider(value=0, min=0, max=total, description="step")
        self.play = widgets.Play(value=0, min=0, max=total, step=1, interval=interval, description="play")
        self.back_button = widgets.Button(description="Back", icon="step-backward", tooltip="undo a command")
        self.next_button = widgets.Button(description="Next", icon="step-forward", tooltip="next command")
        self.out = widgets.Output()
        super().__init__(
            [widgets.HBox([self.back_button, self.play, self.slider, self.next_button]), self.out]
        )
        self._link = widgets.link((self.play, "value"), (self.slider, "value"))
        self.back_button.on_click(lambda _: self.go(self.slider.value - 1))
        self.next_button.on_click(lambda _: self.go(self.slider.value + 1))
        self.slider.observe(lambda _: self._show(), names="value")
        self._show()

    @property
    def step(self) -> int:
        """The step shown (0 = before any command)."""
        return int(self.slider.value)

    @property
    def current(self) -> Step[Any] | None:
        """The ``Step`` shown, or ``None`` at step 0."""
        return self.steps[self.step - 1] if self.step else None

    def go(self, step: int) -> None:
        """Show ``step`` (clamped to 0 ... number of commands)."""
        self.slider.value = max(0, min(len(self.steps), step))

    def html(self) -> str:
        """The HTML shown for the current step."""
        current = self.current
        if current is None:
            return _start_html(self.aggregate_cls, self.given, self.initial, len(self.steps))
        return step_html(current, len(self.steps))

    def _show(self) -> None:
        self.back_button.disabled = self.step == 0
        self.next_button.disabled = self.step == len(self.steps)
        self.out.outputs = (
            {
                "output_type": "display_data",
                "data": {"text/plain": repr(self.current or self.initial), "text/html": self.html()},
                "metadata": {},
            },
        )

    def __repr__(self) -> str:
        return f"CommandStepper({self.aggregate_cls.__qualname__}, step {self.step}/{len(self.steps)})"
