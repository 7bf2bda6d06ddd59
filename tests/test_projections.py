"""Catch-up projections on every backend: views and checkpoint move together, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import Field

from cqrs_lab import (
    ConcurrencyError,
    CqrsFramework,
    EventEnvelope,
    Projection,
    Query,
    QueryContext,
    SequentialIds,
)
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountQuery,
    CustomerDepositedMoney,
    CustomerWithdrewCash,
    DepositMoney,
    OpenBankAccount,
    WithdrawMoney,
)
from tests.conftest import Backend


class Crash(RuntimeError):
    """Stands in for the process dying in the middle of a batch."""


class Ledger(Query):
    """Remembers every position it applied, so double or missed application shows."""

    query_type = "projection_test.Ledger"
    crash_at: ClassVar[set[int]] = set()

    positions: list[int] = Field(default_factory=list)
    balance: Decimal = Decimal("0")

    def update(self, envelope: EventEnvelope) -> None:
        if envelope.position in self.crash_at:
            raise Crash(f"crash at position {envelope.position}")
        self.positions.append(envelope.position)
        match envelope.payload:
            case CustomerDepositedMoney(amount=amount):
                self.balance += amount
            case CustomerWithdrewCash(amount=amount):
                self.balance -= amount


class EventCount(Query):
    query_type = "projection_test.EventCount"
    count: int = 0

    def update(self, envelope: EventEnvelope) -> None:
        self.count += 1


@pytest.fixture(autouse=True)
def no_crash() -> Any:
    Ledger.crash_at = set()
    yield
    Ledger.crash_at = set()


def fill(store: Any, accounts: int = 3, rounds: int = 4) -> list[EventEnvelope]:
    """Commits straight to the store, with no dispatcher: the views know nothing yet."""
    framework = CqrsFramework(BankAccount, store, ids=SequentialIds())
    committed: list[EventEnvelope] = []
    for a in range(accounts):
        committed += framework.execute(f"A-{a}", OpenBankAccount(account_id=f"A-{a}"))
    for r in range(rounds):
        for a in range(accounts):
            committed += framework.execute(f"A-{a}", DepositMoney(amount=Decimal(f"{r + a + 1}.50")))
            if r % 2:
                committed += framework.execute(f"A-{a}", WithdrawMoney(amount=Decimal("0.75")))
    return committed


def expected_views(committed: list[EventEnvelope]) -> dict[str, BankAccountQuery]:
    views: dict[str, BankAccountQuery] = {}
    for envelope in committed:
        views.setdefault(envelope.aggregate_id, BankAccountQuery()).update(envelope)
    return views


def test_projection_catches_up_from_the_log_after_commits_without_dispatchers(backend: Backend) -> None:
    store = backend.event_store()
    queries = backend.query_store(store)
    committed = fill(store)
    projection = Projection("bank", store, queries, [BankAccountQuery], batch_size=4)
    assert projection.position == 0
    assert queries.load(BankAccountQuery, "A-0").version == 0

    assert projection.run() == len(committed)
    assert projection.position == committed[-1].position
    for account, view in expected_views(committed).items():
        assert queries.load(BankAccountQuery, account).payload == view
    assert projection.run() == 0

    more = CqrsFramework(BankAccount, store).execute("A-1", DepositMoney(amount=Decimal("100.00")))
    assert projection.run() == 1
    assert projection.position == more[0].position
    assert queries.load(BankAccountQuery, "A-1").payload == expected_views(committed + more)["A-1"]


def test_progress_is_reported_per_committed_batch_and_limit_stops_early(backend: Backend) -> None:
    store = backend.event_store()
    queries = backend.query_store(store)
    committed = fill(store, accounts=2, rounds=2)
    projection = Projection("bank", store, queries, [Ledger], batch_size=3)
    steps: list[int] = []
    assert projection.run(limit=5, progress=steps.append) == 5
    assert steps == [3, 2]
    assert projection.position == committed[4].position
    assert projection.run(progress=steps.append) == len(committed) - 5
    assert sum(steps) == len(committed)


def test_crash_in_a_batch_commits_nothing_of_it_and_rerun_applies_every_event_once(backend: Backend) -> None:
    store = backend.event_store()
    queries = backend.query_store(store)
    committed = fill(store)
    positions = [e.position for e in committed]
    projection = Projection("ledger", store, queries, [Ledger, EventCount], batch_size=4)

    Ledger.crash_at = {positions[6]}  # the third event of the second batch
    with pytest.raises(Crash):
        projection.run()
    assert projection.position == positions[3]
    applied = [p for a in ("A-0", "A-1", "A-2") for p in queries.load(Ledger, a).payload.positions]
    assert sorted(applied) == positions[:4]
    counted = sum(queries.load(EventCount, a).payload.count for a in ("A-0", "A-1", "A-2"))
    assert counted == 4

    Ledger.crash_at = set()
    assert projection.run() == len(committed) - 4
    applied = [p for a in ("A-0", "A-1", "A-2") for p in queries.load(Ledger, a).payload.positions]
    assert sorted(applied) == positions
    assert len(applied) == len(set(applied))
    assert sum(queries.load(EventCount, a).payload.count for a in ("A-0", "A-1", "A-2")) == len(committed)
    for account, view in expected_views(committed).items():
        assert queries.load(Ledger, account).payload.balance == view.balance


def test_a_crash_in_the_first_batch_leaves_no_checkpoint_and_no_views(backend: Backend) -> None:
    store = backend.event_store()
    queries = backend.query_store(store)
    committed = fill(store, accounts=2, rounds=1)
    Ledger.crash_at = {committed[1].position}
    projection = Projection("ledger", store, queries, [Ledger], batch_size=100)
    with pytest.raises(Crash):
        projection.run()
    assert projection.position == 0
    assert queries.load(Ledger, "A-0").version == 0
    Ledger.crash_at = set()
    assert projection.run() == len(committed)


def test_rebuild_empties_the_views_and_replays_the_whole_log(backend: Backend) -> None:
    store = backend.event_store()
    queries = backend.query_store(store)
    committed = fill(store)
    projection = Projection("bank", store, queries, [BankAccountQuery], batch_size=5)
    projection.run()
    tampered = queries.load(BankAccountQuery, "A-2")
    tampered.payload.balance = Decimal("-999")
    queries.commit(tampered)
    queries.commit(QueryContext("ghost", 0, BankAccountQuery(account_id="ghost")))
    queries.commit(QueryContext("kept", 0, EventCount(count=7)))

    assert projection.rebuild() == len(committed)
    assert projection.position == committed[-1].position
    for account, view in expected_views(committed).items():
        assert queries.load(BankAccountQuery, account).payload == view
    assert queries.load(BankAccountQuery, "ghost").version == 0
    assert queries.load(EventCount, "kept").payload.count == 7


def test_projections_keep_their_own_checkpoints_and_aggregate_type_filter(backend: Backend) -> None:
    store = backend.event_store()
    queries = backend.query_store(store)
    committed = fill(store, accounts=2, rounds=1)
    everything = Projection("everything", store, queries, [EventCount])
    nothing = Projection("nothing", store, queries, [Ledger], aggregate_types=["SomethingElse"])
    assert everything.run() == len(committed)
    assert nothing.run() == len(committed)
    assert everything.position == nothing.position == committed[-1].position
    assert queries.load(Ledger, "A-0").version == 0
    assert queries.load(EventCount, "A-0").payload.count == 2
    everything.rebuild()
    assert nothing.position == committed[-1].position


# -- two runners of one projection -------------------------------------------------
class RacedBy(Projection):
    """Runs ``other`` once, after this runner read a batch and before it applies it."""

    other: Callable[[], object] | None = None

    def _apply(self, position: int, batch: list[EventEnvelope]) -> None:
        other, self.other = self.other, None
        if other is not None:
            other()
        super()._apply(position, batch)


def ledger_positions(queries: Any, accounts: int = 3) -> list[int]:
    return sorted(p for a in range(accounts) for p in queries.load(Ledger, f"A-{a}").payload.positions)


def test_a_runner_that_lost_the_race_writes_nothing_and_goes_on_from_the_winners_checkpoint(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend.event_store()
    queries = backend.query_store(store)
    committed = fill(store)
    positions = [e.position for e in committed]
    first = RacedBy("ledger", store, queries, [Ledger, EventCount], batch_size=4)
    # the other runner: another query store object on the same database (memory: the same one)
    second = Projection(
        "ledger", store, queries if backend.name == "memory" else backend.query_store(), [Ledger, EventCount]
    )
    caplog.set_level(logging.WARNING, logger="cqrs_lab.projections")

    first.other = lambda: second.run(limit=6)
    assert first.run(limit=4) == 0  # its batch (events 1-4) lost: nothing applied, nothing more read
    assert first.position == positions[5]
    assert ledger_positions(queries) == positions[:6]
    assert f"another runner moved the checkpoint from 0 to {positions[5]} first" in caplog.text

    first.other = lambda: second.run(limit=3)  # takes events 7-9 while first holds 7-10
    assert first.run() == len(committed) - 9  # dropped its batch, then read on from 9
    assert first.position == positions[-1]
    assert ledger_positions(queries) == positions  # every event once
    assert sum(queries.load(EventCount, f"A-{a}").payload.count for a in range(3)) == len(committed)
    for account, view in expected_views(committed).items():
        assert queries.load(Ledger, account).payload.balance == view.balance


class Contested(Query):
    """A view that another writer changes while a projection batch is applying it."""

    query_type = "projection_test.Contested"
    meddle: ClassVar[Callable[[], object] | None] = None

    count: int = 0

    def update(self, envelope: EventEnvelope) -> None:
        meddle, Contested.meddle = Contested.meddle, None
        if meddle is not None:
            meddle()
        self.count += 1


def test_a_view_changed_by_another_writer_is_still_a_concurrency_error(backend: Backend) -> None:
    store = backend.event_store()
    queries = backend.query_store(store)
    committed = fill(store, accounts=2, rounds=1)
    projection = Projection("contested", store, queries, [Contested])
    Contested.meddle = lambda: queries.commit(QueryContext("A-0", 0, Contested(count=100)))
    with pytest.raises(ConcurrencyError, match="Contested/A-0"):
        projection.run()
    assert projection.position == 0  # not a race with another runner: the caller is told
    assert queries.load(Contested, "A-1").version == 0
    assert projection.run() == len(committed)
    assert queries.load(Contested, "A-0").payload.count == 100 + 2
