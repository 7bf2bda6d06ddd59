"""Small domains used by the core tests (events registered under test-only names)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import Field

from cqrs_lab import (
    Aggregate,
    Command,
    CqrsFramework,
    Event,
    FixedClock,
    MemoryEventStore,
    MemoryQueryStore,
    Query,
    QueryProcessor,
    SequentialIds,
    UserError,
)
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.examples.bank_account import BankAccount, BankAccountQuery, DepositMoney, OpenBankAccount
from cqrs_lab.examples.checkout import (
    PAYMENT_TIMEOUT,
    Checkout,
    Order,
    OrderPlaced,
    Payment,
    PlaceOrder,
    ReceivePayment,
)
from cqrs_lab.process import Action, ProcessManager, ProcessRunner, Schedule, Send


class Increment(Command):
    by: int = 1


class Noop(Command):
    pass


class Explode(Command):
    pass


class ReturnGarbage(Command):
    pass


class TwoEvents(Command):
    pass


class Incremented(Event):
    event_type = "test.Incremented"
    by: int


class Noted(Event):
    event_type = "test.Noted"
    text: str


class Counter(Aggregate):
    aggregate_type = "Counter"
    value: int = 0
    notes: list[str] = Field(default_factory=list)

    def handle(self, command: Command) -> list[Event]:
        match command:
            case Increment(by=by):
                if by > 100:
                    raise UserError("too big", code="too_big", params={"by": by})
                return [Incremented(by=by)]
            case Noop():
                return []
            case Explode():
                raise KeyError("boom")
            case ReturnGarbage():
                return ["not an event"]  # type: ignore[list-item]
            case TwoEvents():
                return [Incremented(by=1), Noted(text="two")]
        raise UserError("unknown command")

    def apply(self, event: Event) -> None:
        match event:
            case Incremented(by=by):
                self.value += by
            case Noted(text=text):
                self.notes = [*self.notes, text]


class CounterView(Query):
    query_type = "CounterView"
    total: int = 0
    events: int = 0

    def update(self, envelope: EventEnvelope) -> None:
        self.events += 1
        if isinstance(envelope.payload, Incremented):
            self.total += envelope.payload.by


REMINDER_AFTER = timedelta(hours=1)


class Tallies(ProcessManager):
    """Counts placed orders on two Counters: "placed" at once, "reminded" an hour later.

    ``Increment`` is not idempotent, so a command applied twice shows in the counts.
    """

    orders: int = 0

    @classmethod
    def route(cls, envelope: EventEnvelope) -> str | None:
        return "all" if isinstance(envelope.payload, OrderPlaced) else None

    def react(self, envelope: EventEnvelope) -> list[Action]:
        name = f"reminder-{self.orders}"
        later = Send(Counter, "reminded", Increment(by=1))
        return [Send(Counter, "placed", Increment(by=1)), Schedule(name, after=REMINDER_AFTER, send=later)]

    def apply(self, envelope: EventEnvelope) -> None:
        self.orders += 1


def small_bank() -> CqrsFramework[BankAccount]:
    """Two bank accounts on memory stores with a fixed clock: A-1 opened and funded, B-2 opened."""
    fw = CqrsFramework(
        BankAccount,
        MemoryEventStore(),
        [QueryProcessor(BankAccountQuery, MemoryQueryStore())],
        clock=FixedClock(),
        ids=SequentialIds(),
    )
    fw.execute("A-1", OpenBankAccount(account_id="A-1"))
    fw.execute("B-2", OpenBankAccount(account_id="B-2"))
    fw.execute("A-1", DepositMoney(amount=Decimal("10.00")))
    return fw


def checkout_log() -> tuple[CqrsFramework[Order], CqrsFramework[Payment]]:
    """Orders and payments on memory stores, run by a ``Checkout`` runner on a fixed clock.

    O-1 is placed and not paid in time: the payment timeout cancels it, and the
    payment that comes after is refunded (``on_rejected``). O-2 is placed and paid.
    """
    store, clock, ids = MemoryEventStore(), FixedClock(), SequentialIds()
    orders = CqrsFramework(Order, store, clock=clock, ids=ids)
    payments = CqrsFramework(Payment, store, clock=clock, ids=ids)
    runner = ProcessRunner(Checkout, store, MemoryQueryStore(), [orders, payments], clock=clock)
    orders.execute("O-1", PlaceOrder(order_id="O-1", amount=Decimal("20.00")))
    runner.run_once()
    orders.execute("O-2", PlaceOrder(order_id="O-2", amount=Decimal("5.00")))
    runner.run_once()
    payments.execute("O-2", ReceivePayment())
    runner.run_once()
    clock.advance(PAYMENT_TIMEOUT + timedelta(minutes=1))
    runner.fire_due()
    runner.run_once()
    payments.execute("O-1", ReceivePayment())
    runner.run_once()
    return orders, payments
