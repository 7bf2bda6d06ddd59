"""Domain base classes: ``Command``, ``Event``, ``Aggregate`` and ``Query``.

All four are pydantic v2 models. Commands and events are frozen (immutable
facts and requests); aggregates and queries hold mutable state that
``apply`` and ``update`` change in place.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from cqrs_lab.errors import ConfigurationError

if TYPE_CHECKING:
    from cqrs_lab.envelope import EventEnvelope

__all__ = [
    "Aggregate",
    "AggregateSource",
    "Command",
    "Event",
    "Query",
    "aggregate_class",
    "command_class",
    "command_class_name",
]

_COMMANDS: weakref.WeakValueDictionary[str, type[Command]] = weakref.WeakValueDictionary()


class Command(BaseModel):
    """A request to change an aggregate (the seed's ``ICommand``).

    Subclasses are known by ``command_class_name`` (module and qualified name),
    so a command stored for later (a process manager's deadline) can be decoded
    by the process that fires it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _COMMANDS[command_class_name(cls)] = cls


def command_class_name(cls: type[Command]) -> str:
    """``module.QualifiedName`` of a command class: how stored commands name their class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def command_class(name: str) -> type[Command] | None:
    """The command class named ``name`` (see ``command_class_name``), if it is defined in this process."""
    return _COMMANDS.get(name)


class Event(BaseModel):
    """A fact that happened to an aggregate (the seed's ``IEvent``).

    ``event_type`` defaults to the class name and ``event_version`` to ``"1.0"``;
    both are stored with every event. Subclasses register themselves with the
    default codec, so a store can decode them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

    event_type: ClassVar[str] = "Event"
    event_version: ClassVar[str] = "1.0"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            cls.event_type = cls.__name__
        from cqrs_lab.codec import default_codec

        default_codec.register(cls)


class Aggregate(BaseModel):
    """State plus business rules (the seed's ``IAggregate`` and its handlers).

    Every field needs a default: an aggregate is rebuilt by applying its events
    to ``cls()``. ``handle`` decides (returns events or raises ``UserError``) and
    must not change state; ``apply`` changes state and must not fail.
    """

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

    aggregate_type: ClassVar[str] = "Aggregate"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "aggregate_type" not in cls.__dict__:
            cls.aggregate_type = cls.__name__

    def handle(self, command: Command) -> list[Event]:
        """Decide what ``command`` means here: return the events, or raise ``UserError``."""
        raise TypeError(f"{type(self).__name__} does not override handle()")

    def apply(self, event: Event) -> None:
        """Change state by one event."""
        raise TypeError(f"{type(self).__name__} does not override apply()")

    def _repr_html_(self) -> str:
        from cqrs_lab._render import model_html

        return model_html(self, type(self).__qualname__)


class Query(BaseModel):
    """A read model (view) kept up to date from events (the seed's ``IQuery``).

    Every field needs a default: a view starts as ``cls()`` at version 0.
    """

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

    query_type: ClassVar[str] = "Query"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "query_type" not in cls.__dict__:
            cls.query_type = cls.__name__

    def update(self, envelope: EventEnvelope) -> None:
        """Change the view by one committed event."""
        raise TypeError(f"{type(self).__name__} does not override update()")

    def _repr_html_(self) -> str:
        from cqrs_lab._render import model_html

        return model_html(self, type(self).__qualname__)


@runtime_checkable
class AggregateSource(Protocol):
    """What stands in for an ``Aggregate`` class (``cqrs_lab.Decider`` does).

    ``aggregate_cls`` is the ``Aggregate`` subclass that runs it, so code written
    for aggregate classes runs it unchanged; ``state_of`` takes the state a user
    sees out of one of its aggregates.
    """

    @property
    def aggregate_cls(self) -> type[Aggregate]: ...

    def state_of(self, aggregate: Aggregate) -> Any: ...


def aggregate_class(model: type[Aggregate] | AggregateSource) -> type[Aggregate]:
    """The ``Aggregate`` subclass behind ``model``: itself, or a ``Decider``'s."""
    if isinstance(model, type) and issubclass(model, Aggregate):
        return model
    if isinstance(model, AggregateSource):
        return model.aggregate_cls
    raise ConfigurationError(
        f"expected an Aggregate subclass or a Decider, not {model!r}: pass the class itself "
        "(BankAccount, not BankAccount()) or a cqrs_lab.Decider"
    )
