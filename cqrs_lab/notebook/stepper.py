"""Step through commands one at a time: ``step_through`` (pure) and the ``CommandStepper`` widget."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape
from itertools import count
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


_stepper_numbers = count(1)  # one per stepper made in this process: ids of its static copy


def _static_css(key: str, total: int) -> str:
    pages = "".join(
        f"#{key}>#{key}-{k}:checked~.cqrs-lab-page-{k}{{display:block}}" for k in range(total + 1)
    )
    return (
        f"<style>#{key}>input{{position:absolute;opacity:0;width:0;height:0;margin:0}}"
        f"#{key}>.cqrs-lab-page{{display:none}}{pages}"
        f"#{key} label{{border:1px solid #90a4ae;border-radius:3px;padding:1px 10px;margin-right:4px;"
        f"cursor:pointer;background:#eceff1;color:#263238;font-family:sans-serif}}"
        f"#{key} .cqrs-lab-off{{opacity:0.4;cursor:default}}"
        f"@media print{{#{key}>.cqrs-lab-page{{display:block}}}}</style>"
    )


class _StepperWidget(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no type hints
    """Back/Next, Play/Stop/Repeat and a slider over steps 0 ... ``total``; ``page(k)`` is the
    HTML step k shows, ``text(k)`` its plain text.

    Its ``Output`` is written by assigning ``outputs`` (never ``with out:``), so it
    works without a front end and its output is the same on every run. Displayed,
    it also carries ``static_html()``: every step, with Back and Next that work
    with no kernel and no script. JupyterLab shows the live widget; a page
    without a widget manager (``cqrs-lab handout``, nbconvert with widgets left
    out) shows the static copy.
    """

    back_tooltip = "undo a command"
    next_tooltip = "next command"

    def __init__(
        self, total: int, interval: int, page: Callable[[int], str], text: Callable[[int], str]
    ) -> None:
        self.total = total
        self._page, self._text = page, text
        self.slider = widgets.IntSlider(value=0, min=0, max=total, description="step")
        # The animation is an ipywidgets Play, hidden: it runs in the browser, and its own
        # buttons cannot carry tooltips. These buttons drive it, linked in the browser too.
        self.play = widgets.Play(
            value=0, min=0, max=total, step=1, interval=interval, layout=widgets.Layout(display="none")
        )
        fit = widgets.Layout(width="auto")  # each button as wide as its label: the row fits a notebook
        self.back_button = widgets.Button(
            description="Back", icon="step-backward", tooltip=self.back_tooltip, layout=fit
        )
        self.next_button = widgets.Button(
            description="Next", icon="step-forward", tooltip=self.next_tooltip, layout=fit
        )
        self.play_button = widgets.ToggleButton(
            description="Play", icon="play", tooltip="play the steps one after another; click again to pause",
            layout=fit,
        )
        self.stop_button = widgets.Button(
            description="Stop", icon="stop", tooltip="stop, back to step 0", layout=fit
        )
        self.repeat_button = widgets.ToggleButton(
            description="Repeat", icon="retweet", tooltip="when playing, start again after the last step",
            layout=fit,
        )
        self.out = widgets.Output()
        controls = [
            self.back_button, self.next_button, self.play_button, self.stop_button, self.repeat_button
        ]
        super().__init__([widgets.HBox([*controls, self.slider, self.play]), self.out])
        self._links = (
            widgets.link((self.play, "value"), (self.slider, "value")),
            widgets.jslink((self.play_button, "value"), (self.play, "playing")),
            widgets.jslink((self.repeat_button, "value"), (self.play, "repeat")),
        )
        self._static_id = f"cqrs-lab-stepper-{next(_stepper_numbers)}"
        self.back_button.on_click(lambda _: self.go(self.slider.value - 1))
        self.next_button.on_click(lambda _: self.go(self.slider.value + 1))
        self.stop_button.on_click(lambda _: self.stop())
        self.slider.observe(lambda _: self._show(), names="value")
        self._show()

    @property
    def step(self) -> int:
        """The step shown (0 = the start)."""
        return int(self.slider.value)

    def stop(self) -> None:
        """Stop playing and show step 0."""
        self.play.playing = False
        self.play_button.value = False
        self.go(0)

    def go(self, step: int) -> None:
        """Show ``step`` (clamped to 0 ... the last step)."""
        self.slider.value = max(0, min(self.total, step))

    def html(self, step: int | None = None) -> str:
        """The HTML shown for ``step`` (default: the current step)."""
        return self._page(self.step if step is None else step)

    def static_html(self) -> str:
        """Every step on one page, Back/Next made of radio buttons and CSS: navigable with no kernel."""
        key, total = self._static_id, self.total
        radios = "".join(
            f"<input type='radio' name='{key}' id='{key}-{k}' aria-label='step {k}'{' checked' * (k == 0)}>"
            for k in range(total + 1)
        )
        pages = []
        for k in range(total + 1):
            back = (f"<label for='{key}-{k - 1}' title='{self.back_tooltip}'>Back</label>" if k
                    else "<label class='cqrs-lab-off'>Back</label>")
            ahead = (f"<label for='{key}-{k + 1}' title='{self.next_tooltip}'>Next</label>" if k < total
                     else "<label class='cqrs-lab-off'>Next</label>")
            pages.append(
                f"<div class='cqrs-lab-page cqrs-lab-page-{k}'><div style='margin:4px 0'>{back}{ahead}"
                f"<span style='font-size:0.85em;opacity:0.7'>step {k} of {total} "
                f"(a static copy: every step is here, no kernel needed)</span></div>{self.html(k)}</div>"
            )
        return (f"<div class='cqrs-lab-stepper-static' id='{key}'>{_static_css(key, total)}"
                f"{radios}{''.join(pages)}</div>")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle: dict[str, Any] | None = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle["text/html"] = self.static_html()
        return bundle

    def _show(self) -> None:
        self.back_button.disabled = self.step == 0
        self.next_button.disabled = self.step == self.total
        self.out.outputs = (
            {
                "output_type": "display_data",
                "data": {"text/plain": self._text(self.step), "text/html": self.html()},
                "metadata": {},
            },
        )


class CommandStepper(_StepperWidget):
    """A widget to walk through ``commands``: Back/Next, Play/Stop/Repeat and a slider.

    Step 0 is the state built from ``given``; step k shows the k-th command,
    its events (or rejection) and the state before and after. With a
    ``CqrsFramework`` and ``aggregate_id``, ``given`` defaults to that
    aggregate's stored events; nothing is ever committed. The logic is
    ``step_through``; this class only wires widgets to it (see ``_StepperWidget``:
    it writes its output deterministically and carries ``static_html()``, every
    step with Back and Next that work with no kernel).
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
        super().__init__(len(self.steps), interval, self._html_of, self._text_of)

    @property
    def current(self) -> Step[Any] | None:
        """The ``Step`` shown, or ``None`` at step 0."""
        return self.steps[self.step - 1] if self.step else None

    def _html_of(self, step: int) -> str:
        if step == 0:
            return _start_html(self.aggregate_cls, self.given, self.initial, len(self.steps))
        return step_html(self.steps[step - 1], len(self.steps))

    def _text_of(self, step: int) -> str:
        return repr(self.steps[step - 1] if step else self.initial)

    def __repr__(self) -> str:
        return f"CommandStepper({self.aggregate_cls.__qualname__}, step {self.step}/{len(self.steps)})"
