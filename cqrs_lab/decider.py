"""``Decider``: an aggregate written as three values (Jérémie Chassaing's functional style).

``decide(command, state) -> list[Event]`` takes the decisions (raise ``UserError``
to reject), ``evolve(state, event) -> state`` returns the next state without
changing the one it was given, and ``initial_state`` is the state before any
event. A ``Decider`` is accepted wherever an aggregate class is
(``CqrsFramework``, ``TestFramework``, the notebook helpers): it runs as an
``Aggregate`` subclass (``decider.aggregate_cls``) with the state's fields, so
it is stored, snapshotted and shown exactly as its state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from copy import deepcopy
from functools import partial
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, Field, create_model

from cqrs_lab.domain import Aggregate, Command, Event
from cqrs_lab.errors import ConfigurationError

__all__ = ["Decider", "DeciderAggregate"]

S = TypeVar("S", bound=BaseModel)


class DeciderAggregate(Aggregate):
    """The ``Aggregate`` that runs a ``Decider``: its fields are the decider's state's fields
    (their defaults, the initial state's values)."""

    _decider: ClassVar[Decider[Any]]

    def state(self) -> BaseModel:
        """This aggregate's state as the decider's state model."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return cast(BaseModel, self._decider.state_cls.model_construct(**values))

    def handle(self, command: Command) -> list[Event]:
        return list(self._decider.decide(command, self.state()) or [])

    def apply(self, event: Event) -> None:
        state = self._decider.evolve(self.state(), event)
        if not isinstance(state, self._decider.state_cls):
            raise TypeError(
                f"evolve returned {state!r}, not a {self._decider.state_cls.__qualname__}: it must "
                "return the new state"
            )
        for name in type(self).model_fields:
            setattr(self, name, getattr(state, name))


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
        fields: dict[str, Any] = {
            field: (info.annotation, Field(default_factory=partial(deepcopy, getattr(initial_state, field))))
            for field, info in self.state_cls.model_fields.items()
        }
        clash = sorted(set(fields) & {"handle", "apply", "state", "aggregate_type"})
        if clash:
            raise ConfigurationError(
                f"Decider {name!r}: the state's field(s) {', '.join(clash)} would hide the aggregate's "
                "methods; rename them"
            )
        aggregate_cls = create_model(
            name,
            __base__=DeciderAggregate,
            __module__=getattr(decide, "__module__", __name__),
            **fields,
        )
        aggregate_cls.__qualname__ = name
        aggregate_cls._decider = self
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
        return cast(S, cast(DeciderAggregate, aggregate).state())

    def __repr__(self) -> str:
        return f"Decider({self.name!r}, initial_state={self.initial_state!r})"
