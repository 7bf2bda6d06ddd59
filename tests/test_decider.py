"""Deciders: an aggregate as decide / evolve / initial_state, wherever an aggregate class goes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from cqrs_lab import (
    Aggregate,
    Command,
    ConfigurationError,
    CqrsFramework,
    Decider,
    Event,
    TechnicalError,
    TestFramework,
    UserError,
)
from cqrs_lab.examples.checkout import (
    CancelOrder,
    ConfirmOrder,
    Order,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderState,
    PlaceOrder,
    order_decider,
)
from cqrs_lab.testing import SpecFailed
from tests.conftest import Backend


class TallyState(BaseModel):
    total: int = 0
    history: list[int] = []


class Add(Command):
    n: int


class Added(Event):
    event_type = "decider.Added"
    n: int


def decide(command: Add, state: TallyState) -> list[Event]:
    if command.n < 0:
        raise UserError("only positive numbers", code="negative")
    return [Added(n=command.n)]


def evolve(state: TallyState, event: Added) -> TallyState:
    return TallyState(total=state.total + event.n, history=[*state.history, event.n])


tally = Decider("Tally", initial_state=TallyState(total=100), decide=decide, evolve=evolve)


def test_a_framework_on_a_decider_loads_the_state(backend: Backend) -> None:
    fw = CqrsFramework(tally, backend.event_store())
    [added] = fw.execute("t", Add(n=5))
    assert added.aggregate_type == "Tally" and added.payload == Added(n=5)
    fw.execute("t", Add(n=2))
    assert fw.load("t") == TallyState(total=107, history=[5, 2])
    assert fw.load("never") == TallyState(total=100)  # the initial state, not TallyState()
    with pytest.raises(UserError, match="only positive numbers"):
        fw.execute("t", Add(n=-1))


@pytest.mark.parametrize("cache_size", [0, 256])
def test_the_loaded_state_is_a_copy_whatever_the_cache(backend: Backend, cache_size: int) -> None:
    fw = CqrsFramework(tally, backend.event_store(), cache_size=cache_size)
    fw.execute("t", Add(n=1))
    fw.load("t").history.append(999)
    fw.execute("t", Add(n=2))
    assert fw.load("t") == TallyState(total=103, history=[1, 2])
    assert tally.initial_state == TallyState(total=100)


def test_snapshots_hold_the_states_json_and_load_back(backend: Backend) -> None:
    store = backend.event_store()
    fw = CqrsFramework(tally, store, snapshot_every=2)
    for n in (1, 2, 3):
        fw.execute("t", Add(n=n))
    snapshot = store.load_snapshot("Tally", "t")
    assert snapshot.version == 2
    assert TallyState.model_validate_json(snapshot.payload) == TallyState(total=103, history=[1, 2])
    fresh = CqrsFramework(tally, store, snapshot_every=2, cache_size=0)
    assert fresh.load("t") == TallyState(total=106, history=[1, 2, 3])


def test_a_decider_and_an_aggregate_of_one_type_share_their_streams(backend: Backend) -> None:
    store = backend.event_store()
    aggregate = CqrsFramework(Order, store)
    decider = CqrsFramework(order_decider, store)
    aggregate.execute("O-1", PlaceOrder(order_id="O-1", amount=Decimal("5.00")))
    decider.execute("O-1", ConfirmOrder())
    assert decider.load("O-1") == OrderState(order_id="O-1", amount=Decimal("5.00"), status="confirmed")
    assert aggregate.load("O-1").status == "confirmed"
    assert aggregate.events("O-1") == decider.events("O-1")


def test_test_framework_takes_a_decider() -> None:
    placed = OrderPlaced(order_id="O-1", amount=Decimal("5.00"))
    result = (
        TestFramework(order_decider)
        .given([placed])
        .when(ConfirmOrder())
        .then_expect_events([OrderConfirmed(order_id="O-1")])
    )
    assert result.title == "Order: ConfirmOrder"
    (
        TestFramework(order_decider)
        .given([placed, OrderCancelled(order_id="O-1", reason="unpaid")])
        .when(ConfirmOrder())
        .then_expect_error("order is cancelled", code="cancelled")
    )
    with pytest.raises(SpecFailed):
        TestFramework(order_decider).given([placed]).when(CancelOrder(reason="x")).then_expect_events([])


def test_evolve_that_returns_no_state_fails_the_load_with_a_technical_error(backend: Backend) -> None:
    broken = Decider("Tally", initial_state=TallyState(), decide=decide, evolve=lambda state, event: None)
    CqrsFramework(tally, store := backend.event_store()).execute("t", Add(n=1))
    with pytest.raises(TechnicalError, match="evolve returned None, not a TallyState"):
        CqrsFramework(broken, store, cache_size=0).load("t")


@pytest.mark.parametrize("thing", [TallyState(), Order(), "Order", 3])
def test_only_aggregate_classes_and_deciders_make_a_framework(thing: Any) -> None:
    from cqrs_lab import MemoryEventStore

    with pytest.raises(ConfigurationError, match="Aggregate subclass or a Decider"):
        CqrsFramework(thing, MemoryEventStore())


def test_a_decider_needs_a_pydantic_initial_state() -> None:
    with pytest.raises(ConfigurationError, match="initial_state must be a pydantic model"):
        Decider("X", initial_state={"total": 0}, decide=decide, evolve=evolve)  # type: ignore[type-var]


def test_the_decider_runs_as_an_aggregate_class() -> None:
    assert issubclass(tally.aggregate_cls, Aggregate)
    assert tally.aggregate_cls.aggregate_type == "Tally"
    assert repr(tally.aggregate_cls()) == "Tally(total=100, history=[])"  # the initial state's values
    assert tally.aggregate_cls().state() == tally.initial_state


def test_the_notebook_helpers_take_a_decider_and_show_its_state() -> None:
    from cqrs_lab import MemoryEventStore
    from cqrs_lab.notebook import CommandStepper, state_at, state_history, step_through, timeline

    store = MemoryEventStore()
    orders = CqrsFramework(order_decider, store)
    orders.execute("O-1", PlaceOrder(order_id="O-1", amount=Decimal("5.00")))
    orders.execute("O-1", CancelOrder(reason="unpaid"))
    events = orders.events("O-1")
    frame = state_history(order_decider, events)
    assert list(frame.columns) == ["sequence", "event_type", "order_id", "amount", "status"]
    assert frame.equals(state_history(Order, events))
    assert state_at(order_decider, events, sequence=1) == OrderState(
        order_id="O-1", amount=Decimal("5.00"), status="placed"
    )
    [step] = step_through(order_decider, [ConfirmOrder()], given=events)
    assert step.error is not None and step.error.code == "cancelled"
    stepper = CommandStepper(orders, [CancelOrder(reason="again")], aggregate_id="O-1")
    stepper.go(1)
    assert stepper.current is not None and stepper.current.events == []
    drawn = timeline(orders)
    assert [lane.name for lane in drawn.lanes] == ["Order/O-1"]
    assert "OrderCancelled" in drawn._repr_html_()
