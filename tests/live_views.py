"""Two projections of the bank-account log, for the worker tests (also run by worker processes
as ``cqrs-lab project --projection tests.live_views:projections``).

``Activity`` adds up what it sees, so an event applied twice (or missed) changes it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cqrs_lab import EventEnvelope, Projection, Query
from cqrs_lab.examples.bank_account import BankAccountQuery, CustomerDepositedMoney


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
