"""Process managers: the EventStorming *policy*. Events in, commands out, now or at a deadline.

A ``ProcessManager`` is a pydantic model whose fields are the state of one
instance (one order's checkout, one transfer). ``route`` says which instance an
event concerns; ``react`` returns what to do about it (``Send`` a command now,
``Schedule`` one for later, ``CancelSchedule`` a pending one); ``apply`` changes
the state. A ``ProcessRunner`` reads the global log from its checkpoint, runs
them, and sends the commands through the ``CqrsFramework`` of each target
aggregate.

Delivery is at least once, effect exactly once: every command a runner sends
carries a deterministic ``command_id`` (runner, instance, the event or deadline
that caused it, its place in the reaction) and metadata saying what sent it:
``caused_by`` the event, ``process`` and ``process_id``, ``deadline`` for a
fired deadline, ``rejected_command`` (the rejected command's class name) for
what ``on_rejected`` sends. So when a runner dies after sending and before
its checkpoint moved, the run that repeats the batch sends the same ids and the
framework applies none twice. Instance states, pending deadlines and the
checkpoint are committed together, in one transaction of the query store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from cqrs_lab.codec import decode_metadata, encode_metadata
from cqrs_lab.domain import (
    Aggregate,
    AggregateSource,
    Command,
    aggregate_class,
    command_class,
    command_class_name,
)
from cqrs_lab.envelope import Clock, EventEnvelope, caused_by, system_clock
from cqrs_lab.errors import ConfigurationError, CorruptRecordError, TechnicalError, UserError
from cqrs_lab.framework import CqrsFramework
from cqrs_lab.projections import Progress
from cqrs_lab.stores.base import (
    EventStore,
    ProcessStore,
    QueryStore,
    StoredDeadline,
    StoredProcess,
    validate_identifier,
)

__all__ = [
    "Action",
    "CancelSchedule",
    "Deadline",
    "ProcessManager",
    "ProcessRunner",
    "Rejection",
    "Schedule",
    "Send",
]

P = TypeVar("P", bound="ProcessManager")


@dataclass(frozen=True)
class Send:
    """Send ``command`` to the aggregate ``aggregate_id`` of ``aggregate_cls`` (a class or a ``Decider``)."""

    aggregate_cls: type[Aggregate] | AggregateSource
    aggregate_id: str
    command: Command

    @property
    def aggregate_type(self) -> str:
        return aggregate_class(self.aggregate_cls).aggregate_type

    def __repr__(self) -> str:
        target = aggregate_class(self.aggregate_cls).__qualname__
        return f"Send({target}, {self.aggregate_id!r}, {self.command!r})"


@dataclass(frozen=True)
class Schedule:
    """Send ``send`` later: ``at`` a time, or ``after`` a delay counted from the
    ``recorded_at`` of the event being reacted to. One pending schedule per name
    and instance: scheduling a name again replaces it."""

    name: str
    _: KW_ONLY
    at: datetime | None = None
    after: timedelta | None = None
    send: Send

    def __post_init__(self) -> None:
        if (self.at is None) == (self.after is None):
            raise ConfigurationError(f"Schedule({self.name!r}) needs exactly one of at= or after=")
        if self.at is not None and self.at.tzinfo is None:
            raise ConfigurationError(
                f"Schedule({self.name!r}, at={self.at.isoformat()}) has no timezone; "
                "pass an aware datetime, e.g. datetime(..., tzinfo=UTC)"
            )
        if self.after is not None and self.after < timedelta(0):
            raise ConfigurationError(f"Schedule({self.name!r}, after={self.after!r}) is negative")
        if not isinstance(self.send, Send):
            raise ConfigurationError(f"Schedule({self.name!r}, send=...) takes a Send, not {self.send!r}")

    def due(self, since: datetime) -> datetime:
        """When it is due, for a schedule made at ``since``."""
        moment = self.at if self.at is not None else since + (self.after or timedelta(0))
        return moment.astimezone(UTC)


@dataclass(frozen=True)
class CancelSchedule:
    """Cancel this instance's pending schedule called ``name`` (nothing happens if there is none)."""

    name: str


Action: TypeAlias = Send | Schedule | CancelSchedule
"""What ``react`` and ``on_rejected`` return a list of."""


@dataclass(frozen=True)
class Deadline:
    """A pending schedule of one process instance, as ``ProcessRunner.pending()`` lists it."""

    process_id: str
    name: str
    due_at: datetime
    send: Send


@dataclass(frozen=True)
class Rejection:
    """A command a runner sent that the domain rejected, and that ``on_rejected`` did not handle."""

    process_id: str
    send: Send
    error: UserError
    command_id: str


class ProcessManager(BaseModel):
    """One instance of a process; its fields (all with defaults) are its state.

    Override ``route`` (a classmethod: the instance an event concerns, or None),
    ``react`` (the actions an event calls for; it sees the state before
    ``apply``) and ``apply`` (change the state). ``react`` must depend only on
    the state and the event: a repeated batch must send the same commands.
    Override ``on_rejected(send, error)`` to answer a command the domain
    rejected (a compensation); without it, rejections are listed in
    ``ProcessRunner.failures``.
    """

    model_config = ConfigDict(extra="forbid")

    process_type: ClassVar[str] = "ProcessManager"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "process_type" not in cls.__dict__:
            cls.process_type = cls.__name__

    @classmethod
    def route(cls, envelope: EventEnvelope) -> str | None:
        """The id of the instance ``envelope`` concerns, or None when it concerns none."""
        raise TypeError(f"{cls.__name__} does not override route()")

    def react(self, envelope: EventEnvelope) -> list[Action]:
        """What to do about ``envelope``; called before ``apply``."""
        return []

    def apply(self, envelope: EventEnvelope) -> None:
        """Change the state by one event (default: no state to change)."""

    def on_rejected(self, send: Send, error: UserError) -> list[Action]:
        """What to do when the domain rejected ``send`` (override it; by default the
        rejection is recorded in ``ProcessRunner.failures``)."""
        return []

    def _repr_html_(self) -> str:
        from cqrs_lab._render import model_html

        return model_html(self, type(self).__qualname__)


def _handles_rejections(process_cls: type[ProcessManager]) -> bool:
    return process_cls.on_rejected is not ProcessManager.on_rejected


def _actions(process_cls: type[ProcessManager], method: str, value: object) -> list[Action]:
    if value is None:
        return []
    actions = list(value) if isinstance(value, list | tuple) else None
    if actions is None or not all(isinstance(a, Send | Schedule | CancelSchedule) for a in actions):
        raise TechnicalError(
            f"{process_cls.__qualname__}.{method} returned {value!r}: it must return a list of "
            "Send, Schedule and CancelSchedule. Nothing of this batch was committed."
        )
    return actions


@dataclass
class _Batch(Generic[P]):
    """What one batch changes: instance states, and deadlines set (a row) or removed (None)."""

    states: dict[str, tuple[int, P]]
    deadlines: dict[tuple[str, str], StoredDeadline | None] = field(default_factory=dict)


class ProcessRunner(Generic[P]):
    """Runs ``process_cls`` over ``event_store``'s log, sending commands through ``frameworks``.

    ``name`` (default: the class name) names the runner's checkpoint, states and
    deadlines in ``query_store``; it shares the checkpoint names of projections.
    ``run_once()`` handles every event after the checkpoint (including those its
    own commands caused), ``fire_due()`` sends the commands whose deadline has
    passed. Run one runner per name at a time; a second one's commit is refused
    with ``ConcurrencyError`` rather than applied twice.
    """

    def __init__(
        self,
        process_cls: type[P],
        event_store: EventStore,
        query_store: QueryStore,
        frameworks: Sequence[CqrsFramework[Any]],
        *,
        clock: Clock | None = None,
        name: str | None = None,
        batch_size: int = 100,
    ) -> None:
        if not (isinstance(process_cls, type) and issubclass(process_cls, ProcessManager)):
            raise ConfigurationError(f"ProcessRunner needs a ProcessManager subclass, not {process_cls!r}")
        if not isinstance(query_store, ProcessStore):
            raise ConfigurationError(
                f"{query_store!r} cannot keep process states and deadlines: use a cqrs_lab query store "
                "(MemoryQueryStore, DuckDBQueryStore, PostgresQueryStore)"
            )
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be 1 or more, not {batch_size}")
        self.process_cls = process_cls
        self.event_store = event_store
        self.query_store: ProcessStore = query_store
        self.name = validate_identifier(process_cls.__name__ if name is None else name, "process runner name")
        self.clock: Clock = clock or system_clock
        self.batch_size = batch_size
        self.frameworks: dict[str, CqrsFramework[Any]] = {}
        for framework in frameworks:
            if framework.aggregate_type in self.frameworks:
                raise ConfigurationError(
                    f"two frameworks for aggregate type {framework.aggregate_type!r}: give the runner one"
                )
            self.frameworks[framework.aggregate_type] = framework
        self.failures: list[Rejection] = []
        """Rejected commands that ``on_rejected`` did not handle, in the order they happened."""

    # -- reading -------------------------------------------------------------
    @property
    def position(self) -> int:
        """The global position of the last event this runner handled."""
        return self.query_store.load_checkpoint(self.name)

    def state(self, process_id: str) -> P:
        """The state of one instance (a fresh one when it has seen no event)."""
        return self._load([process_id])[process_id][1]

    def pending(self) -> list[Deadline]:
        """Every pending deadline, the soonest first."""
        return [
            Deadline(d.process_id, d.deadline, d.due_at.astimezone(UTC), self._send_of(d))
            for d in self.query_store.load_deadlines(self.name)
        ]

    # -- running -------------------------------------------------------------
    def run_once(self, *, limit: int | None = None, progress: Progress | None = None) -> int:
        """Handle every event after the checkpoint, a batch per transaction; returns how
        many events concerned an instance (``route`` gave an id).

        ``limit`` bounds how many events it reads (a ``ProjectionWorker`` reads a
        batch at a time); ``progress`` is called with the number read after each batch.
        """
        handled = 0
        left = limit
        position = self.position
        while left is None or left > 0:
            size = self.batch_size if left is None else min(self.batch_size, left)
            batch = list(islice(self.event_store.read_all(position, batch_size=size), size))
            if not batch:
                break
            handled += self._run_batch(position, batch)
            position = batch[-1].position
            if left is not None:
                left -= len(batch)
            if progress is not None:
                progress(len(batch))
        return handled

    def _run_batch(self, position: int, batch: list[EventEnvelope]) -> int:
        routed = [(e, pid) for e in batch if (pid := self.process_cls.route(e)) is not None]
        work: _Batch[P] = _Batch(self._load(pid for _, pid in routed))
        for envelope, pid in routed:
            process = work.states[pid][1]
            actions = _actions(self.process_cls, "react", process.react(envelope))
            process.apply(envelope)
            metadata = {**caused_by(envelope), "process": self.name, "process_id": pid}
            self._perform(work, pid, actions, envelope.event_id, metadata, envelope.recorded_at)
        self._commit(work, checkpoint=(position, batch[-1].position))
        return len(routed)

    def fire_due(self, now: datetime | None = None) -> int:
        """Send the command of every deadline due at ``now`` (default: the clock), soonest
        first; returns how many fired. Call ``run_once()`` before, so that the schedules
        cancelled by events already in the log are cancelled first."""
        moment = self.clock() if now is None else now
        if moment.tzinfo is None:
            raise ConfigurationError(f"fire_due(now={moment.isoformat()}) needs an aware datetime")
        due = self.query_store.load_deadlines(self.name, due_by=moment)
        if not due:
            return 0
        work: _Batch[P] = _Batch(self._load(d.process_id for d in due))
        for deadline in due:
            work.deadlines[(deadline.process_id, deadline.deadline)] = None
            metadata = decode_metadata(deadline.metadata, self._where(deadline))
            metadata.pop("rejected_command", None)  # scheduled by on_rejected: sent now by the deadline
            metadata["deadline"] = deadline.deadline
            self._send(
                work,
                deadline.process_id,
                self._send_of(deadline),
                deadline.origin,
                metadata,
                deadline.due_at.astimezone(UTC),
            )
        self._commit(work, checkpoint=None)
        return len(due)

    # -- what a reaction does ---------------------------------------------------
    def _perform(
        self,
        work: _Batch[P],
        pid: str,
        actions: list[Action],
        cause: str,
        metadata: dict[str, str],
        since: datetime,
    ) -> None:
        """Carry out ``actions`` of instance ``pid``; ``cause`` names what they answer
        (an event id, or a rejected command's place), and makes their command ids."""
        for index, action in enumerate(actions):
            origin = f"{cause}/{index}"
            if isinstance(action, Send):
                self._send(work, pid, action, origin, metadata, since)
            elif isinstance(action, Schedule):
                self._framework(action.send)  # fail now, not when it is due
                command = action.send.command
                work.deadlines[(pid, action.name)] = StoredDeadline(
                    name=self.name,
                    process_id=pid,
                    deadline=action.name,
                    due_at=action.due(since),
                    origin=origin,
                    aggregate_type=action.send.aggregate_type,
                    aggregate_id=action.send.aggregate_id,
                    command_type=command_class_name(type(command)),
                    command=command.model_dump_json(),
                    metadata=encode_metadata(metadata),
                )
            else:
                work.deadlines[(pid, action.name)] = None

    def _send(
        self, work: _Batch[P], pid: str, send: Send, origin: str, metadata: dict[str, str], since: datetime
    ) -> None:
        command_id = f"{self.name}/{pid}/{origin}"
        framework = self._framework(send)
        try:
            framework.execute_with_metadata(send.aggregate_id, send.command, metadata, command_id)
        except UserError as error:
            if not _handles_rejections(self.process_cls):
                self.failures.append(Rejection(pid, send, error, command_id))
                return
            process = work.states[pid][1]
            actions = _actions(self.process_cls, "on_rejected", process.on_rejected(send, error))
            answer = {**metadata, "rejected_command": type(send.command).__name__}
            self._perform(work, pid, actions, origin, answer, since)

    def _framework(self, send: Send) -> CqrsFramework[Any]:
        framework = self.frameworks.get(send.aggregate_type)
        if framework is None:
            known = ", ".join(sorted(self.frameworks)) or "none"
            raise ConfigurationError(
                f"process runner {self.name!r} has no framework for {send.aggregate_type!r} to send "
                f"{type(send.command).__name__} to (it has: {known}); pass one in frameworks=[...]"
            )
        return framework

    # -- storage -----------------------------------------------------------------
    def _load(self, process_ids: Iterable[str]) -> dict[str, tuple[int, P]]:
        """The stored version and state of each instance (version 0 and a fresh state when new)."""
        wanted = list(dict.fromkeys(process_ids))
        stored_states = self.query_store.load_processes(self.name, wanted) if wanted else []
        found = {s.process_id: s for s in stored_states}
        states: dict[str, tuple[int, P]] = {}
        for pid in wanted:
            stored = found.get(pid)
            if stored is None:
                states[pid] = (0, self.process_cls())
                continue
            try:
                states[pid] = (stored.version, self.process_cls.model_validate_json(stored.payload))
            except ValidationError as exc:
                raise CorruptRecordError(
                    f"the state of process {self.name}/{pid} (version {stored.version}) does not decode "
                    f"as {self.process_cls.__qualname__}: {exc}. Fix the class (fields need defaults), "
                    "or the row in the processes table."
                ) from exc
        return states

    def _commit(self, work: _Batch[P], checkpoint: tuple[int, int] | None) -> None:
        states = [
            StoredProcess(self.name, pid, version + 1, process.model_dump_json())
            for pid, (version, process) in work.states.items()
        ]
        self.query_store.commit_processes(
            self.name,
            states,
            deadlines=[d for d in work.deadlines.values() if d is not None],
            cancelled=[key for key, d in work.deadlines.items() if d is None],
            checkpoint=checkpoint,
        )

    def _where(self, deadline: StoredDeadline) -> str:
        return f"deadline {deadline.deadline!r} of process {self.name}/{deadline.process_id}"

    def _send_of(self, deadline: StoredDeadline) -> Send:
        """The ``Send`` a stored deadline holds."""
        cls = command_class(deadline.command_type)
        if cls is None:
            raise CorruptRecordError(
                f"{self._where(deadline)}: its command class {deadline.command_type} is not defined in "
                "this process. Import the module that defines it before firing deadlines."
            )
        try:
            command = cls.model_validate_json(deadline.command)
        except ValidationError as exc:
            raise CorruptRecordError(
                f"{self._where(deadline)}: the stored command does not decode as {cls.__qualname__}: {exc}"
            ) from exc
        framework = self.frameworks.get(deadline.aggregate_type)
        if framework is None:
            raise ConfigurationError(
                f"{self._where(deadline)} sends to {deadline.aggregate_type!r}, and the runner has no "
                "framework for it; pass one in frameworks=[...]"
            )
        target = framework.decider if framework.decider is not None else framework.aggregate_cls
        return Send(target, deadline.aggregate_id, command)

    def __repr__(self) -> str:
        return f"ProcessRunner({self.process_cls.__qualname__}, name={self.name!r})"
