"""Checkout: an order, its payment, and the process manager between them.

When an order is placed, ``Checkout`` asks for the payment and gives it 30
minutes; when the payment arrives it confirms the order, and when the time is
up first it cancels the order. A payment that arrives after the order was
cancelled cannot confirm it: ``Checkout.on_rejected`` refunds it (a
compensation). ``order_decider`` is the same ``Order`` written as a ``Decider``;
it stores the same events under the same aggregate type. ``processes`` gives the
checkout's ``ProcessRunner`` to ``cqrs-lab project``.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cqrs_lab.decider import Decider
from cqrs_lab.domain import Aggregate, Command, Event
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import UserError
from cqrs_lab.framework import CqrsFramework
from cqrs_lab.process import Action, CancelSchedule, ProcessManager, ProcessRunner, Schedule, Send
from cqrs_lab.stores.base import EventStore, QueryStore

__all__ = [
    "PAYMENT_TIMEOUT",
    "CancelOrder",
    "Checkout",
    "ConfirmOrder",
    "Order",
    "OrderCancelled",
    "OrderConfirmed",
    "OrderPlaced",
    "OrderState",
    "Payment",
    "PaymentReceived",
    "PaymentRefunded",
    "PaymentRequested",
    "PlaceOrder",
    "ReceivePayment",
    "RefundPayment",
    "RequestPayment",
    "decide_order",
    "evolve_order",
    "order_decider",
    "processes",
]

PAYMENT_TIMEOUT = timedelta(minutes=30)
"""How long ``Checkout`` waits for a payment before it cancels the order."""

Amount = Field(gt=Decimal(0), decimal_places=2)
Status = Literal["new", "placed", "confirmed", "cancelled"]


# -- commands -----------------------------------------------------------------
class PlaceOrder(Command):
    order_id: str
    amount: Decimal = Amount


class ConfirmOrder(Command):
    pass


class CancelOrder(Command):
    reason: str


class RequestPayment(Command):
    order_id: str
    amount: Decimal = Amount


class ReceivePayment(Command):
    pass


class RefundPayment(Command):
    reason: str


# -- events -------------------------------------------------------------------
class OrderPlaced(Event):
    order_id: str
    amount: Decimal


class OrderConfirmed(Event):
    order_id: str


class OrderCancelled(Event):
    order_id: str
    reason: str


class PaymentRequested(Event):
    order_id: str
    amount: Decimal


class PaymentReceived(Event):
    order_id: str


class PaymentRefunded(Event):
    order_id: str
    reason: str


# -- the order, as an aggregate and as a decider ------------------------------
class OrderState(BaseModel):
    """What an order knows: its id, amount and where it stands."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: str = ""
    amount: Decimal = Decimal("0")
    status: Status = "new"


def decide_order(command: Command, state: OrderState) -> list[Event]:
    """The order's rules. Confirming a confirmed order, or cancelling a cancelled one, does nothing."""
    match command:
        case PlaceOrder(order_id=order_id, amount=amount):
            if state.status != "new":
                raise UserError("order is already placed", code="already_placed")
            return [OrderPlaced(order_id=order_id, amount=amount)]
        case ConfirmOrder():
            _require_placed(state)
            if state.status == "cancelled":
                raise UserError("order is cancelled", code="cancelled")
            return [] if state.status == "confirmed" else [OrderConfirmed(order_id=state.order_id)]
        case CancelOrder(reason=reason):
            _require_placed(state)
            if state.status == "confirmed":
                raise UserError("order is already confirmed", code="confirmed")
            if state.status == "cancelled":
                return []
            return [OrderCancelled(order_id=state.order_id, reason=reason)]
    raise UserError(f"Order does not handle {type(command).__name__}", code="unknown_command")


def _require_placed(state: OrderState) -> None:
    if state.status == "new":
        raise UserError("no such order", code="not_placed")


def evolve_order(state: OrderState, event: Event) -> OrderState:
    """The order after one more event (a new state; ``state`` is left as it was)."""
    match event:
        case OrderPlaced(order_id=order_id, amount=amount):
            return state.model_copy(update={"order_id": order_id, "amount": amount, "status": "placed"})
        case OrderConfirmed():
            return state.model_copy(update={"status": "confirmed"})
        case OrderCancelled():
            return state.model_copy(update={"status": "cancelled"})
    return state


order_decider = Decider("Order", initial_state=OrderState(), decide=decide_order, evolve=evolve_order)
"""``Order`` as a decider: the same commands, events and aggregate type."""


class Order(Aggregate):
    """An order that is placed, then confirmed or cancelled (never both)."""

    aggregate_type = "Order"

    order_id: str = ""
    amount: Decimal = Decimal("0")
    status: Status = "new"

    def handle(self, command: Command) -> list[Event]:
        state = OrderState(order_id=self.order_id, amount=self.amount, status=self.status)
        return decide_order(command, state)

    def apply(self, event: Event) -> None:
        match event:
            case OrderPlaced(order_id=order_id, amount=amount):
                self.order_id, self.amount, self.status = order_id, amount, "placed"
            case OrderConfirmed():
                self.status = "confirmed"
            case OrderCancelled():
                self.status = "cancelled"


# -- the payment --------------------------------------------------------------
class Payment(Aggregate):
    """The payment of one order (same id): requested, received, perhaps refunded."""

    aggregate_type = "Payment"

    order_id: str = ""
    amount: Decimal = Decimal("0")
    status: Literal["new", "requested", "received", "refunded"] = "new"

    def handle(self, command: Command) -> list[Event]:
        match command:
            case RequestPayment(order_id=order_id, amount=amount):
                if self.status != "new":
                    raise UserError("payment is already requested", code="already_requested")
                return [PaymentRequested(order_id=order_id, amount=amount)]
            case ReceivePayment():
                if self.status != "requested":
                    raise UserError(f"payment is {self.status}, not requested", code="not_requested")
                return [PaymentReceived(order_id=self.order_id)]
            case RefundPayment(reason=reason):
                if self.status != "received":
                    raise UserError(f"payment is {self.status}, not received", code="not_received")
                return [PaymentRefunded(order_id=self.order_id, reason=reason)]
        raise UserError(f"Payment does not handle {type(command).__name__}", code="unknown_command")

    def apply(self, event: Event) -> None:
        match event:
            case PaymentRequested(order_id=order_id, amount=amount):
                self.order_id, self.amount, self.status = order_id, amount, "requested"
            case PaymentReceived():
                self.status = "received"
            case PaymentRefunded():
                self.status = "refunded"


# -- the process manager ------------------------------------------------------
class Checkout(ProcessManager):
    """One order's checkout, from ``OrderPlaced`` to a confirmed order or a refund."""

    paid: bool = False
    cancelled: bool = False

    @classmethod
    def route(cls, envelope: EventEnvelope) -> str | None:
        match envelope.payload:
            case OrderPlaced(order_id=oid) | PaymentReceived(order_id=oid) | OrderCancelled(order_id=oid):
                return oid
        return None

    def react(self, envelope: EventEnvelope) -> list[Action]:
        match envelope.payload:
            case OrderPlaced(order_id=oid, amount=amount):
                return [
                    Send(Payment, oid, RequestPayment(order_id=oid, amount=amount)),
                    Schedule(
                        "payment-timeout",
                        after=PAYMENT_TIMEOUT,
                        send=Send(Order, oid, CancelOrder(reason="unpaid")),
                    ),
                ]
            case PaymentReceived(order_id=oid):
                return [CancelSchedule("payment-timeout"), Send(Order, oid, ConfirmOrder())]
        return []

    def apply(self, envelope: EventEnvelope) -> None:
        match envelope.payload:
            case PaymentReceived():
                self.paid = True
            case OrderCancelled():
                self.cancelled = True

    def on_rejected(self, send: Send, error: UserError) -> list[Action]:
        """A payment that came too late cannot confirm the cancelled order: give it back."""
        if isinstance(send.command, ConfirmOrder) and error.code == "cancelled":
            return [Send(Payment, send.aggregate_id, RefundPayment(reason="order was cancelled"))]
        return []


def processes(event_store: EventStore, query_store: QueryStore) -> list[ProcessRunner[Checkout]]:
    """The checkout's process runner, for ``cqrs-lab project`` (``--projection
    cqrs_lab.examples.checkout:processes``): it sends to orders and payments on
    ``event_store`` and keeps its states, deadlines and checkpoint in ``query_store``."""
    frameworks: list[CqrsFramework[Any]] = [
        CqrsFramework(Order, event_store),
        CqrsFramework(Payment, event_store),
    ]
    return [ProcessRunner(Checkout, event_store, query_store, frameworks)]
