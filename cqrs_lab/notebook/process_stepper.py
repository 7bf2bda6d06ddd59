"""Step through a process manager: an event in, the commands it sends out, their events;
deadlines on a clock. ``step_through_process`` (pure) and the ``ProcessStepper`` widget.

A script drives it: ``Send(...)`` items are commands from outside (a customer
placing an order), ``timedelta`` items let time pass. Everything runs for real,
in memory stores of its own: the frameworks of the aggregates, a
``ProcessRunner`` reading one event at a time, a ``FixedClock`` that ticks one
second per event and jumps when time passes. Nothing of the caller's is read
or written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from cqrs_lab._render import COMMAND, EVENT, NEUTRAL, POLICY, REJECTED, badge, fields_text, grid, sticky
from cqrs_lab.domain import Aggregate, AggregateSource, Command, aggregate_class
from cqrs_lab.envelope import EventEnvelope, FixedClock, SequentialIds
from cqrs_lab.errors import ConfigurationError, UserError
from cqrs_lab.framework import CqrsFramework
from cqrs_lab.notebook.stepper import _state_table, _StepperWidget
from cqrs_lab.process import Deadline, ProcessManager, ProcessRunner, Send
from cqrs_lab.stores.memory import MemoryEventStore, MemoryQueryStore

__all__ = [
    "MAX_PROCESS_STEPS",
    "ProcessStep",
    "ProcessStepper",
    "ScriptItem",
    "SentCommand",
    "step_through_process",
]

P = TypeVar("P", bound=ProcessManager)

ScriptItem = Send | timedelta
"""One item of a process stepper's script: a command from outside, or time passing."""

StepKind = Literal["command", "time", "event", "deadline"]

MAX_PROCESS_STEPS = 1000
"""More steps than this from one script item means a process that answers its own events without end."""

START = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SentCommand:
    """A command sent in a step (by the script, or by the process) and what came of it."""

    send: Send
    events: tuple[EventEnvelope, ...]
    """The events it produced (none when it was rejected)."""
    error: UserError | None
    """The ``UserError`` that rejected it, if it was rejected."""
    command_id: str | None
    """Its command id (a process's are deterministic; None for a rejected command from outside)."""
    answers: str | None = None
    """For a command ``on_rejected`` sent: the class name of the rejected command it answers."""

    @property
    def accepted(self) -> bool:
        return self.error is None

    @property
    def target(self) -> str:
        """``AggregateType/id`` of the aggregate it was sent to."""
        return f"{self.send.aggregate_type}/{self.send.aggregate_id}"

    def __repr__(self) -> str:
        outcome = (f"{len(self.events)} event(s)" if self.error is None
                   else f"rejected: {self.error.message!r}")
        return f"SentCommand({type(self.send.command).__name__} -> {self.target}: {outcome})"


@dataclass(frozen=True)
class ProcessStep:
    """One step: a command from outside, time passing, an event the process handled, or a deadline
    that fired; what was sent, the state around it and the deadlines pending after it."""

    number: int
    """1 for the first step."""
    process: str
    """The process runner's name (by default its class name)."""
    kind: StepKind
    trigger: Send | timedelta | EventEnvelope | Deadline
    """What the step is about: the command from outside (``command``), how much time passed
    (``time``), the event the process handled (``event``), the deadline that fired (``deadline``)."""
    clock: datetime
    """The time on the clock at the end of the step."""
    sent: tuple[SentCommand, ...]
    """``command``: the command from outside; ``event`` and ``deadline``: what the process sent,
    in order (an answer to a rejection follows the rejected command)."""
    process_id: str | None
    """The process instance the step concerns (``event`` and ``deadline`` steps)."""
    state_before: BaseModel | None
    """The process instance's state before the step (for a ``command`` step, the aggregate's)."""
    state_after: BaseModel | None
    scheduled: tuple[Deadline, ...]
    """Deadlines this step set (or moved)."""
    cancelled: tuple[Deadline, ...]
    """Deadlines this step cancelled."""
    pending: tuple[Deadline, ...]
    """Every deadline pending after the step, the soonest first."""

    def due(self) -> list[Deadline]:
        """The pending deadlines that are due at the step's clock (they fire in the next steps)."""
        return [d for d in self.pending if d.due_at <= self.clock]

    def events(self) -> list[EventEnvelope]:
        """Every event committed in this step, in order."""
        return [e for sent in self.sent for e in sent.events]

    @property
    def summary(self) -> str:
        """What the step did, on one line: ``OrderPlaced -> O-1: sent RequestPayment; scheduled ...``."""
        return _summary(self)

    def __repr__(self) -> str:
        return f"ProcessStep({self.number}, {self.summary})"

    def _repr_html_(self) -> str:
        return process_step_html(self)


# -- running a script --------------------------------------------------------------
@dataclass(frozen=True)
class _Record:
    metadata: Mapping[str, str]
    sent: SentCommand


class _RecordingFramework(CqrsFramework[Any]):
    """A framework that notes every command it is asked to execute, and what came of it."""

    def __init__(self, target: type[Aggregate] | AggregateSource, store: MemoryEventStore,
                 run: _Run) -> None:
        super().__init__(target, store, clock=run.tick, ids=run.ids)
        self.target = target
        self.run = run

    def execute_with_metadata(
        self, aggregate_id: str, command: Command, metadata: Mapping[str, str], command_id: str | None = None
    ) -> list[EventEnvelope]:
        send = Send(self.target, aggregate_id, command)
        answers = metadata.get("rejected_command")
        records = self.run.records
        try:
            envelopes = super().execute_with_metadata(aggregate_id, command, metadata, command_id)
        except UserError as error:
            records.append(_Record(dict(metadata), SentCommand(send, (), error, command_id, answers)))
            raise
        used = envelopes[0].metadata.get("command_id") if envelopes else command_id
        records.append(_Record(dict(metadata), SentCommand(send, tuple(envelopes), None, used, answers)))
        return envelopes


def _key(deadline: Deadline) -> tuple[str, str]:
    return deadline.process_id, deadline.name


class _Run:
    """A script run in memory stores of its own; ``steps`` is what it did."""

    def __init__(
        self,
        process_cls: type[ProcessManager],
        aggregates: Iterable[type[Aggregate] | AggregateSource],
        name: str | None,
        start: datetime,
    ) -> None:
        if start.tzinfo is None:
            raise ConfigurationError(
                f"start={start.isoformat()} has no timezone; pass an aware datetime, "
                "e.g. datetime(..., tzinfo=UTC)"
            )
        self.clock = FixedClock(start)
        self.now = start
        self.ids = SequentialIds()
        self.store = MemoryEventStore()
        self.records: list[_Record] = []
        self.frameworks: dict[str, _RecordingFramework] = {}
        for target in aggregates:
            aggregate_type = aggregate_class(target).aggregate_type
            if aggregate_type not in self.frameworks:
                self.frameworks[aggregate_type] = _RecordingFramework(target, self.store, self)
        self.process_cls = process_cls
        self.runner = ProcessRunner(
            process_cls, self.store, MemoryQueryStore(), list(self.frameworks.values()),
            clock=self.tick, name=name, batch_size=1,
        )
        self.steps: list[ProcessStep] = []

    def tick(self) -> datetime:
        """The clock the frameworks read: a ``FixedClock``, and ``now`` follows it."""
        reading = self.clock()
        self.now = max(self.now, reading)
        return reading

    def play(self, script: Iterable[ScriptItem]) -> list[ProcessStep]:
        for item in script:
            limit = len(self.steps) + MAX_PROCESS_STEPS
            if isinstance(item, Send):
                self._command(item)
            elif isinstance(item, timedelta):
                self._time(item)
            else:
                raise ConfigurationError(
                    f"a process script holds Send(AggregateCls, id, command) and timedelta(...) items, "
                    f"not {item!r}"
                )
            try:
                self._react(limit)
            except ConfigurationError as exc:
                known = ", ".join(self.frameworks)
                raise ConfigurationError(
                    f"{exc} (stepping through {self.process_cls.__qualname__}, which can send to {known}: "
                    "the aggregates come from the script's Send items and aggregates=[...])"
                ) from exc
        return self.steps

    def _add(self, kind: StepKind, trigger: Send | timedelta | EventEnvelope | Deadline, *,
             sent: Sequence[SentCommand] = (), process_id: str | None = None,
             before: BaseModel | None = None, after: BaseModel | None = None,
             pending_before: Sequence[Deadline] = (), fired: Sequence[Deadline] = ()) -> None:
        pending = self.runner.pending()
        old = {_key(d): d for d in pending_before if d.process_id == process_id}
        new = {_key(d): d for d in pending if d.process_id == process_id}
        gone = {_key(d) for d in fired}
        self.steps.append(ProcessStep(
            number=len(self.steps) + 1,
            process=self.runner.name,
            kind=kind,
            trigger=trigger,
            clock=self.now,
            sent=tuple(sent),
            process_id=process_id,
            state_before=before,
            state_after=after,
            scheduled=tuple(d for key, d in new.items() if old.get(key) != d),
            cancelled=tuple(d for key, d in old.items() if key not in new and key not in gone),
            pending=tuple(pending),
        ))

    def _command(self, send: Send) -> None:
        framework = self.frameworks[send.aggregate_type]  # every Send of the script has one
        before = framework.load(send.aggregate_id)
        self.records.clear()
        with suppress(UserError):  # recorded: the step shows the rejection
            framework.execute(send.aggregate_id, send.command)
        after = framework.load(send.aggregate_id)
        self._add("command", send, sent=[r.sent for r in self.records], before=before, after=after)

    def _time(self, delta: timedelta) -> None:
        self.clock.advance(delta)  # refuses a negative delta
        self.now += delta
        self._add("time", delta)

    def _react(self, limit: int) -> None:
        """Handle the new events one by one, and fire the deadlines due, until nothing is left."""
        while True:
            if len(self.steps) > limit:
                raise ConfigurationError(
                    f"{self.process_cls.__qualname__} was still sending commands after {MAX_PROCESS_STEPS} "
                    "steps of one script item: does it answer its own events without end?"
                )
            envelope = next(iter(self.store.read_all(self.runner.position)), None)
            if envelope is not None:
                self._event(envelope)
                continue
            due = [d for d in self.runner.pending() if d.due_at <= self.now]
            if not due:
                return
            self._deadlines([d for d in due if d.due_at == due[0].due_at])

    def _event(self, envelope: EventEnvelope) -> None:
        pid = self.process_cls.route(envelope)
        if pid is None:
            self.runner.run_once(limit=1)  # not for this process: no step
            return
        before, pending = self.runner.state(pid), self.runner.pending()
        self.records.clear()
        self.runner.run_once(limit=1)
        self._add("event", envelope, sent=[r.sent for r in self.records], process_id=pid,
                  before=before, after=self.runner.state(pid), pending_before=pending)

    def _deadlines(self, due: list[Deadline]) -> None:
        """Fire the deadlines due at one moment (soonest first): a step for each."""
        pending = self.runner.pending()
        before = {d.process_id: self.runner.state(d.process_id) for d in due}
        self.records.clear()
        self.runner.fire_due(now=due[0].due_at)
        for deadline in due:
            sent = [r.sent for r in self.records
                    if r.metadata.get("process_id") == deadline.process_id
                    and r.metadata.get("deadline") == deadline.name]
            self._add("deadline", deadline, sent=sent, process_id=deadline.process_id,
                      before=before[deadline.process_id], after=self.runner.state(deadline.process_id),
                      pending_before=pending, fired=due)


def step_through_process(
    process: type[P] | ProcessRunner[P],
    script: Iterable[ScriptItem],
    *,
    aggregates: Iterable[type[Aggregate] | AggregateSource] = (),
    start: datetime = START,
) -> list[ProcessStep]:
    """Run ``script`` and return one ``ProcessStep`` per thing that happened.

    ``process`` is a ``ProcessManager`` class, or a ``ProcessRunner`` (its class,
    name and the aggregates of its frameworks; not its stores). ``script`` holds
    ``Send(AggregateCls, id, command)`` items, commands from outside, and
    ``timedelta`` items, time passing. After each item, every new event the
    process routes is a step (what it sent, their events, the state before and
    after, the deadlines it set or cancelled), and so is every deadline that
    falls due (its command and events); events the process does not route are
    shown only as what a command produced.

    Commands go to the aggregates the script names, those of ``aggregates`` and
    a runner's; list in ``aggregates`` any other the process sends to. It all
    runs in memory stores of its own, on a ``FixedClock`` from ``start`` that
    ticks one second per event, with sequential ids: the same script gives the
    same steps.
    """
    items = list(script)
    targets: list[type[Aggregate] | AggregateSource] = [i.aggregate_cls for i in items if isinstance(i, Send)]
    targets += list(aggregates)
    name = None
    if isinstance(process, ProcessRunner):
        name = process.name
        targets += [f.decider or f.aggregate_cls for f in process.frameworks.values()]
        process_cls: type[ProcessManager] = process.process_cls
    elif isinstance(process, type) and issubclass(process, ProcessManager):
        process_cls = process
    else:
        raise ConfigurationError(
            f"step_through_process needs a ProcessManager subclass or a ProcessRunner, not {process!r}"
        )
    return _Run(process_cls, targets, name, start).play(items)


# -- showing a step ----------------------------------------------------------------
def _clock_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _delta(delta: timedelta) -> str:
    return f"+{delta}"


def _summary(step: ProcessStep) -> str:
    """What a step did, on one line (its repr and the plain text of the widget)."""
    sent = ", ".join(type(s.send.command).__name__ + ("" if s.accepted else " (rejected)") for s in step.sent)
    trigger = step.trigger
    if isinstance(trigger, timedelta):
        due = len(step.due())
        return f"time {_delta(trigger)} -> {_clock_text(step.clock)}, {due} deadline(s) due"
    if isinstance(trigger, Send):
        (command,) = step.sent
        outcome = (f"{len(command.events)} event(s)" if command.accepted
                   else f"rejected: {command.error.message!r}" if command.error else "")
        return f"{type(trigger.command).__name__} -> {command.target}: {outcome}"
    what = trigger.event_type if isinstance(trigger, EventEnvelope) else f"deadline {trigger.name}"
    parts = [f"sent {sent}" if sent else "sent nothing"]
    parts += [f"scheduled {d.name}" for d in step.scheduled]
    parts += [f"cancelled {d.name}" for d in step.cancelled]
    return f"{what} -> {step.process_id}: {'; '.join(parts)}"


def _send_sticky(send: Send) -> str:
    return sticky(type(send.command).__name__, COMMAND, f"to {send.aggregate_type}/{send.aggregate_id}")


def _sent_html(sent: SentCommand, label: str) -> str:
    if sent.error is not None:
        outcome = sticky(f"rejected: {sent.error.message}", REJECTED, f"code={sent.error.code}")
    else:
        outcome = "".join(sticky(e.event_type, EVENT, fields_text(e.payload)) for e in sent.events)
        outcome = outcome or "<i>no events</i>"
    answer = f"<i>answering {escape(sent.answers)} rejected:</i> " if sent.answers else ""
    return f"<div><b>{label}</b> {answer}{_send_sticky(sent.send)} &#x2192; {outcome}</div>"


def _deadlines_html(title: str, deadlines: Sequence[Deadline], empty: str) -> str:
    if not deadlines:
        return f"<div>{escape(title)}: <i>{escape(empty)}</i></div>"
    rows = [[escape(d.process_id), escape(d.name), escape(_clock_text(d.due_at)), _send_sticky(d.send)]
            for d in deadlines]
    return f"<div>{escape(title)}:{grid(['process', 'deadline', 'due', 'sends'], rows)}</div>"


def _clock_badge(moment: datetime) -> str:
    return badge(f"clock {_clock_text(moment)}", NEUTRAL)


_KIND_NAMES: dict[StepKind, str] = {
    "command": "a command from outside",
    "time": "time passes",
    "event": "an event in",
    "deadline": "a deadline fires",
}


def process_step_html(step: ProcessStep, total: int | None = None) -> str:
    """A step as a card: the clock, what came in, what went out, the state and the deadlines."""
    of = "" if total is None else f" of {total}"
    trigger = step.trigger
    if isinstance(trigger, Send):
        body = "".join(_sent_html(s, "in") for s in step.sent)
    elif isinstance(trigger, timedelta):
        due = len(step.due())
        body = (f"<div><b>in</b> {sticky(f'time {_delta(trigger)}', NEUTRAL)} "
                f"{due} deadline(s) due now{': they fire next' if due else ''}</div>")
    else:
        policy = sticky(f"{step.process} {step.process_id}", POLICY, "policy")
        if isinstance(trigger, EventEnvelope):
            came = sticky(trigger.event_type, EVENT, fields_text(trigger.payload))
            metadata = trigger.metadata
            sender = f"sent by {metadata['process']} {metadata.get('process_id', '')}" if metadata.get(
                "process") else "from outside"
            origin = f"{metadata.get('command_type', 'a command')} {sender}"
            where = f"{trigger.aggregate_type}/{trigger.aggregate_id} #{trigger.sequence}, from {origin}"
            came += f" <i>({escape(where)})</i>"
        else:
            came = sticky(f"deadline {trigger.name}", POLICY, f"due {_clock_text(trigger.due_at)}")
        body = f"<div><b>in</b> {came} &#x2192; {policy}</div>"
        body += "".join(_sent_html(s, "out") for s in step.sent) or "<div><b>out</b> <i>nothing</i></div>"
        changes = [f"scheduled {escape(d.name)} (due {_clock_text(d.due_at)})" for d in step.scheduled]
        changes += [f"cancelled {escape(d.name)}" for d in step.cancelled]
        if changes:
            body += f"<div>{'; '.join(changes)}</div>"
    states = "" if step.state_after is None else _state_table(step.state_before, step.state_after)
    return (
        f"<div class='cqrs-lab-step cqrs-lab-process-step'><div><b>step {step.number}{of}</b> "
        f"{_clock_badge(step.clock)} {badge(_KIND_NAMES[step.kind], NEUTRAL)}</div>"
        f"{body}{states}{_deadlines_html('pending deadlines', step.pending, 'none')}</div>"
    )


def _start_html(process: str, script: Sequence[ScriptItem], start: datetime, total: int) -> str:
    items = "".join(
        _send_sticky(item) if isinstance(item, Send) else sticky(f"time {_delta(item)}", NEUTRAL)
        for item in script
    )
    return (
        f"<div class='cqrs-lab-step cqrs-lab-process-step'><div><b>step 0</b> of {total}: "
        f"{escape(process)} before anything happened {_clock_badge(start)}</div>"
        f"<div>the script: {items or '<i>empty</i>'}</div></div>"
    )


class ProcessStepper(_StepperWidget):
    """A widget to walk through a process: Back/Next, Play/Stop/Repeat and a slider.

    Step 0 is the script, before anything happened; each step shows the clock,
    what came in (a command from outside, time passing, an event, a deadline),
    what the process sent and what came of it, its state before and after, and
    the deadlines pending. The logic is ``step_through_process`` (same
    arguments); this class only wires widgets to it, writes its output
    deterministically and carries every step as static HTML for pages without a
    kernel (see ``CommandStepper``).
    """

    back_tooltip = "one step back"
    next_tooltip = "next step"

    def __init__(
        self,
        process: type[P] | ProcessRunner[P],
        script: Iterable[ScriptItem],
        *,
        aggregates: Iterable[type[Aggregate] | AggregateSource] = (),
        start: datetime = START,
        interval: int = 1000,
    ) -> None:
        self.script = list(script)
        self.start = start
        self.steps = step_through_process(process, self.script, aggregates=aggregates, start=start)
        self.process_name = process.name if isinstance(process, ProcessRunner) else process.__qualname__
        super().__init__(len(self.steps), interval, self._html_of, self._text_of)

    @property
    def current(self) -> ProcessStep | None:
        """The ``ProcessStep`` shown, or ``None`` at step 0."""
        return self.steps[self.step - 1] if self.step else None

    def _html_of(self, step: int) -> str:
        if step == 0:
            return _start_html(self.process_name, self.script, self.start, len(self.steps))
        return process_step_html(self.steps[step - 1], len(self.steps))

    def _text_of(self, step: int) -> str:
        if step == 0:
            return f"{self.process_name}: {len(self.script)} script item(s), clock {_clock_text(self.start)}"
        return repr(self.steps[step - 1])

    def __repr__(self) -> str:
        return f"ProcessStepper({self.process_name}, step {self.step}/{len(self.steps)})"
