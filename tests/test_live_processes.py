"""Live reading across real OS processes on one PostgreSQL: subscriptions, workers, read-your-writes.

Writers, the subscriber and the workers are separate Python processes, as in
production. Timeouts here only guard against hangs; the one bound that is
asserted, takeover within the lease, is the contract of ``--lease``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from cqrs_lab import CqrsFramework, MemoryQueryStore, Projection
from cqrs_lab.examples.bank_account import BankAccount, BankAccountQuery, DepositMoney, OpenBankAccount
from cqrs_lab.examples.checkout import Order, Payment, PlaceOrder, ReceivePayment
from cqrs_lab.stores.postgres import OWNERS, PostgresEventStore, PostgresQueryStore
from tests.live_views import Activity, processes, projections

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD = 60.0
ACCOUNTS = [f"ACC-{i}" for i in range(4)]

SUBSCRIBER = """
import json, sys
import cqrs_lab.examples.bank_account
from cqrs_lab.stores.postgres import PostgresEventStore

dsn, schema, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = []
with PostgresEventStore(dsn, schema=schema, pool_size=1) as store:
    # a poll so slow that only NOTIFY can deliver 600 commits before the test's guard
    with store.subscribe(after_position=0, timeout=60, poll_interval=30) as events:
        print("listening", flush=True)
        for envelope in events:
            seen.append([envelope.position, envelope.event_id])
            if len(seen) == expected:
                break
print(json.dumps(seen))
"""

DEPOSITOR = """
import sys
from decimal import Decimal
from cqrs_lab import CqrsFramework
from cqrs_lab.examples.bank_account import BankAccount, DepositMoney
from cqrs_lab.stores.postgres import PostgresEventStore

dsn, schema, account, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with PostgresEventStore(dsn, schema=schema, pool_size=1) as store:
    bank = CqrsFramework(BankAccount, store, retries=1000)
    for i in range(count):
        bank.execute(account, DepositMoney(amount=Decimal(i % 9 + 1)))
"""


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    """Kill what a test started and left running (a failed test must not leave workers behind)."""
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
        process.communicate()


def spawn(*args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    _STARTED.append(process)
    return process


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    out, err = process.communicate(timeout=HANG_GUARD)
    assert process.returncode == 0, err
    return out, err


def open_accounts(dsn: str, schema: str) -> None:
    with PostgresEventStore(dsn, schema=schema) as store:
        bank = CqrsFramework(BankAccount, store)
        for account in ACCOUNTS:
            bank.execute(account, OpenBankAccount(account_id=account))


def worker(dsn: str, schema: str, name: str, spec: str, lease: float) -> subprocess.Popen[str]:
    return spawn(
        "-m", "cqrs_lab.cli", "project", "--dsn", dsn, "--schema", schema,
        "--projection", spec, "--lease", str(lease), "--name", name,
    )  # fmt: skip


def owners(dsn: str, schema: str, projection: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(OWNERS, [schema, projection]).fetchall()
    return [str(name).removeprefix("cqrs_lab worker ") for name, _ in rows]


def wait_until(what: str, check: object) -> float:
    """Poll ``check()`` until it is true; returns when (monotonic). Fails after HANG_GUARD."""
    deadline = time.monotonic() + HANG_GUARD
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)
    return time.monotonic()


def test_a_subscriber_process_sees_every_event_of_four_writer_processes_once_in_order(
    postgres_dsn: str, pg_schema: str
) -> None:
    open_accounts(postgres_dsn, pg_schema)
    total = len(ACCOUNTS) + 4 * 150
    subscriber = spawn("-c", SUBSCRIBER, postgres_dsn, pg_schema, str(total))
    assert subscriber.stdout is not None
    assert subscriber.stdout.readline().strip() == "listening"
    writers = [spawn("-c", DEPOSITOR, postgres_dsn, pg_schema, account, "150") for account in ACCOUNTS]
    for w in writers:
        finish(w)
    out, _ = finish(subscriber)
    seen = json.loads(out)
    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store:
        log = [[e.position, e.event_id] for e in store.read_all()]
    assert len(log) == total
    assert seen == log  # every event once, in position order, nothing skipped
    assert [position for position, _ in seen] == list(range(1, total + 1))


def test_three_workers_two_projections_owner_killed_mid_run_views_exact_and_taken_over_within_lease(
    postgres_dsn: str, pg_schema: str
) -> None:
    lease = 10.0
    open_accounts(postgres_dsn, pg_schema)
    writer = spawn("-c", DEPOSITOR, postgres_dsn, pg_schema, ACCOUNTS[0], "400")
    workers = {
        name: worker(postgres_dsn, pg_schema, name, "tests.live_views:projections", lease)
        for name in ("w1", "w2", "w3")
    }
    held: list[list[str]] = []

    def shared_out() -> bool:  # one worker each (a stable state: the fair share is 1)
        held[:] = [owners(postgres_dsn, pg_schema, p) for p in ("balances", "activity")]
        return all(len(names) == 1 for names in held) and held[0] != held[1]

    wait_until("the three workers share the two projections out", shared_out)
    [victim] = held[1]
    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store, PostgresQueryStore(store) as queries:
        activity = projections(store, queries)[1]
        wait_until("activity is mid-run", lambda: activity.position > 0)
        workers[victim].kill()
        killed_at = time.monotonic()
        assert workers[victim].wait(HANG_GUARD) == -signal.SIGKILL
        taken_at = wait_until(
            "another worker takes activity over",
            lambda: owners(postgres_dsn, pg_schema, "activity") not in ([], [victim]),
        )
        assert taken_at - killed_at < lease
        finish(writer)
        head = max(e.position for e in store.read_all())
        for projection in projections(store, queries):
            assert projection.wait_for(head, timeout=HANG_GUARD) == head  # wait_for across processes
        expected = MemoryQueryStore()
        for projection in projections(store, expected):
            projection.run()
        for account in ACCOUNTS:
            for query in (Activity, BankAccountQuery):
                assert queries.load(query, account).payload == expected.load(query, account).payload
        assert sum(queries.load(Activity, a).payload.events for a in ACCOUNTS) == head
    logs = {}
    for name, process in workers.items():
        if name != victim:
            process.send_signal(signal.SIGTERM)
            logs[name] = finish(process)
    survivors_took = [err for _, err in logs.values() if "took projection activity" in err]
    assert survivors_took, "no surviving worker logged taking activity over"
    for out, err in logs.values():
        assert "stopped (balances:" in err
        assert "projection activity:" in out and "event(s) applied by this worker" in out


def test_wait_for_sees_a_worker_process_apply_the_command_just_executed(
    postgres_dsn: str, pg_schema: str
) -> None:
    open_accounts(postgres_dsn, pg_schema)
    process = worker(postgres_dsn, pg_schema, "rw", "cqrs_lab.examples.bank_account:projections", 10)
    try:
        with (
            PostgresEventStore(postgres_dsn, schema=pg_schema) as store,
            PostgresQueryStore(store) as queries,
        ):
            bank = CqrsFramework(BankAccount, store)
            accounts = Projection("accounts", store, queries, [BankAccountQuery])
            balance = Decimal(0)
            for amount in (Decimal("5"), Decimal("7.25"), Decimal("1")):
                [event] = bank.execute("ACC-1", DepositMoney(amount=amount))
                accounts.wait_for(event.position, timeout=HANG_GUARD)
                balance += amount
                assert queries.load(BankAccountQuery, "ACC-1").payload.balance == balance
    finally:
        process.send_signal(signal.SIGINT)
        _, err = finish(process)
    assert "worker rw stopped (accounts: 7 event(s) applied here)" in err


def test_two_workers_run_a_process_runner_in_one_of_them_owner_killed_nothing_sent_twice(
    postgres_dsn: str, pg_schema: str
) -> None:
    lease = 10.0
    ids = [f"O-{n}" for n in range(80)]
    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store:
        orders = CqrsFramework(Order, store)
        for oid in ids:
            orders.execute(oid, PlaceOrder(order_id=oid, amount=Decimal("4.50")))
    workers = {
        name: worker(postgres_dsn, pg_schema, name, "tests.live_views:processes", lease)
        for name in ("p1", "p2")
    }
    held: list[str] = []

    def one_owner() -> bool:
        held[:] = owners(postgres_dsn, pg_schema, "Checkout")
        return len(held) == 1

    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store, PostgresQueryStore(store) as queries:
        [checkout] = processes(store, queries)
        wait_until("one worker holds the runner", one_owner)
        [victim] = held
        wait_until("the runner is mid-run", lambda: checkout.position > 0)
        workers[victim].kill()
        killed_at = time.monotonic()
        assert workers[victim].wait(HANG_GUARD) == -signal.SIGKILL
        [survivor] = [name for name in workers if name != victim]
        taken_at = wait_until(
            "the other worker takes the runner over",
            lambda: owners(postgres_dsn, pg_schema, "Checkout") == [survivor],
        )
        assert taken_at - killed_at < lease

        def types(aggregate_type: str, oid: str) -> list[str]:
            return [e.event_type for e in store.load_events(aggregate_type, oid)]

        # each order: payment requested, then cancelled by its deadline (the runner's clock is ahead)
        wait_until("every order is cancelled", lambda: all(len(types("Order", o)) == 2 for o in ids))
        payments = CqrsFramework(Payment, store)
        for oid in ids[:10]:
            payments.execute(oid, ReceivePayment())  # too late: its ConfirmOrder is rejected, then refunded
        wait_until(
            "the late payments are refunded", lambda: all(len(types("Payment", o)) == 3 for o in ids[:10])
        )
        head = max(e.position for e in store.read_all())
        wait_until("the runner has caught up", lambda: checkout.position == head)
        for oid in ids:  # nothing sent twice
            assert types("Order", oid) == ["OrderPlaced", "OrderCancelled"]
        for oid in ids[:10]:
            assert types("Payment", oid) == ["PaymentRequested", "PaymentReceived", "PaymentRefunded"]
        for oid in ids[10:]:
            assert types("Payment", oid) == ["PaymentRequested"]
        assert checkout.pending() == []
        assert head == len(ids) * 3 + 10 * 2
    workers[survivor].send_signal(signal.SIGTERM)
    out, err = finish(workers[survivor])
    assert "took process runner Checkout" in err
    assert "process runner Checkout:" in out and "deadline(s) fired by this worker" in out
