"""The cqrs_lab error tree.

Every error a user can cause comes back as one of these, with a message that
says what happened and what to do::

    CqrsLabError
    ├── AggregateError                 errors of executing a command
    │   ├── UserError                  the command was rejected by the domain (.payload)
    │   ├── ConcurrencyError           a stale writer lost the race; safe to retry
    │   ├── DispatchError              events committed, a dispatcher failed (.envelopes)
    │   ├── DuplicateCommandError      a command id already names another command
    │   └── TechnicalError             anything else; ``__cause__`` holds the original
    │       └── StoreError             a store could not do what was asked (permanent: disk
    │           │                          full, no permission, a timeout; the message says what)
    │           ├── StoreUnavailableError   transient: server down, connection lost, pool
    │           │   │                       exhausted; or a path that is not a store
    │           │   └── StoreLockedError    a DuckDB file held by another process
    │           ├── UnstorableEventError    an event the store could not keep and read back
    │           │                          (too deep, too large, not JSON); nothing was stored
    │           ├── CorruptRecordError      a row (stored, or in an import) that is not a valid event
    │           │   ├── UnknownEventTypeError  an event type no class is registered for
    │           │   └── InvalidImportError     an import's input breaks a rule; nothing was imported
    │           └── SchemaVersionError      a database written by a newer cqrs_lab (or DuckDB)
    ├── ProjectionLagError (also TimeoutError)  ``Projection.wait_for`` timed out
    └── ConfigurationError (also ValueError)  bad arguments: a hostile schema name, ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from cqrs_lab.envelope import EventEnvelope

__all__ = [
    "AggregateError",
    "ConcurrencyError",
    "ConfigurationError",
    "CorruptRecordError",
    "CqrsLabError",
    "DispatchError",
    "DuplicateCommandError",
    "InvalidImportError",
    "ProjectionLagError",
    "SchemaVersionError",
    "StoreError",
    "StoreLockedError",
    "StoreUnavailableError",
    "TechnicalError",
    "UnknownEventTypeError",
    "UnstorableEventError",
    "UserError",
    "UserErrorPayload",
]


class UserErrorPayload(BaseModel):
    """What a rejected command tells its caller; JSON-serializable."""

    model_config = ConfigDict(frozen=True)

    code: str | None = None
    message: str | None = None
    params: dict[str, str] = Field(default_factory=dict)


class CqrsLabError(Exception):
    """Base of every exception raised by cqrs_lab."""


class AggregateError(CqrsLabError):
    """Base of the errors of executing a command (the seed's ``AggregateError``)."""


class UserError(AggregateError):
    """The domain rejected a command. Raise it from ``Aggregate.handle``."""

    def __init__(
        self,
        message: str,
        code: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.payload = UserErrorPayload(
            code=code,
            message=message,
            params={str(k): str(v) for k, v in (params or {}).items()},
        )

    @property
    def message(self) -> str:
        return self.payload.message or ""

    @property
    def code(self) -> str | None:
        return self.payload.code

    def __repr__(self) -> str:
        return f"UserError({self.message!r}, code={self.code!r})"


class ConcurrencyError(AggregateError):
    """Another writer committed first; reload and try again (``retries=N`` does it)."""


class TechnicalError(AggregateError):
    """A failure that is not the domain's: see ``__cause__`` for the original."""


class DispatchError(AggregateError):
    """The events were committed, but one or more dispatchers failed.

    ``envelopes`` holds what was committed; ``failures`` maps each failed
    dispatcher's name to its exception. The commit is not undone.
    """

    def __init__(
        self,
        envelopes: Sequence[EventEnvelope],
        failures: Sequence[tuple[str, BaseException]],
    ) -> None:
        names = ", ".join(name for name, _ in failures)
        details = "; ".join(f"{name}: {exc!r}" for name, exc in failures)
        super().__init__(
            f"{len(envelopes)} event(s) were committed, but dispatcher(s) {names} failed "
            f"({details}). The events are safe in the store; re-run the failed "
            "projections from the log (Projection.run) to catch them up."
        )
        self.envelopes = list(envelopes)
        self.failures = list(failures)


class DuplicateCommandError(AggregateError):
    """A ``command_id`` already committed on the aggregate named a different command.

    Nothing was handled or committed. ``command_id`` is the id in question.
    """

    def __init__(self, message: str, command_id: str) -> None:
        super().__init__(message)
        self.command_id = command_id


class StoreError(TechnicalError):
    """A store could not do what was asked, and retrying as it is will not help.

    The message says what (disk full, no permission, a statement or lock timeout,
    a database invalidated by an earlier failure) and what to do about it.
    """


class StoreUnavailableError(StoreError):
    """The store cannot be reached or opened: the server is down, the connection was
    lost, no pooled connection became free, or the path is not a store (a missing
    folder, a file that is not a database). Retrying later may succeed."""


class StoreLockedError(StoreUnavailableError):
    """Another process holds the database file for writing."""


class UnstorableEventError(StoreError):
    """An event this store cannot keep and read back exactly: its payload does not
    decode again, is nested too deeply or is too large, a text holds an unpaired
    surrogate, metadata is not a map of strings, an aggregate id is too long...
    Nothing of the commit was stored; the message names the event and the reason."""


class CorruptRecordError(StoreError):
    """A row that is not a valid event: a stored row that cannot be decoded (the row
    is left untouched), or a row of an import's input."""


class UnknownEventTypeError(CorruptRecordError):
    """A stored event has a type (or version) no registered class can decode."""


class InvalidImportError(CorruptRecordError):
    """The input of an import breaks a rule: a missing column, a value of the wrong
    type, a payload that is not a JSON object, a sequence that is not positive, that
    repeats, skips, or does not continue the stored stream. The message names the
    row (or line) and column; nothing was imported."""


class SchemaVersionError(StoreError):
    """The database was written by a newer cqrs_lab, or by a DuckDB release the installed one cannot read."""


class ProjectionLagError(CqrsLabError, TimeoutError):
    """``Projection.wait_for`` gave up: the projection had not reached the position in time.

    ``position`` is what was waited for, ``reached`` the projection's checkpoint
    when the wait ended, ``behind`` the difference.
    """

    def __init__(self, name: str, position: int, reached: int, timeout: float | None) -> None:
        self.name = name
        self.position = position
        self.reached = reached
        self.behind = position - reached
        super().__init__(
            f"projection {name!r} is {self.behind} position(s) behind after waiting {timeout}s: it has "
            f"applied the log up to position {reached}, not yet {position}. Is a worker running it "
            "(cqrs-lab project, ProjectionWorker, or Projection.run)? Wait longer, or check its log."
        )


class ConfigurationError(CqrsLabError, ValueError):
    """An argument is not acceptable (e.g. a schema name that is not an identifier)."""
