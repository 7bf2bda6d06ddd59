"""The benchmark domain: a ledger whose commands post numbered entries."""

from __future__ import annotations

from cqrs_lab.domain import Aggregate, Command, Event, Query
from cqrs_lab.envelope import EventEnvelope

__all__ = ["Ledger", "LedgerTotals", "PostBatch", "Posted", "posted"]


class PostBatch(Command):
    """Post ``n`` entries to a ledger (one event each)."""

    n: int = 1


class Posted(Event):
    """One ledger entry."""

    event_type = "bench.Posted"

    entry: int
    amount: int
    memo: str


def posted(entry: int) -> Posted:
    """The event of ledger entry number ``entry`` (what ``Ledger`` emits for it)."""
    return Posted(entry=entry, amount=entry % 100 + 1, memo=f"entry {entry}")


class Ledger(Aggregate):
    """A ledger: ``PostBatch(n)`` emits ``n`` ``Posted`` events."""

    aggregate_type = "bench.Ledger"

    entries: int = 0
    balance: int = 0

    def handle(self, command: Command) -> list[Event]:
        assert isinstance(command, PostBatch)
        return [posted(self.entries + i) for i in range(1, command.n + 1)]

    def apply(self, event: Event) -> None:
        assert isinstance(event, Posted)
        self.entries += 1
        self.balance += event.amount


class LedgerTotals(Query):
    """Per-ledger view for W6: entry count and balance."""

    query_type = "bench.LedgerTotals"

    entries: int = 0
    balance: int = 0

    def update(self, envelope: EventEnvelope) -> None:
        assert isinstance(envelope.payload, Posted)
        self.entries += 1
        self.balance += envelope.payload.amount
