"""ProcessTester: given events, when an event or time passing, then the commands sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cqrs_lab import EventEnvelope, ProcessTester, Send
from cqrs_lab.examples.checkout import (
    CancelOrder,
    Checkout,
    ConfirmOrder,
    Order,
    OrderPlaced,
    Payment,
    PaymentReceived,
    PaymentRequested,
    RequestPayment,
)
from cqrs_lab.testing import SpecFailed

PLACED = OrderPlaced(order_id="O-1", amount=Decimal("20"))


def test_the_issue_examples_pass() -> None:
    (
        ProcessTester(Checkout)
        .given([PLACED])
        .when(PaymentReceived(order_id="O-1"))
        .then_expect_commands([Send(Order, "O-1", ConfirmOrder())])
    )
    (
        ProcessTester(Checkout)
        .given([PLACED])
        .when_time_elapses(timedelta(minutes=31))
        .then_expect_commands([Send(Order, "O-1", CancelOrder(reason="unpaid"))])
    )


def test_when_sends_what_react_returns_and_leaves_the_schedules_pending() -> None:
    spec = ProcessTester(Checkout).given_no_previous_events().when(PLACED)
    request = RequestPayment(order_id="O-1", amount=Decimal("20"))
    assert spec.inspect_result() == [Send(Payment, "O-1", request)]
    assert spec.pending == {
        ("O-1", "payment-timeout"): (
            datetime(2024, 1, 1, 0, 30, tzinfo=UTC),
            Send(Order, "O-1", CancelOrder(reason="unpaid")),
        )
    }


def test_time_that_elapses_before_the_deadline_or_after_its_cancellation_sends_nothing() -> None:
    ProcessTester(Checkout).given([PLACED]).when_time_elapses(timedelta(minutes=29)).then_expect_no_commands()
    (
        ProcessTester(Checkout)
        .given([PLACED, PaymentReceived(order_id="O-1")])
        .when_time_elapses(timedelta(hours=5))
        .then_expect_no_commands()
    )


def test_an_event_that_routes_nowhere_sends_nothing() -> None:
    spec = ProcessTester(Checkout).given([PLACED]).when(PaymentRequested(order_id="O-1", amount=Decimal("1")))
    spec.then_expect_no_commands()


def test_deadlines_count_from_the_recorded_time_of_given_envelopes() -> None:
    at = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    placed = EventEnvelope("Order", "O-1", 1, PLACED, recorded_at=at)
    spec = ProcessTester(Checkout).given([placed]).when_time_elapses(timedelta(minutes=30))
    assert spec.commands == [Send(Order, "O-1", CancelOrder(reason="unpaid"))]
    assert spec.pending == {}


def test_a_failing_spec_shows_expected_and_actual_side_by_side() -> None:
    spec = ProcessTester(Checkout, "payment confirms").given([PLACED]).when(PaymentReceived(order_id="O-1"))
    wrong = [Send(Order, "O-1", CancelOrder(reason="paid"))]
    with pytest.raises(SpecFailed) as caught:
        spec.then_expect_commands(wrong)
    result = caught.value.result
    assert not result.passed and result.kind == "process" and result.expectation == "commands"
    assert result.message.splitlines() == [
        "commands differ:",
        "   expected                                       | actual",
        ">> Send(Order, 'O-1', CancelOrder(reason='paid')) | Send(Order, 'O-1', ConfirmOrder())",
    ]
    html = result._repr_html_()
    assert "payment confirms" in html and "cqrs-lab-diff" in html
    assert "CancelOrder(reason=&#x27;paid&#x27;)" in html


def test_run_specs_takes_process_specs() -> None:
    from cqrs_lab.notebook import run_specs

    report = run_specs(
        [
            lambda: ProcessTester(Checkout, "confirms")
            .given([PLACED])
            .when(PaymentReceived(order_id="O-1"))
            .then_expect_commands([Send(Order, "O-1", ConfirmOrder())]),
            lambda: ProcessTester(Checkout, "times out")
            .given([PLACED])
            .when_time_elapses(timedelta(minutes=31))
            .then_expect_no_commands(),
        ]
    )
    assert (report.passed, report.failed) == (1, 1)
    assert report.outcomes[1].title == "times out" and report.outcomes[1].result is not None
    assert "time elapses: 0:31:00" in report._repr_html_()
