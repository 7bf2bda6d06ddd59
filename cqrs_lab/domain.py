"""Domain base classes: ``Command``, ``Event``, ``Aggregate`` and ``Query``.

All four are pydantic v2 models. Commands and events are frozen (immutable
facts and requests); aggregates and queries hold mutable state that
``apply`` and ``update`` change in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from cqrs_lab.envelope import EventEnvelope

__all__ = ["Aggregate", "Command", "Event", "Query"]


class Command(BaseModel):
    """A request to change an aggregate (the seed's ``ICommand``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


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
