"""step_through_process (pure) and the ProcessStepper widget, driven headlessly: an event in,
commands out, their events; deadlines on the clock; a static copy of every step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cqrs_lab import (
    ConfigurationError,
    CqrsFramework,
    EventEnvelope,
    FixedClock,
    MemoryEventStore,
    MemoryQueryStore,
    ProcessManager,
    ProcessRunner,
    Schedule,
    Send,
)
from cqrs_lab.examples.checkout import (
    PAYMENT_TIMEOUT,
    CancelOrder,
    Checkout,
    ConfirmOrder,
    Order,
    OrderCancelled,
    OrderPlaced,
    OrderState,
    Payment,
    PlaceOrder,
    ReceivePayment,
    RefundPayment,
    RequestPayment,
    order_decider,
)
from cqrs_lab.notebook import ProcessStepper, step_through_process
from cqrs_lab.process import Action
from cqrs_lab.stores.base import EventStore
from tests.domain_fixtures import Counter, Increment, Incremented

T0 = datetime(2024, 1, 1, tzinfo=UTC)
PLACE = Send(Order, "O-1", PlaceOrder(order_id="O-1", amount=Decimal("20.00")))
PAY = Send(Payment, "O-1", ReceivePayment())
LATE = [PLACE, PAYMENT_TIMEOUT + timedelta(minutes=1), PAY]  # the timeout cancels; the payment is refunded


def test_an_outside_command_then_the_event_it_produced_in_and_the_commands_the_process_sent_out() -> None:
    placed, reacted = step_through_process(Checkout, [PLACE], aggregates=[Payment])
    assert (placed.number, placed.kind, placed.trigger, placed.process_id) == (1, "command", PLACE, None)
    [command] = placed.sent
    assert [e.event_type for e in command.events] == ["OrderPlaced"] and command.accepted
    assert placed.state_before == Order() and placed.state_after == Order(
        order_id="O-1", amount=Decimal("20.00"), status="placed"
    )
    assert (reacted.kind, reacted.process_id) == ("event", "O-1")
    assert isinstance(reacted.trigger, EventEnvelope) and reacted.trigger.payload == OrderPlaced(
        order_id="O-1", amount=Decimal("20.00")
    )
    [request] = reacted.sent
    assert request.send == Send(Payment, "O-1", RequestPayment(order_id="O-1", amount=Decimal("20.00")))
    assert [e.event_type for e in request.events] == ["PaymentRequested"]
    assert request.command_id == f"Checkout/O-1/{reacted.trigger.event_id}/0"  # what a runner sends
    assert reacted.state_before == reacted.state_after == Checkout()
    [timeout] = reacted.scheduled
    assert (timeout.name, timeout.due_at) == ("payment-timeout", T0 + PAYMENT_TIMEOUT)
    assert reacted.pending == (timeout,) and reacted.cancelled == ()
    assert repr(reacted) == (
        "ProcessStep(2, OrderPlaced -> O-1: sent RequestPayment; scheduled payment-timeout)"
    )


def test_time_passes_the_deadline_fires_and_a_late_payment_is_refunded() -> None:
    steps = step_through_process(Checkout, LATE)
    assert [(s.kind, s.process_id) for s in steps] == [
        ("command", None), ("event", "O-1"),  # placed; payment requested, timeout scheduled
        ("time", None), ("deadline", "O-1"), ("event", "O-1"),  # 31 minutes; cancelled; noted
        ("command", None), ("event", "O-1"),  # the late payment; ConfirmOrder rejected, refunded
    ]
    waited, fired, noted, _, refunded = steps[2:]
    assert waited.trigger == PAYMENT_TIMEOUT + timedelta(minutes=1)
    assert [d.name for d in waited.due()] == ["payment-timeout"]
    assert fired.trigger == waited.pending[0]
    [cancel] = fired.sent
    assert cancel.send == Send(Order, "O-1", CancelOrder(reason="unpaid"))
    assert [e.payload for e in cancel.events] == [OrderCancelled(order_id="O-1", reason="unpaid")]
    assert fired.pending == () and fired.cancelled == ()  # fired, not cancelled
    assert noted.sent == () and noted.state_after == Checkout(cancelled=True)
    confirm, refund = refunded.sent
    assert confirm.send == Send(Order, "O-1", ConfirmOrder()) and confirm.error is not None
    assert confirm.error.message == "order is cancelled" and confirm.events == ()
    assert refund.send == Send(Payment, "O-1", RefundPayment(reason="order was cancelled"))
    assert refund.answers == "ConfirmOrder" and [e.event_type for e in refund.events] == ["PaymentRefunded"]
    assert repr(refund) == "SentCommand(RefundPayment -> Payment/O-1: 1 event(s))"
    assert repr(confirm) == "SentCommand(ConfirmOrder -> Order/O-1: rejected: 'order is cancelled')"


def test_the_clock_ticks_a_second_per_event_and_jumps_when_time_passes() -> None:
    steps = step_through_process(Checkout, LATE)
    clocks = [s.clock for s in steps]
    assert clocks[0] == T0  # OrderPlaced, the first reading
    assert clocks[1] == T0 + timedelta(seconds=1)  # PaymentRequested
    assert clocks[2] == clocks[1] + PAYMENT_TIMEOUT + timedelta(minutes=1)
    assert clocks == sorted(clocks)
    assert all(e.recorded_at <= s.clock for s in steps for e in s.events())
    assert repr(steps[2]) == "ProcessStep(3, time +0:31:00 -> 2024-01-01 00:31:01, 1 deadline(s) due)"
    later = step_through_process(Checkout, [PLACE, PAY], start=datetime(2030, 5, 1, 12, tzinfo=UTC))
    assert later[1].scheduled[0].due_at == datetime(2030, 5, 1, 12, 30, tzinfo=UTC)


def test_a_payment_in_time_cancels_the_timeout_and_nothing_is_due_later() -> None:
    steps = step_through_process(Checkout, [PLACE, PAY, timedelta(hours=1)])
    assert [s.kind for s in steps] == ["command", "event", "command", "event", "time"]
    paid = steps[3]
    assert [d.name for d in paid.cancelled] == ["payment-timeout"] and paid.pending == ()
    assert [s.send.command for s in paid.sent] == [ConfirmOrder()]
    assert [e.event_type for e in paid.events()] == ["OrderConfirmed"]  # not routed: no step of its own
    assert paid.state_before == Checkout() and paid.state_after == Checkout(paid=True)
    assert steps[-1].due() == [] and steps[-1].pending == ()


def test_a_rejected_outside_command_is_a_step_that_changes_nothing() -> None:
    [step] = step_through_process(Checkout, [PAY])  # no payment requested yet
    [command] = step.sent
    assert command.error is not None and command.error.code == "not_requested" and command.command_id is None
    assert step.state_before == step.state_after == Payment()
    assert repr(step) == (
        "ProcessStep(1, ReceivePayment -> Payment/O-1: rejected: 'payment is new, not requested')"
    )


def test_deciders_and_runners_go_where_classes_go_and_nothing_of_a_runner_is_touched() -> None:
    steps = step_through_process(Checkout, [Send(order_decider, "O-1", PLACE.command)], aggregates=[Payment])
    assert steps[0].state_after == OrderState(order_id="O-1", amount=Decimal("20.00"), status="placed")
    store: EventStore = MemoryEventStore()
    runner = ProcessRunner(
        Checkout, store, MemoryQueryStore(),
        [CqrsFramework(Order, store), CqrsFramework(Payment, store)], name="shop", clock=FixedClock(),
    )
    steps = step_through_process(runner, [PLACE])  # Payment comes from the runner's frameworks
    assert steps[1].sent[0].command_id is not None and steps[1].sent[0].command_id.startswith("shop/O-1/")
    assert list(store.read_all()) == [] and runner.position == 0 and runner.pending() == []


class Reminders(ProcessManager):
    """Schedules one reminder per order, all at the same time."""

    @classmethod
    def route(cls, envelope: EventEnvelope) -> str | None:
        return envelope.aggregate_id if isinstance(envelope.payload, OrderPlaced) else None

    def react(self, envelope: EventEnvelope) -> list[Action]:
        cancel = Send(Order, envelope.aggregate_id, CancelOrder(reason="reminded"))
        return [Schedule("remind", at=T0 + timedelta(hours=1), send=cancel)]


def test_deadlines_due_at_one_moment_fire_in_a_step_each() -> None:
    place_two = [Send(Order, oid, PlaceOrder(order_id=oid, amount=Decimal("1.00"))) for oid in ("A", "B")]
    steps = step_through_process(Reminders, [*place_two, timedelta(hours=2)])
    fired = [s for s in steps if s.kind == "deadline"]
    assert [(s.process_id, [sent.send.aggregate_id for sent in s.sent]) for s in fired] == [
        ("A", ["A"]), ("B", ["B"]),
    ]
    assert fired[0].pending == fired[1].pending == ()


class PingPong(ProcessManager):
    @classmethod
    def route(cls, envelope: EventEnvelope) -> str | None:
        return "ball" if isinstance(envelope.payload, Incremented) else None

    def react(self, envelope: EventEnvelope) -> list[Action]:
        return [Send(Counter, "c", Increment())]


def test_mistakes_are_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match=r"Send.*timedelta"):
        step_through_process(Checkout, [PAY, "later"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="no timezone"):
        step_through_process(Checkout, [PLACE], start=datetime(2024, 1, 1))
    with pytest.raises(ConfigurationError, match="only moves forward"):
        step_through_process(Checkout, [PAY, timedelta(minutes=-1)])
    with pytest.raises(ConfigurationError, match="ProcessManager subclass or a ProcessRunner"):
        step_through_process(Checkout(), [PLACE])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"no framework for 'Payment'.*send to Order: .*aggregates="):
        step_through_process(Checkout, [PLACE])
    monkeypatch.setattr("cqrs_lab.notebook.process_stepper.MAX_PROCESS_STEPS", 20)
    with pytest.raises(ConfigurationError, match="PingPong was still sending commands after 20 steps"):
        step_through_process(PingPong, [Send(Counter, "c", Increment())])


def shown(stepper: ProcessStepper) -> tuple[str, str]:
    (output,) = stepper.out.outputs
    return str(output["data"]["text/plain"]), str(output["data"]["text/html"])


def test_the_stepper_starts_at_the_script_and_steps_through_with_the_clock_shown() -> None:
    stepper = ProcessStepper(Checkout, LATE)
    assert repr(stepper) == "ProcessStepper(Checkout, step 0/7)"
    text, html = shown(stepper)
    assert text == "Checkout: 3 script item(s), clock 2024-01-01 00:00:00"
    assert html.startswith("<div class='cqrs-lab-step cqrs-lab-process-step'><div><b>step 0</b> of 7")
    assert "clock 2024-01-01 00:00:00" in html and "PlaceOrder" in html and "time +0:31:00" in html
    assert stepper.back_button.disabled and not stepper.next_button.disabled
    for _ in range(4):
        stepper.next_button.click()
    text, html = shown(stepper)
    assert text == "ProcessStep(4, deadline payment-timeout -> O-1: sent CancelOrder)"
    assert "<b>step 4 of 7</b>" in html and "clock 2024-01-01 00:31:02" in html
    assert "a deadline fires" in html and "deadline payment-timeout" in html and "OrderCancelled" in html
    assert "pending deadlines: <i>none</i>" in html
    stepper.back_button.click()
    assert shown(stepper)[0].startswith("ProcessStep(3, time +0:31:00")
    assert "1 deadline(s) due now: they fire next" in shown(stepper)[1]
    stepper.go(7)
    html = shown(stepper)[1]
    assert "rejected: order is cancelled" in html and "answering ConfirmOrder rejected" in html
    assert stepper.next_button.disabled and stepper.current is stepper.steps[6]


def test_a_step_card_shows_what_came_in_what_went_out_the_state_and_the_deadlines() -> None:
    stepper = ProcessStepper(Checkout, LATE)
    html = stepper.html(2)
    assert "<b>in</b>" in html and "<b>out</b>" in html and "an event in" in html
    assert "(Order/O-1 #1, from PlaceOrder from outside)" in html
    assert "Checkout O-1" in html and "RequestPayment" in html and "PaymentRequested" in html
    assert "scheduled payment-timeout (due 2024-01-01 00:30:00)" in html
    assert "<th style='text-align:left'>deadline</th>" in html  # the pending deadlines' table
    assert "(Order/O-1 #2, from CancelOrder sent by Checkout O-1)" in stepper.html(5)
    assert stepper.steps[1]._repr_html_() == html.replace("<b>step 2 of 7</b>", "<b>step 2</b>")


def test_the_stepper_has_tooltips_plays_and_carries_every_step_as_static_html() -> None:
    stepper = ProcessStepper(Checkout, LATE)
    buttons = [stepper.back_button, stepper.next_button, stepper.play_button, stepper.stop_button,
               stepper.repeat_button]
    assert all(button.tooltip for button in buttons) and stepper.next_button.tooltip == "next step"
    stepper.play.value = 3
    assert stepper.step == 3
    stepper.stop_button.click()
    assert stepper.step == 0
    stepper.go(5)
    static = stepper._repr_mimebundle_()["text/html"]
    key = stepper._static_id
    assert static.count(f"<input type='radio' name='{key}'") == len(stepper.steps) + 1
    assert f"id='{key}-0' aria-label='step 0' checked>" in static
    for k in range(len(stepper.steps) + 1):
        assert stepper.html(k) in static
    assert f"<label for='{key}-1' title='next step'>Next</label>" in static and "<script" not in static


def test_the_same_script_gives_the_same_output() -> None:
    first, second = ProcessStepper(Checkout, LATE), ProcessStepper(Checkout, LATE)
    first.go(7)
    second.go(2)
    second.go(7)
    assert first.out.outputs == second.out.outputs
    assert [first.html(k) for k in range(8)] == [second.html(k) for k in range(8)]
