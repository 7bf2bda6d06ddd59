"""Given/when/then specs for aggregates (``TestFramework``), queries (``QueryTester``) and
process managers (``ProcessTester``).

Each step returns an object that keeps what was given, the command and the
outcome as data; ``then_*`` methods raise ``AssertionError`` on a mismatch
(usable in pytest) and return a ``SpecResult`` that notebooks render as a card.
``check_*`` methods do the same comparison without raising.
"""

from __future__ import annotations

import difflib
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal, TypeVar, overload

from cqrs_lab.domain import Aggregate, AggregateSource, Command, Event, Query, aggregate_class
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import UserError
from cqrs_lab.process import CancelSchedule, ProcessManager, Schedule, Send

__all__ = [
    "AggregateSpec",
    "ProcessSpec",
    "ProcessTester",
    "QuerySpec",
    "QueryTester",
    "SpecFailed",
    "SpecResult",
    "TestFramework",
]

A = TypeVar("A", bound=Aggregate)
Q = TypeVar("Q", bound=Query)
P = TypeVar("P", bound=ProcessManager)


def _lines(items: Sequence[Any]) -> list[str]:
    return [repr(i) for i in items]


def side_by_side(expected: Sequence[Any], actual: Sequence[Any], width: int = 100) -> str:
    """Expected and actual items, the first differing pair marked ``>>``.

    In two columns when every row fits in ``width`` characters; otherwise
    item by item, expected above actual, each wrapped at spaces (never inside
    a word) so that no line is wider than ``width``.
    """
    left, right = _lines(expected), _lines(actual)
    pairs = [
        (left[i] if i < len(left) else "<nothing>", right[i] if i < len(right) else "<nothing>")
        for i in range(max(len(left), len(right)))
    ]
    first = next((i for i, (lhs, rhs) in enumerate(pairs) if lhs != rhs), None)
    column = max([len("expected"), *map(len, left)])
    if all(3 + column + 3 + len(rhs) <= width for _, rhs in pairs):
        rows = [f"   {'expected'.ljust(column)} | actual"]
        rows += [f"{'>> ' if i == first else '   '}{lhs.ljust(column)} | {rhs}"
                 for i, (lhs, rhs) in enumerate(pairs)]
        return "\n".join(rows)
    rows = []
    for i, (lhs, rhs) in enumerate(pairs):
        number = f"#{i + 1} "
        rows.append(_wrapped(f"{'>> ' if i == first else '   '}{number}expected: ", lhs, width))
        rows.append(_wrapped(f"   {' ' * len(number)}actual:   ", rhs, width))
    return "\n".join(rows)


def _wrapped(prefix: str, text: str, width: int) -> str:
    lines = textwrap.wrap(text, width=max(width - len(prefix), 20), break_long_words=False,
                          break_on_hyphens=False, subsequent_indent="  ")
    return prefix + ("\n" + " " * len(prefix)).join(lines or [""])


@dataclass
class SpecResult:
    """The outcome of one spec, as data: what was given, done, expected and seen."""

    title: str
    kind: Literal["aggregate", "query", "process"]
    given: list[Any]
    when: Any
    expectation: Literal["events", "events_matching", "error", "query", "commands", "inspect"]
    expected: list[Any] | Any
    actual: list[Any] | Any
    error: UserError | None
    passed: bool
    message: str = ""

    def raise_for_failure(self) -> SpecResult:
        if not self.passed:
            raise SpecFailed(self)
        return self

    def _repr_html_(self) -> str:
        from cqrs_lab._render import spec_html

        return spec_html(self)

    def __repr__(self) -> str:
        status = "passed" if self.passed else "FAILED"
        return f"<SpecResult {self.title!r} {status}>"


class SpecFailed(AssertionError):
    """A ``then_*`` expectation was not met; ``result`` keeps the whole ``SpecResult``."""

    def __init__(self, result: SpecResult) -> None:
        super().__init__(result.message)
        self.result = result


@dataclass
class AggregateSpec(Generic[A]):
    """Given events, when a command: holds the produced events or the ``UserError``."""

    aggregate_cls: type[A]
    given: list[Event]
    command: Command
    events: list[Event] = field(default_factory=list)
    error: UserError | None = None
    title: str = ""

    def _result(self, expectation: Any, expected: Any, actual: Any, passed: bool, message: str) -> SpecResult:
        return SpecResult(
            title=self.title or f"{self.aggregate_cls.__qualname__}: {type(self.command).__name__}",
            kind="aggregate",
            given=list(self.given),
            when=self.command,
            expectation=expectation,
            expected=expected,
            actual=actual,
            error=self.error,
            passed=passed,
            message=message,
        )

    def _unexpected_error(self) -> str:
        assert self.error is not None
        return (
            "expected events, but the command was rejected: "
            f"UserError({self.error.message!r}, code={self.error.code!r})"
        )

    def check_events(self, expected: Sequence[Event]) -> SpecResult:
        expected = list(expected)
        if self.error is not None:
            return self._result("events", expected, self.error, False, self._unexpected_error())
        passed = expected == self.events
        message = "" if passed else "events differ:\n" + side_by_side(expected, self.events)
        return self._result("events", expected, list(self.events), passed, message)

    def check_events_matching(self, expected: Sequence[Event]) -> SpecResult:
        expected = list(expected)
        if self.error is not None:
            return self._result("events_matching", expected, self.error, False, self._unexpected_error())
        missing = [e for e in expected if e not in self.events]
        message = ""
        if missing:
            message = (
                f"{len(missing)} expected event(s) were not produced; first missing: "
                f"{missing[0]!r}\n" + side_by_side(expected, self.events)
            )
        return self._result("events_matching", expected, list(self.events), not missing, message)

    def check_error(self, message: str, code: str | None = None) -> SpecResult:
        expected = {"message": message, "code": code}
        if self.error is None:
            text = f"expected UserError({message!r}), but the command produced events:\n" + "\n".join(
                f"   {e!r}" for e in self.events
            )
            return self._result("error", expected, list(self.events), False, text)
        problems = []
        if self.error.message != message:
            diff = "\n".join(difflib.ndiff([message], [self.error.message]))
            problems.append(
                f"error message differs: expected {message!r}, actual {self.error.message!r}\n{diff}"
            )
        if code is not None and self.error.code != code:
            problems.append(f"error code differs: expected {code!r}, actual {self.error.code!r}")
        actual = {"message": self.error.message, "code": self.error.code}
        return self._result("error", expected, actual, not problems, "\n".join(problems))

    def then_expect_events(self, expected: Sequence[Event]) -> SpecResult:
        """Exactly these events, in this order."""
        return self.check_events(expected).raise_for_failure()

    def then_expect_events_matching(self, expected: Sequence[Event]) -> SpecResult:
        """At least these events (any order, others allowed)."""
        return self.check_events_matching(expected).raise_for_failure()

    def then_expect_error(self, message: str, code: str | None = None) -> SpecResult:
        """A ``UserError`` with this message (and this code, when given)."""
        return self.check_error(message, code).raise_for_failure()

    def inspect_result(self) -> list[Event] | UserError:
        """The produced events, or the ``UserError``."""
        return self.error if self.error is not None else list(self.events)


class TestFramework(Generic[A]):
    """Given/when/then for one aggregate class or ``Decider`` (the seed's ``TestFramework``)."""

    __test__ = False  # not a pytest test class

    @overload
    def __init__(self: TestFramework[A], aggregate_cls: type[A], title: str = "") -> None: ...

    @overload
    def __init__(self: TestFramework[Any], aggregate_cls: AggregateSource, title: str = "") -> None: ...

    def __init__(self, aggregate_cls: type[A] | AggregateSource, title: str = "") -> None:
        self.aggregate_cls: type[A] = aggregate_class(aggregate_cls)  # type: ignore[assignment]
        self.title = title
        self._given: list[Event] = []

    def given_no_previous_events(self) -> TestFramework[A]:
        return self._with([])

    def given(self, events: Sequence[Event]) -> TestFramework[A]:
        return self._with(list(events))

    def _with(self, events: list[Event]) -> TestFramework[A]:
        spec = TestFramework(self.aggregate_cls, self.title)
        spec._given = events
        return spec

    def when(self, command: Command) -> AggregateSpec[A]:
        aggregate = self.aggregate_cls()
        for event in self._given:
            aggregate.apply(event)
        spec = AggregateSpec(self.aggregate_cls, list(self._given), command, title=self.title)
        try:
            spec.events = list(aggregate.handle(command) or [])
        except UserError as exc:
            spec.error = exc
        return spec


def as_envelope(
    item: EventEnvelope | Event, aggregate_type: str = "Test", aggregate_id: str = "test-1", sequence: int = 1
) -> EventEnvelope:
    """An envelope around ``item`` (unchanged if it already is one), with fixed metadata."""
    if isinstance(item, EventEnvelope):
        return item
    return EventEnvelope(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        sequence=sequence,
        payload=item,
        metadata={},
        recorded_at=datetime(2024, 1, 1, tzinfo=UTC),
        event_id=f"00000000-0000-0000-0000-{sequence:012d}",
        position=sequence,
    )


@dataclass
class QuerySpec(Generic[Q]):
    """Given a view, when events: holds the updated view."""

    query_cls: type[Q]
    given: Q
    envelopes: list[EventEnvelope]
    result: Q
    title: str = ""

    def check(self, expected: Q) -> SpecResult:
        passed = expected == self.result
        message = ""
        if not passed:
            exp = expected.model_dump(mode="json")
            act = self.result.model_dump(mode="json")
            keys = list(dict.fromkeys([*exp, *act]))
            message = "query differs:\n" + side_by_side(
                [_Field(k, exp.get(k)) for k in keys], [_Field(k, act.get(k)) for k in keys]
            )
        return SpecResult(
            title=self.title or f"{self.query_cls.__qualname__}",
            kind="query",
            given=[self.given],
            when=[e.payload for e in self.envelopes],
            expectation="query",
            expected=expected,
            actual=self.result,
            error=None,
            passed=passed,
            message=message,
        )

    def then_expect(self, expected: Q) -> SpecResult:
        return self.check(expected).raise_for_failure()


@dataclass(frozen=True)
class _Field:
    name: str
    value: Any

    def __repr__(self) -> str:
        return f"{self.name}={self.value!r}"


class QueryTester(Generic[Q]):
    """Given/when/then for one query class (the seed's ``ConsumerTester``)."""

    __test__ = False

    def __init__(self, query_cls: type[Q], title: str = "") -> None:
        self.query_cls = query_cls
        self.title = title
        self._given: Q = query_cls()

    def given_no_previous_state(self) -> QueryTester[Q]:
        return self._with(self.query_cls())

    def given(self, query: Q) -> QueryTester[Q]:
        return self._with(query)

    def _with(self, query: Q) -> QueryTester[Q]:
        tester = QueryTester(self.query_cls, self.title)
        tester._given = query
        return tester

    def when(self, *items: EventEnvelope | Event) -> QuerySpec[Q]:
        envelopes = [as_envelope(item, sequence=i) for i, item in enumerate(items, start=1)]
        result = self._given.model_copy(deep=True)
        for envelope in envelopes:
            result.update(envelope)
        return QuerySpec(self.query_cls, self._given, envelopes, result, self.title)


@dataclass(frozen=True)
class TimeElapses:
    """The ``when`` of a ``ProcessTester.when_time_elapses`` spec."""

    delta: timedelta

    def __repr__(self) -> str:
        return f"time elapses: {self.delta}"


@dataclass
class ProcessSpec(Generic[P]):
    """Given events, when an event (or time passing): holds the commands the process sent
    and the schedules still pending after it (``(process_id, name) -> (due, Send)``)."""

    process_cls: type[P]
    given: list[Event]
    when: Event | TimeElapses
    commands: list[Send]
    pending: dict[tuple[str, str], tuple[datetime, Send]]
    title: str = ""

    def check_commands(self, expected: Sequence[Send]) -> SpecResult:
        expected = list(expected)
        passed = expected == self.commands
        message = "" if passed else "commands differ:\n" + side_by_side(expected, self.commands)
        return SpecResult(
            title=self.title or f"{self.process_cls.__qualname__}: {self._when_name()}",
            kind="process",
            given=list(self.given),
            when=self.when,
            expectation="commands",
            expected=expected,
            actual=list(self.commands),
            error=None,
            passed=passed,
            message=message,
        )

    def _when_name(self) -> str:
        return "time elapses" if isinstance(self.when, TimeElapses) else type(self.when).__name__

    def then_expect_commands(self, expected: Sequence[Send]) -> SpecResult:
        """Exactly these commands sent, in this order (schedules made or cancelled are not commands)."""
        return self.check_commands(expected).raise_for_failure()

    def then_expect_no_commands(self) -> SpecResult:
        """No command sent."""
        return self.check_commands([]).raise_for_failure()

    def inspect_result(self) -> list[Send]:
        """The commands sent."""
        return list(self.commands)


class ProcessTester(Generic[P]):
    """Given/when/then for one process manager class: events in, commands out, no store.

    Bare events are wrapped in envelopes recorded at 2024-01-01 00:00 UTC (pass
    envelopes to choose aggregate ids or times). ``when_time_elapses(delta)``
    fires the schedules due ``delta`` after the latest given event, soonest first.
    """

    __test__ = False

    def __init__(self, process_cls: type[P], title: str = "") -> None:
        self.process_cls = process_cls
        self.title = title
        self._given: list[EventEnvelope | Event] = []

    def given_no_previous_events(self) -> ProcessTester[P]:
        return self._with([])

    def given(self, events: Sequence[EventEnvelope | Event]) -> ProcessTester[P]:
        return self._with(list(events))

    def _with(self, events: list[EventEnvelope | Event]) -> ProcessTester[P]:
        tester = ProcessTester(self.process_cls, self.title)
        tester._given = events
        return tester

    def _replay(self) -> tuple[_Instances[P], datetime]:
        instances = _Instances(self.process_cls)
        latest = _GIVEN_AT
        for number, item in enumerate(self._given, start=1):
            envelope = as_envelope(item, sequence=number)
            instances.handle(envelope)
            latest = max(latest, envelope.recorded_at)
        return instances, latest

    def when(self, event: EventEnvelope | Event) -> ProcessSpec[P]:
        """The process reacts to ``event`` after the given ones."""
        instances, _ = self._replay()
        envelope = as_envelope(event, sequence=len(self._given) + 1)
        commands = instances.handle(envelope)
        return self._spec(envelope.payload, commands, instances)

    def when_time_elapses(self, delta: timedelta) -> ProcessSpec[P]:
        """Time passes: the schedules due by then send their commands."""
        instances, latest = self._replay()
        now = latest + delta
        due = sorted((at, key) for key, (at, _) in instances.pending.items() if at <= now)
        commands = [instances.pending.pop(key)[1] for _, key in due]
        return self._spec(TimeElapses(delta), commands, instances)

    def _spec(
        self, when: Event | TimeElapses, commands: list[Send], instances: _Instances[P]
    ) -> ProcessSpec[P]:
        given = [g.payload if isinstance(g, EventEnvelope) else g for g in self._given]
        return ProcessSpec(self.process_cls, given, when, commands, dict(instances.pending), self.title)


_GIVEN_AT = datetime(2024, 1, 1, tzinfo=UTC)


class _Instances(Generic[P]):
    """Process instances in memory, as a runner would keep them, sending nowhere."""

    def __init__(self, process_cls: type[P]) -> None:
        self.process_cls = process_cls
        self.states: dict[str, P] = {}
        self.pending: dict[tuple[str, str], tuple[datetime, Send]] = {}

    def handle(self, envelope: EventEnvelope) -> list[Send]:
        """React to one event; returns the commands sent now."""
        pid = self.process_cls.route(envelope)
        if pid is None:
            return []
        process = self.states.setdefault(pid, self.process_cls())
        actions = process.react(envelope) or []
        process.apply(envelope)
        sent = []
        for action in actions:
            if isinstance(action, Send):
                sent.append(action)
            elif isinstance(action, Schedule):
                self.pending[(pid, action.name)] = (action.due(envelope.recorded_at), action.send)
            elif isinstance(action, CancelSchedule):
                self.pending.pop((pid, action.name), None)
        return sent
