"""``Decider``: an aggregate written as three values (Jérémie Chassaing's functional style).

``decide(command, state) -> list[Event]`` takes the decisions (raise ``UserError``
to reject), ``evolve(state, event) -> state`` returns the next state without
changing the one it was given, and ``initial_state`` is the state before any
event. A ``Decider`` is accepted wherever an aggregate class is
(``CqrsFramework``, ``TestFramework``, the notebook helpers): it runs as an
``Aggregate`` subclass (``decider.aggregate_cls``) whose one field holds the
state, stored and snapshotted as the state's own JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    create_model,
    model_serializer,
    model_validator,
)

from cqrs_lab.domain import Aggregate, Command, Event
from cqrs_lab.errors import ConfigurationError

__all__ = ["Decider", "DeciderAggregate"]

S = TypeVar("S", bound=BaseModel)


class DeciderAggregate(Aggregate):
    """The ``Aggregate`` that runs a ``Decider``: ``state`` is the decider's state.

    Its JSON (in snapshots) is the state's JSON, and it validates from it.
    """

    decider: ClassVar[Decider[Any]]
    state: Any = None

    @model_validator(mode="before")
    @classmethod
    def _from_state(cls, data: Any) -> Any:
        # cls() (no arguments) starts from a copy of the initial state; anything else is a state
        return data if isinstance(data, dict) and not data else {"state": data}

    @model_serializer(mode="wrap")
    def _as_state(self, handler: SerializerFunctionWrapHandler) -> Any:
        return handler(self)["state"]

    def handle(self, command: Command) -> list[Event]:
        return list(self.decider.decide(command, self.state) or [])

    def apply(self, event: Event) -> None:
        state = self.decider.evolve(self.state, event)
        if not isinstance(state, self.decider.state_cls):
            raise TypeError(
                f"evolve returned {state!r}, not a {self.decider.state_cls.__qualname__}: it must "
                "return the new state"
            )
        self.state = state

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}({self.state!r})"

    def _repr_html_(self) -> str:
        from cqrs_lab._render import model_html

        return model_html(self.state, type(self).__qualname__)


class Decider(Generic[S]):
    """An aggregate as ``decide``, ``evolve`` and ``initial_state`` (a pydantic model).

    ``name`` is its aggregate type (how its streams are stored). With a
    ``CqrsFramework``, ``load`` returns the state; snapshots and the aggregate
    cache work as for aggregate classes.
    """

    def __init__(
        self,
        name: str,
        *,
        initial_state: S,
        decide: Callable[[Any, S], Sequence[Event]],
        evolve: Callable[[S, Any], S],
    ) -> None:
        if not isinstance(initial_state, BaseModel):
            raise ConfigurationError(
                f"Decider {name!r}: initial_state must be a pydantic model instance, not {initial_state!r}"
            )
        self.name = name
        self.initial_state = initial_state
        self.decide = decide
        self.evolve = evolve
        self.state_cls: type[S] = type(initial_state)
        start = initial_state.model_copy(deep=True)
        aggregate_cls = create_model(
            name,
            __base__=DeciderAggregate,
            state=(self.state_cls, Field(default_factory=lambda: start.model_copy(deep=True))),
        )
        aggregate_cls.__qualname__ = name
        aggregate_cls.__module__ = getattr(decide, "__module__", __name__)
        aggregate_cls.decider = self
        self._aggregate_cls = aggregate_cls

    @property
    def aggregate_cls(self) -> type[DeciderAggregate]:
        """The ``Aggregate`` subclass that runs this decider (its ``aggregate_type`` is ``name``)."""
        return self._aggregate_cls

    @property
    def aggregate_type(self) -> str:
        return self.name

    def state_of(self, aggregate: Aggregate) -> S:
        """The state held by one of this decider's aggregates."""
        return cast(S, cast(DeciderAggregate, aggregate).state)

    def __repr__(self) -> str:
        return f"Decider({self.name!r}, initial_state={self.initial_state!r})"
