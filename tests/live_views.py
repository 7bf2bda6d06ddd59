"""Two projections of the bank-account log and the checkout's process runner, for the worker
tests (also run by worker processes as ``cqrs-lab project --projection tests.live_views:projections``
and ``--projection tests.live_views:processes``).

``Activity`` adds up what it sees, so an event applied twice (or missed) changes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cqrs_lab import CqrsFramework, EventEnvelope, ProcessRunner, Projection, Query
from cqrs_lab.envelope import system_clock
from cqrs_lab.examples.bank_account import BankAccountQuery, CustomerDepositedMoney
from cqrs_lab.examples.checkout import PAYMENT_TIMEOUT, Checkout, Order, Payment


class Activity(Query):
    query_type = "tests.Activity"

    events: int = 0
    deposited: Decimal = Decimal(0)
    last_position: int = 0

    def update(self, envelope: EventEnvelope) -> None:
        assert envelope.position > self.last_position, "an event applied twice or out of order"
        self.events += 1
        self.last_position = envelope.position
        if isinstance(envelope.payload, CustomerDepositedMoney):
            self.deposited += envelope.payload.amount


def projections(event_store: Any, query_store: Any) -> list[Projection]:
    return [
        Projection("balances", event_store, query_store, [BankAccountQuery], batch_size=20),
        Projection("activity", event_store, query_store, [Activity], batch_size=20),
    ]


def an_hour_ahead() -> datetime:
    """The runner's clock: past every payment timeout scheduled now, so it is due at once."""
    return system_clock() + 2 * PAYMENT_TIMEOUT + timedelta(minutes=1)


def processes(event_store: Any, query_store: Any) -> list[ProcessRunner[Checkout]]:
    """The example's checkout runner, whose deadlines fall due as soon as they are scheduled:
    a worker fires them once the runner has caught up with the log."""
    frameworks: list[CqrsFramework[Any]] = [
        CqrsFramework(Order, event_store),
        CqrsFramework(Payment, event_store),
    ]
    return [ProcessRunner(Checkout, event_store, query_store, frameworks, clock=an_hour_ahead, batch_size=5)]
