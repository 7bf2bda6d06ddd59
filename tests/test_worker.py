"""ProjectionWorker in this process: every projection in exactly one worker, views exact.

The multi-process behaviour (SIGKILL, takeover, the CLI) is in test_live_processes.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import psycopg
import pytest

from cqrs_lab import ConfigurationError, CqrsFramework, MemoryQueryStore
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.examples.bank_account import BankAccount, DepositMoney, OpenBankAccount
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
    with pytest.raises(ConfigurationError, match="is not a Projection"):
        ProjectionWorker([object()])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="two projections are named 'activity'"):
        ProjectionWorker(projections(store, queries) + projections(store, queries)[1:])
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
