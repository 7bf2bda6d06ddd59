"""ProjectionWorker in this process: every projection in exactly one worker, views exact.

The multi-process behaviour (SIGKILL, takeover, the CLI) is in test_live_processes.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from pydantic import Field

from cqrs_lab import (
    ConfigurationError,
    CqrsFramework,
    FixedClock,
    MemoryQueryStore,
    ProcessManager,
    ProcessRunner,
    Projection,
    Query,
)
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.examples.bank_account import BankAccount, DepositMoney, OpenBankAccount
from cqrs_lab.examples.checkout import (
    PAYMENT_TIMEOUT,
    Checkout,
    Order,
    Payment,
    PlaceOrder,
    ReceivePayment,
)
from cqrs_lab.worker import ProjectionWorker
from tests.conftest import Backend
from tests.live_views import Activity, projections

HANG_GUARD = 60.0


@contextmanager
def running(worker: ProjectionWorker) -> Iterator[dict[str, dict[str, int]]]:
    """Run ``worker`` in a thread for the block; afterwards the dict holds what ``run`` returned."""
    stop = threading.Event()
    result: dict[str, dict[str, int]] = {}
    thread = threading.Thread(target=lambda: result.update(applied=worker.run(stop)))
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join(HANG_GUARD)
        assert not thread.is_alive(), "the worker did not stop"


def _open(bank: CqrsFramework[BankAccount], accounts: int = 3) -> None:
    for a in range(accounts):
        bank.execute(f"A-{a}", OpenBankAccount(account_id=f"A-{a}"))


def _write(bank: CqrsFramework[BankAccount], accounts: int, deposits: int) -> EventEnvelope:
    if bank.load("A-0").opened is False:
        _open(bank, accounts)
    last = None
    for i in range(deposits):
        last = bank.execute(f"A-{i % accounts}", DepositMoney(amount=Decimal(i % 7 + 1)))[-1]
    assert last is not None
    return last


def _expected(event_store: object) -> dict[str, Activity]:
    """The Activity views as one projection in memory computes them."""
    queries = MemoryQueryStore()
    [_, activity] = projections(event_store, queries)
    activity.run()
    return {f"A-{a}": queries.load(Activity, f"A-{a}").payload for a in range(3)}


def test_two_workers_share_two_projections_each_run_by_one_and_views_are_exact(backend: Backend) -> None:
    store = backend.event_store()
    bank = CqrsFramework(BankAccount, store)
    queries = backend.query_store(store)
    first = ProjectionWorker(projections(store, queries), lease=0.5, name="first")
    second = ProjectionWorker(projections(store, queries), lease=0.5, name="second")
    _write(bank, 3, 40)
    with running(first) as one, running(second) as two:
        last = _write(bank, 3, 60)
        for projection in projections(store, queries):
            projection.wait_for(last.position, timeout=HANG_GUARD)
    total = last.position
    # every event applied once per projection, by one worker or (after a hand-over) the other
    for name in ("balances", "activity"):
        assert one["applied"][name] + two["applied"][name] == total
    for account, view in _expected(store).items():
        assert queries.load(Activity, account).payload == view
    assert sum(v.events for v in _expected(store).values()) == total


def test_worker_refuses_what_it_cannot_run(backend: Backend) -> None:
    store = backend.event_store()
    queries = backend.query_store(store)
    with pytest.raises(ConfigurationError, match="at least one"):
        ProjectionWorker([])
    with pytest.raises(ConfigurationError, match="is not a Projection or a ProcessRunner"):
        ProjectionWorker([object()])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="two projections or process runners are named 'activity'"):
        ProjectionWorker(projections(store, queries) + projections(store, queries)[1:])
    orders = CqrsFramework(Order, store)
    runner = ProcessRunner(Checkout, store, queries, [orders], name="activity")  # a projection's name
    with pytest.raises(ConfigurationError, match="are named 'activity' in one database"):
        ProjectionWorker([*projections(store, queries), runner])
    with pytest.raises(ConfigurationError, match="lease"):
        ProjectionWorker(projections(store, queries), lease=0)


def test_stopping_a_worker_logs_what_it_ran_and_gives_its_projections_back(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend.event_store()
    queries = backend.query_store(store)
    last = _write(CqrsFramework(BankAccount, store), 3, 10)
    caplog.set_level(logging.INFO, logger="cqrs_lab.worker")
    with running(ProjectionWorker(projections(store, queries), lease=1.0, name="solo")) as result:
        projections(store, queries)[1].wait_for(last.position, timeout=HANG_GUARD)
        projections(store, queries)[0].wait_for(last.position, timeout=HANG_GUARD)
    assert result["applied"] == {"balances": last.position, "activity": last.position}
    text = caplog.text
    assert "worker solo started: projections balances, activity" in text
    assert "took projection activity at checkpoint 0" in text
    assert f"gave back projection activity at checkpoint {last.position} (stopping)" in text
    assert f"activity: {last.position} event(s) applied here" in text
    # given back: another worker takes both at once
    with running(ProjectionWorker(projections(store, queries), lease=1.0, name="next")) as again:
        deadline = time.monotonic() + HANG_GUARD
        while "took projection balances" not in caplog.text.split("worker next started")[-1]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert again["applied"] == {"balances": 0, "activity": 0}


@pytest.mark.postgres
def test_a_worker_whose_session_is_killed_stops_its_projections_and_joins_again(
    postgres_dsn: str, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    kit = Backend("postgres", dsn=postgres_dsn, schema=pg_schema)
    try:
        store = kit.event_store()
        queries = kit.query_store(store)
        bank = CqrsFramework(BankAccount, store)
        caplog.set_level(logging.INFO, logger="cqrs_lab.worker")
        with running(ProjectionWorker(projections(store, queries), lease=0.5, name="victim")):
            last = _write(bank, 3, 5)
            projections(store, queries)[1].wait_for(last.position, timeout=HANG_GUARD)
            with psycopg.connect(postgres_dsn, autocommit=True) as conn:
                killed = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'cqrs_lab worker victim'"
                ).fetchall()
            assert killed == [(True,)]
            last = _write(bank, 3, 5)
            projections(store, queries)[1].wait_for(last.position, timeout=HANG_GUARD)
        assert "worker victim lost its leases" in caplog.text
        assert caplog.text.count("took projection activity") == 2
        for account, view in _expected(store).items():
            assert queries.load(Activity, account).payload == view
    finally:
        kit.close()


# -- process runners ----------------------------------------------------------------
def wait_until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


class Unforgiving(Checkout):
    """Checkout without its refund: a late payment's rejected ConfirmOrder is only reported."""

    on_rejected = ProcessManager.on_rejected


def test_workers_run_a_process_runner_in_one_of_them_and_fire_its_deadlines_on_its_clock(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    store = backend.event_store()
    queries = backend.query_store(store)
    clock = FixedClock(step=timedelta(0))  # time moves only when the test says so
    orders = CqrsFramework(Order, store, clock=clock)
    payments = CqrsFramework(Payment, store, clock=clock)

    def work() -> list[Any]:  # each worker builds its own objects, as separate processes would
        runner = ProcessRunner(Unforgiving, store, queries, [orders, payments], clock=clock, batch_size=3)
        return [*projections(store, queries), runner]

    def log_types(aggregate_type: str, aggregate_id: str) -> list[str]:
        return [e.event_type for e in store.load_events(aggregate_type, aggregate_id)]

    def caught_up() -> bool:
        return work()[-1].position == max(e.position for e in store.read_all())

    ids = [f"O-{n}" for n in range(6)]
    for oid in ids:
        orders.execute(oid, PlaceOrder(order_id=oid, amount=Decimal("9.99")))
    caplog.set_level(logging.INFO, logger="cqrs_lab")
    first = ProjectionWorker(work(), lease=0.5, name="first")
    second = ProjectionWorker(work(), lease=0.5, name="second")
    with running(first) as one, running(second) as two:
        wait_until("every payment is requested", lambda: all(log_types("Payment", o) for o in ids))
        for oid in ids[:3]:
            payments.execute(oid, ReceivePayment())
        wait_until(
            "the paid orders are confirmed", lambda: all(len(log_types("Order", o)) == 2 for o in ids[:3])
        )
        wait_until("the runner has caught up", caught_up)
        assert [d.process_id for d in work()[-1].pending()] == ids[3:]  # the paid ones were cancelled
        clock.advance(PAYMENT_TIMEOUT + timedelta(minutes=1))
        wait_until(
            "the unpaid orders are cancelled", lambda: all(len(log_types("Order", o)) == 2 for o in ids)
        )
        payments.execute("O-5", ReceivePayment())  # too late: its ConfirmOrder is rejected
        wait_until("the rejection is reported", lambda: "ConfirmOrder sent to Order/O-5" in caplog.text)
        wait_until("the runner has caught up", caught_up)
    for oid in ids[:3]:
        assert log_types("Order", oid) == ["OrderPlaced", "OrderConfirmed"]
        assert log_types("Payment", oid) == ["PaymentRequested", "PaymentReceived"]
    for oid in ids[3:]:
        assert log_types("Order", oid) == ["OrderPlaced", "OrderCancelled"]
    assert work()[-1].pending() == []
    runner_name = "Unforgiving"
    # every event handled once, and every deadline fired once, by one worker or the other
    assert one["applied"][runner_name] + two["applied"][runner_name] == work()[-1].position
    assert first.fired[runner_name] + second.fired[runner_name] == 3
    assert "O-5 was rejected: order is cancelled" in caplog.text
    assert all(w.projections[-1].failures == [] for w in (first, second))  # reported, not kept
    assert "took process runner Unforgiving at checkpoint" in caplog.text
    handled, fired = first.applied[runner_name], first.fired[runner_name]
    assert f"{runner_name}: {handled} event(s) handled and {fired} deadline(s) fired here" in caplog.text


# -- a batch still in flight when its worker's lease is lost -------------------------
class Seen(Query):
    """Every position applied, so an event applied twice (or missed) shows."""

    query_type = "tests.worker.Seen"
    positions: list[int] = Field(default_factory=list)

    def update(self, envelope: EventEnvelope) -> None:
        self.positions.append(envelope.position)


class HeldOpen(Projection):
    """Holds its batches open (read, not yet applied) until ``release`` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.holding = threading.Event()
        self.release = threading.Event()

    def _apply(self, position: int, batch: list[EventEnvelope]) -> None:
        self.holding.set()
        assert self.release.wait(HANG_GUARD)
        super()._apply(position, batch)


@pytest.mark.postgres
def test_a_batch_in_flight_when_its_workers_session_is_killed_writes_nothing_after_the_takeover(
    postgres_dsn: str, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    kit = Backend("postgres", dsn=postgres_dsn, schema=pg_schema)
    try:
        store = kit.event_store()
        queries = kit.query_store(store)
        last = _write(CqrsFramework(BankAccount, store), 3, 20)
        caplog.set_level(logging.INFO, logger="cqrs_lab")
        held = HeldOpen("seen", store, queries, [Seen], batch_size=10)
        with running(ProjectionWorker([held], lease=0.5, name="late")) as late:
            assert held.holding.wait(HANG_GUARD)  # it holds the lease and has read events 1-10
            with psycopg.connect(postgres_dsn, autocommit=True) as conn:
                killed = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'cqrs_lab worker late'"
                ).fetchall()
            assert killed == [(True,)]  # its lease is gone; its batch goes on, on a pooled connection
            seen = Projection("seen", store, queries, [Seen], batch_size=10)
            with running(ProjectionWorker([seen], lease=0.5, name="next")) as next_:
                seen.wait_for(last.position, timeout=HANG_GUARD)  # taken over from checkpoint 0
                held.release.set()
                wait_until("the late batch is refused", lambda: "another runner moved" in caplog.text)
        assert (
            f"projection seen: another runner moved the checkpoint from 0 to {last.position}" in caplog.text
        )
        assert late["applied"] == {"seen": 0}
        assert next_["applied"] == {"seen": last.position}
        applied = sorted(p for a in range(3) for p in queries.load(Seen, f"A-{a}").payload.positions)
        assert applied == list(range(1, last.position + 1))  # every event once
        assert seen.position == last.position
    finally:
        kit.close()
