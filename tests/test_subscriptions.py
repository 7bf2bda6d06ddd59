"""Live subscriptions and read-your-writes on every store (memory, DuckDB, PostgreSQL).

Waits here are bounded by generous timeouts that only guard against hangs; no
test asserts how fast anything is.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest

from cqrs_lab import ConfigurationError, CqrsFramework, Projection, ProjectionLagError
from cqrs_lab.examples.bank_account import BankAccount, BankAccountQuery, DepositMoney, OpenBankAccount
from tests.conftest import Backend

HANG_GUARD = 30.0


def _bank(backend: Backend) -> tuple[Any, CqrsFramework[BankAccount]]:
    store = backend.event_store()
    return store, CqrsFramework(BankAccount, store)


def _open(bank: CqrsFramework[BankAccount], *accounts: str) -> list[int]:
    return [bank.execute(a, OpenBankAccount(account_id=a))[0].position for a in accounts]


def test_subscription_yields_stored_then_new_events_in_order_and_ends_when_idle(backend: Backend) -> None:
    store, bank = _bank(backend)
    _open(bank, "A", "B")
    seen: list[tuple[int, str]] = []
    first_two = threading.Event()

    def write_more() -> None:
        assert first_two.wait(HANG_GUARD)
        for i in range(5):
            bank.execute("A", DepositMoney(amount=Decimal(i + 1)))

    writer = threading.Thread(target=write_more)
    writer.start()
    with store.subscribe(after_position=0, timeout=1.0) as events:
        for envelope in events:
            seen.append((envelope.position, envelope.payload.event_type))
            if len(seen) == 2:
                first_two.set()
            if len(seen) == 7:
                break
    writer.join(HANG_GUARD)
    assert [p for p, _ in seen] == list(range(1, 8))
    assert [t for _, t in seen[:2]] == ["BankAccountOpened"] * 2
    assert {t for _, t in seen[2:]} == {"CustomerDepositedMoney"}
    assert [e.position for e in store.read_all()] == list(range(1, 8))

    with store.subscribe(after_position=5, timeout=0.2) as events:  # idle: ends by itself
        assert [e.position for e in events] == [6, 7]
        assert events.position == 7


def test_subscription_with_timeout_zero_reads_what_is_there_and_stops(backend: Backend) -> None:
    store, bank = _bank(backend)
    _open(bank, "A", "B", "C")
    with store.subscribe(after_position=1, timeout=0, batch_size=1) as events:
        assert [e.aggregate_id for e in events] == ["B", "C"]


def test_a_subscription_waiting_forever_is_stopped_from_another_thread(backend: Backend) -> None:
    store, bank = _bank(backend)
    _open(bank, "A")
    got: list[int] = []
    with store.subscribe(after_position=0, timeout=None) as events:
        reader = threading.Thread(target=lambda: got.extend(e.position for e in events))
        reader.start()
        events.close()
        reader.join(HANG_GUARD)
        assert not reader.is_alive()
    assert got in ([], [1])  # it may or may not have read the one event before it was closed
    assert events.closed


def test_subscribe_refuses_bad_arguments(backend: Backend) -> None:
    store = backend.event_store()
    for kwargs in ({"timeout": -1}, {"poll_interval": 0}, {"after_position": -3}, {"batch_size": 0}):
        with pytest.raises(ConfigurationError), store.subscribe(**kwargs):
            pass


def test_wait_for_returns_once_a_projection_in_another_thread_has_applied_the_event(
    backend: Backend,
) -> None:
    store, bank = _bank(backend)
    queries = backend.query_store(store)
    accounts = Projection("accounts", store, queries, [BankAccountQuery])
    _open(bank, "ACC-1")
    [event] = bank.execute("ACC-1", DepositMoney(amount=Decimal("5")))
    worker = threading.Thread(target=accounts.run)
    worker.start()
    assert accounts.wait_for(event.position, timeout=HANG_GUARD) >= event.position
    worker.join(HANG_GUARD)
    assert queries.load(BankAccountQuery, "ACC-1").payload.balance == Decimal("5")


def test_wait_for_times_out_with_an_error_saying_how_far_behind(backend: Backend) -> None:
    store, bank = _bank(backend)
    queries = backend.query_store(store)
    accounts = Projection("accounts", store, queries, [BankAccountQuery])
    _open(bank, "A", "B")
    accounts.run()
    _open(bank, "C", "D", "E")
    with pytest.raises(ProjectionLagError) as caught:
        accounts.wait_for(5, timeout=0.05)
    error = caught.value
    assert (error.position, error.reached, error.behind) == (5, 2, 3)
    assert "3 position(s) behind" in str(error) and "up to position 2" in str(error)
    assert isinstance(error, TimeoutError)
    assert accounts.wait_for(2, timeout=0) == 2
