"""Process managers and their runner: events in, commands out, now or at a deadline; state,
deadlines and checkpoint kept with the query store, on memory, DuckDB and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cqrs_lab import (
    CancelSchedule,
    ConcurrencyError,
    ConfigurationError,
    CorruptRecordError,
    CqrsFramework,
    EventEnvelope,
    FixedClock,
    ProcessManager,
    ProcessRunner,
    Schedule,
    Send,
    SequentialIds,
    TechnicalError,
)
from cqrs_lab.examples.checkout import (
    PAYMENT_TIMEOUT,
    CancelOrder,
    Checkout,
    ConfirmOrder,
    Order,
    OrderCancelled,
    OrderPlaced,
    OrderState,
    Payment,
    PaymentRefunded,
    PaymentRequested,
    PlaceOrder,
    ReceivePayment,
    RefundPayment,
    RequestPayment,
    order_decider,
)
from cqrs_lab.process import Action, Deadline, Rejection
from cqrs_lab.stores.base import StoredDeadline, StoredProcess
from tests.conftest import Backend
from tests.domain_fixtures import REMINDER_AFTER, Counter, Increment, Tallies

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Shop:
    """Orders and payments on one backend, and a checkout runner, on one fixed clock."""

    backend: Backend
    store: Any
    views: Any
    clock: FixedClock
    orders: CqrsFramework[Order]
    payments: CqrsFramework[Payment]

    def runner(self, cls: type[ProcessRunner[Any]] = ProcessRunner, **kwargs: Any) -> ProcessRunner[Any]:
        return cls(Checkout, self.store, self.views, [self.orders, self.payments], clock=self.clock, **kwargs)

    def place(self, *order_ids: str, amount: str = "20.00") -> None:
        for oid in order_ids:
            self.orders.execute(oid, PlaceOrder(order_id=oid, amount=Decimal(amount)))

    def types(self, aggregate_type: str, aggregate_id: str) -> list[str]:
        return [e.event_type for e in self.store.load_events(aggregate_type, aggregate_id)]

    def reopened_views(self) -> Any:
        """Another query store object on the same database (memory: the same object)."""
        return self.views if self.backend.name == "memory" else self.backend.query_store()


def shop(backend: Backend) -> Shop:
    store = backend.event_store()
    views = backend.query_store(store)
    clock = FixedClock()
    ids = SequentialIds()
    return Shop(
        backend,
        store,
        views,
        clock,
        CqrsFramework(Order, store, clock=clock, ids=ids),
        CqrsFramework(Payment, store, clock=clock, ids=ids),
    )


def test_run_once_sends_what_an_event_calls_for_with_caused_by_and_a_command_id(backend: Backend) -> None:
    s = shop(backend)
    [placed] = s.orders.execute("O-1", PlaceOrder(order_id="O-1", amount=Decimal("20.00")))
    checkout = s.runner()
    assert checkout.run_once() == 1
    [requested] = s.store.load_events("Payment", "O-1")
    assert requested.payload == PaymentRequested(order_id="O-1", amount=Decimal("20.00"))
    assert requested.metadata["causation_id"] == placed.event_id
    assert requested.metadata["correlation_id"] == placed.metadata["correlation_id"]
    assert requested.metadata["command_id"] == f"Checkout/O-1/{placed.event_id}/0"
    assert requested.metadata["process"] == "Checkout" and requested.metadata["process_id"] == "O-1"
    assert checkout.run_once() == 0  # nothing new: nothing sent again
    assert s.types("Payment", "O-1") == ["PaymentRequested"]


def test_run_once_counts_routed_events_and_handles_what_its_own_commands_caused(backend: Backend) -> None:
    s = shop(backend)
    s.place("O-1", "O-2")
    checkout = s.runner()
    s.payments.execute("O-9", RequestPayment(order_id="O-9", amount=Decimal("1.00")))  # routed nowhere
    assert checkout.run_once() == 2
    s.payments.execute("O-1", ReceivePayment())
    # PaymentReceived sends ConfirmOrder; the OrderConfirmed it causes is read in the same call
    assert checkout.run_once() == 1
    assert checkout.position == max(e.position for e in s.store.read_all())
    assert s.types("Order", "O-1") == ["OrderPlaced", "OrderConfirmed"]


def test_run_once_reads_at_most_limit_events_and_reports_each_batch(backend: Backend) -> None:
    s = shop(backend)
    s.payments.execute("O-9", RequestPayment(order_id="O-9", amount=Decimal("1.00")))  # routed nowhere
    s.place("O-1", "O-2", "O-3", "O-4")
    placed = [e.position for e in s.store.read_all()]
    checkout = s.runner(batch_size=2)
    steps: list[int] = []
    assert checkout.run_once(limit=3, progress=steps.append) == 2  # O-9's event, O-1, O-2
    assert steps == [2, 1] and checkout.position == placed[2]
    assert s.types("Payment", "O-3") == []
    assert checkout.run_once(progress=steps.append) == 2  # O-3, O-4, then what their sends caused
    assert sum(steps) == len(list(s.store.read_all())) == checkout.position
    assert checkout.run_once(limit=5) == 0


def test_state_deadlines_and_checkpoint_live_in_the_query_store(backend: Backend) -> None:
    s = shop(backend)
    s.place("O-1")
    s.runner().run_once()
    s.payments.execute("O-1", ReceivePayment())
    s.place("O-2")
    s.runner().run_once()
    again = ProcessRunner(Checkout, s.store, s.reopened_views(), [s.orders, s.payments])
    assert again.state("O-1") == Checkout(paid=True)
    assert again.state("O-2") == Checkout()
    assert again.state("never-seen") == Checkout()
    assert again.position == max(e.position for e in s.store.read_all())
    assert again.run_once() == 0
    [deadline] = again.pending()
    placed_o2 = s.store.load_events("Order", "O-2")[0]
    timeout = Send(Order, "O-2", CancelOrder(reason="unpaid"))
    assert deadline == Deadline("O-2", "payment-timeout", placed_o2.recorded_at + PAYMENT_TIMEOUT, timeout)


def test_fire_due_sends_what_is_due_counting_after_from_the_events_recorded_at(backend: Backend) -> None:
    s = shop(backend)
    s.place("O-1")
    s.clock.advance(timedelta(minutes=10))
    s.place("O-2")
    checkout = s.runner()
    checkout.run_once()
    placed_o1 = s.store.load_events("Order", "O-1")[0].recorded_at
    assert checkout.fire_due(now=placed_o1 + PAYMENT_TIMEOUT - timedelta(microseconds=1)) == 0
    assert checkout.fire_due(now=placed_o1 + PAYMENT_TIMEOUT) == 1
    assert s.types("Order", "O-1") == ["OrderPlaced", "OrderCancelled"]
    assert s.types("Order", "O-2") == ["OrderPlaced"]
    assert [d.process_id for d in checkout.pending()] == ["O-2"]
    s.clock.advance(timedelta(minutes=31))
    assert checkout.fire_due() == 1  # now from the runner's clock
    assert s.types("Order", "O-2") == ["OrderPlaced", "OrderCancelled"]
    assert checkout.pending() == []
    assert checkout.fire_due() == 0
    cancelled = s.store.load_events("Order", "O-2")[1]
    assert cancelled.metadata["deadline"] == "payment-timeout"
    assert cancelled.metadata["causation_id"] == s.store.load_events("Order", "O-2")[0].event_id


def test_cancel_schedule_cancels_the_pending_deadline(backend: Backend) -> None:
    s = shop(backend)
    s.place("O-1")
    checkout = s.runner()
    checkout.run_once()
    s.payments.execute("O-1", ReceivePayment())
    checkout.run_once()
    assert checkout.pending() == []
    s.clock.advance(timedelta(hours=2))
    assert checkout.fire_due() == 0
    assert s.types("Order", "O-1") == ["OrderPlaced", "OrderConfirmed"]


class Reminders(ProcessManager):
    """Schedules by absolute time, reschedules a name, and cancels in one reaction."""

    @classmethod
    def route(cls, envelope: EventEnvelope) -> str | None:
        return envelope.aggregate_id if envelope.aggregate_type == "Order" else None

    def react(self, envelope: EventEnvelope) -> list[Action]:
        match envelope.payload:
            case OrderPlaced(order_id=oid):
                remind = Send(Order, oid, CancelOrder(reason="first"))
                last = Send(Order, oid, CancelOrder(reason="x"))
                return [
                    Schedule("first", at=T0 + timedelta(hours=1), send=remind),
                    Schedule("second", at=T0 + timedelta(hours=2), send=remind),
                    Schedule("first", at=T0 + timedelta(hours=3), send=last),
                    CancelSchedule("second"),
                ]
        return []


def test_schedule_at_a_time_and_a_second_schedule_of_a_name_replaces_the_first(backend: Backend) -> None:
    s = shop(backend)
    s.place("O-1")
    runner = ProcessRunner(Reminders, s.store, s.views, [s.orders])
    runner.run_once()
    assert runner.pending() == [
        Deadline("O-1", "first", T0 + timedelta(hours=3), Send(Order, "O-1", CancelOrder(reason="x")))
    ]
    assert runner.fire_due(now=T0 + timedelta(hours=2, minutes=59)) == 0
    assert runner.fire_due(now=T0 + timedelta(hours=3)) == 1
    assert s.store.load_events("Order", "O-1")[1].payload == OrderCancelled(order_id="O-1", reason="x")


class NoCompensation(ProcessManager):
    @classmethod
    def route(cls, envelope: EventEnvelope) -> str | None:
        return envelope.aggregate_id if isinstance(envelope.payload, OrderPlaced) else None

    def react(self, envelope: EventEnvelope) -> list[Action]:
        oid = envelope.aggregate_id
        return [Send(Order, oid, ConfirmOrder()), Send(Payment, oid, RefundPayment(reason="nothing paid"))]


def test_a_rejected_command_is_recorded_in_failures_and_the_run_goes_on(backend: Backend) -> None:
    s = shop(backend)
    s.place("O-1", "O-2")
    runner = ProcessRunner(NoCompensation, s.store, s.views, [s.orders, s.payments])
    assert runner.run_once() == 2
    assert [(f.process_id, type(f.send.command).__name__, f.error.code) for f in runner.failures] == [
        ("O-1", "RefundPayment", "not_received"),
        ("O-2", "RefundPayment", "not_received"),
    ]
    failure = runner.failures[0]
    assert isinstance(failure, Rejection) and failure.command_id.startswith("NoCompensation/O-1/")
    assert s.types("Order", "O-2") == ["OrderPlaced", "OrderConfirmed"]  # the run went on
    assert runner.position == max(e.position for e in s.store.read_all())


def test_on_rejected_compensates_a_payment_that_came_after_the_order_was_cancelled(backend: Backend) -> None:
    s = shop(backend)
    s.place("O-1")
    checkout = s.runner()
    checkout.run_once()
    s.payments.execute("O-1", ReceivePayment())  # in the log, not yet seen by the runner...
    s.clock.advance(PAYMENT_TIMEOUT)
    assert checkout.fire_due() == 1  # ...when the timeout cancels the order
    checkout.run_once()  # ConfirmOrder is rejected: the order is cancelled; on_rejected refunds
    assert s.types("Order", "O-1") == ["OrderPlaced", "OrderCancelled"]
    assert s.types("Payment", "O-1") == ["PaymentRequested", "PaymentReceived", "PaymentRefunded"]
    refunded = s.store.load_events("Payment", "O-1")[2]
    assert refunded.payload == PaymentRefunded(order_id="O-1", reason="order was cancelled")
    received = s.store.load_events("Payment", "O-1")[1]
    assert refunded.metadata["command_id"] == f"Checkout/O-1/{received.event_id}/1/0"
    assert refunded.metadata["rejected_command"] == "ConfirmOrder"  # what the refund answers
    assert refunded.metadata["causation_id"] == received.event_id
    assert checkout.failures == []
    assert checkout.state("O-1") == Checkout(paid=True, cancelled=True)


class RefundThenCancelLater(ProcessManager):
    """Refunds on OrderPlaced (rejected: nothing was paid); on that rejection, asks for the payment
    and schedules a cancel."""

    @classmethod
    def route(cls, envelope: EventEnvelope) -> str | None:
        return envelope.aggregate_id if isinstance(envelope.payload, OrderPlaced) else None

    def react(self, envelope: EventEnvelope) -> list[Action]:
        return [Send(Payment, envelope.aggregate_id, RefundPayment(reason="nothing paid"))]

    def on_rejected(self, send: Send, error: Any) -> list[Action]:
        oid = send.aggregate_id
        return [
            Send(Payment, oid, RequestPayment(order_id=oid, amount=Decimal("1.00"))),
            Schedule("cancel", after=timedelta(minutes=1), send=Send(Order, oid, CancelOrder(reason="late"))),
        ]


def test_what_on_rejected_sends_names_the_rejected_command_and_a_deadline_it_set_does_not(
    backend: Backend,
) -> None:
    s = shop(backend)
    s.place("O-1")
    placed = s.store.load_events("Order", "O-1")[0]
    runner = ProcessRunner(RefundThenCancelLater, s.store, s.views, [s.orders, s.payments], clock=s.clock)
    runner.run_once()
    [requested] = s.store.load_events("Payment", "O-1")
    assert requested.metadata["rejected_command"] == "RefundPayment"
    assert requested.metadata["causation_id"] == placed.event_id and "deadline" not in requested.metadata
    s.clock.advance(timedelta(minutes=2))
    assert runner.fire_due() == 1
    cancelled = s.store.load_events("Order", "O-1")[1]
    assert cancelled.metadata["deadline"] == "cancel" and "rejected_command" not in cancelled.metadata
    assert cancelled.metadata["causation_id"] == placed.event_id


class CrashBeforeCommit(ProcessRunner[Any]):
    """Dies (an exception) after sending a batch's commands, before committing the batch."""

    def _commit(self, work: Any, checkpoint: tuple[int, int] | None) -> None:
        raise RuntimeError("crashed before the checkpoint")


def tallies(s: Shop, cls: type[ProcessRunner[Any]] = ProcessRunner, **kwargs: Any) -> ProcessRunner[Any]:
    """A ``Tallies`` runner: it sends ``Increment``, which is not idempotent."""
    return cls(Tallies, s.store, s.views, [CqrsFramework(Counter, s.store, clock=s.clock)], **kwargs)


def counts(s: Shop) -> tuple[int, int]:
    counters = CqrsFramework(Counter, s.store)
    return counters.load("placed").value, counters.load("reminded").value


def test_a_runner_that_crashed_after_sending_sends_nothing_twice_when_run_again(backend: Backend) -> None:
    s = shop(backend)
    s.place("O-1", "O-2")
    with pytest.raises(RuntimeError, match="crashed"):
        tallies(s, CrashBeforeCommit).run_once()
    assert counts(s) == (2, 0)  # sent, but nothing committed for it
    again = tallies(s)
    assert again.position == 0 and again.pending() == []
    assert again.run_once() == 2
    assert counts(s) == (2, 0)
    assert again.state("all").orders == 2 and len(again.pending()) == 2
    s.clock.advance(REMINDER_AFTER * 2)
    with pytest.raises(RuntimeError, match="crashed"):
        tallies(s, CrashBeforeCommit).fire_due()
    assert counts(s) == (2, 2)
    assert again.fire_due() == 2
    assert counts(s) == (2, 2)
    assert again.pending() == []


class CommitsLate(ProcessRunner[Any]):
    """Lets another runner of the same name run in full just before committing."""

    other: ProcessRunner[Any]

    def _commit(self, work: Any, checkpoint: tuple[int, int] | None) -> None:
        self.other.run_once()
        super()._commit(work, checkpoint)


def test_two_runners_of_one_name_never_both_commit_a_batch(backend: Backend) -> None:
    s = shop(backend)
    CqrsFramework(Counter, s.store).execute("elsewhere", Increment(by=1))  # concerns no instance
    s.place("O-1")
    late = tallies(s, CommitsLate, batch_size=1)  # its first batch holds no state, just the checkpoint
    late.other = tallies(s)
    with pytest.raises(ConcurrencyError, match="another runner"):
        late.run_once()
    assert tallies(s).position == max(e.position for e in s.store.read_all())
    assert tallies(s).run_once() == 0
    assert tallies(s).state("all").orders == 1
    assert counts(s) == (1, 0)


def test_a_send_to_an_aggregate_without_a_framework_commits_nothing(backend: Backend) -> None:
    s = shop(backend)
    s.place("O-1")
    runner = ProcessRunner(Checkout, s.store, s.views, [s.orders])
    with pytest.raises(ConfigurationError, match="no framework for 'Payment'"):
        runner.run_once()
    assert runner.position == 0 and runner.pending() == []


class Garbage(ProcessManager):
    @classmethod
    def route(cls, envelope: EventEnvelope) -> str | None:
        return "one"

    def react(self, envelope: EventEnvelope) -> list[Action]:
        return [PlaceOrder(order_id="x", amount=Decimal("1.00"))]  # type: ignore[list-item]


def test_react_returning_something_else_than_actions_is_a_technical_error(backend: Backend) -> None:
    s = shop(backend)
    s.place("O-1")
    runner = ProcessRunner(Garbage, s.store, s.views, [s.orders])
    with pytest.raises(TechnicalError, match=r"Garbage\.react returned"):
        runner.run_once()
    assert runner.position == 0


def test_a_decider_can_be_the_target_of_sends(backend: Backend) -> None:
    s = shop(backend)
    orders = CqrsFramework(order_decider, s.store, clock=s.clock)
    orders.execute("O-1", PlaceOrder(order_id="O-1", amount=Decimal("3.00")))
    checkout = ProcessRunner(Checkout, s.store, s.views, [orders, s.payments], clock=s.clock)
    checkout.run_once()
    [deadline] = checkout.pending()
    assert deadline.send == Send(order_decider, "O-1", CancelOrder(reason="unpaid"))
    s.clock.advance(timedelta(hours=1))
    checkout.fire_due()
    assert orders.load("O-1") == OrderState(order_id="O-1", amount=Decimal("3.00"), status="cancelled")


def test_a_stored_state_that_no_longer_decodes_is_a_corrupt_record_error(backend: Backend) -> None:
    s = shop(backend)
    bad = StoredProcess("Checkout", "O-1", 1, '{"paid": "maybe", "extra": 1}')
    s.views.commit_processes("Checkout", [bad])
    with pytest.raises(CorruptRecordError, match=r"Checkout/O-1 \(version 1\) does not decode"):
        s.runner().state("O-1")


def test_a_deadline_whose_command_class_is_not_defined_is_a_corrupt_record_error(backend: Backend) -> None:
    s = shop(backend)
    row = StoredDeadline(
        "Checkout", "O-1", "gone", T0, "e/0", "Order", "O-1", "nowhere.Vanished", "{}", "{}"
    )
    s.views.commit_processes("Checkout", [], deadlines=[row])
    with pytest.raises(CorruptRecordError, match=r"nowhere\.Vanished is not defined"):
        s.runner().fire_due(now=T0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of at= or after="),
        ({"at": T0, "after": timedelta(1)}, "exactly one of at= or after="),
        ({"at": datetime(2024, 1, 1)}, "no timezone"),
        ({"after": timedelta(-1)}, "negative"),
    ],
)
def test_schedule_refuses_what_cannot_be_a_deadline(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Schedule("x", send=Send(Order, "O-1", ConfirmOrder()), **kwargs)


def test_runner_arguments_are_checked() -> None:
    from cqrs_lab import MemoryEventStore, MemoryQueryStore

    store = MemoryEventStore()
    orders = CqrsFramework(Order, store)
    with pytest.raises(ConfigurationError, match="process runner name"):
        ProcessRunner(Checkout, store, MemoryQueryStore(), [orders], name="not an identifier")
    with pytest.raises(ConfigurationError, match="two frameworks for aggregate type 'Order'"):
        ProcessRunner(Checkout, store, MemoryQueryStore(), [orders, CqrsFramework(order_decider, store)])
    with pytest.raises(ConfigurationError, match="ProcessManager subclass"):
        ProcessRunner(Order, store, MemoryQueryStore(), [orders])  # type: ignore[type-var]


def test_fixed_clock_advance_moves_the_next_reading_forward() -> None:
    clock = FixedClock(T0, step=timedelta(seconds=1))
    assert clock() == T0
    clock.advance(timedelta(minutes=31))
    assert clock() == T0 + timedelta(minutes=31, seconds=1)
    with pytest.raises(ConfigurationError, match="only moves forward"):
        clock.advance(timedelta(seconds=-1))


# -- a real kill between sending and checkpointing -----------------------------------
KILLED_RUNNER = """
import sys, time
from datetime import UTC, datetime
root, kind, target, schema, step = sys.argv[1:6]
sys.path.insert(0, root)
from cqrs_lab import CqrsFramework, ProcessRunner
from tests.domain_fixtures import Counter, Tallies

class StopsBeforeCommit(ProcessRunner):
    def _commit(self, work, checkpoint):
        print("sent", flush=True)  # the commands are committed; the batch is not
        time.sleep(600)            # the parent kills this process here

if kind == "duckdb":
    from cqrs_lab.stores.duckdb import DuckDBEventStore, DuckDBQueryStore
    store = DuckDBEventStore(target)
    views = DuckDBQueryStore(store)
else:
    from cqrs_lab.stores.postgres import PostgresEventStore, PostgresQueryStore
    store = PostgresEventStore(target, schema=schema)
    views = PostgresQueryStore(store)
runner = StopsBeforeCommit(Tallies, store, views, [CqrsFramework(Counter, store)])
if step == "run":
    runner.run_once()
else:
    runner.fire_due(now=datetime(2030, 1, 1, tzinfo=UTC))
"""


def _killed_in_the_middle(backend: Backend, tmp_path: Path, step: str) -> None:
    """Run the step in a child process and SIGKILL it after its commands, before its commit."""
    script = tmp_path / "killed_runner.py"
    script.write_text(KILLED_RUNNER)
    target = str(backend.path) if backend.name == "duckdb" else str(backend.dsn)
    child = subprocess.Popen(
        [sys.executable, str(script), str(ROOT), backend.name, target, str(backend.schema), step],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "sent"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["duckdb", "postgres"], indirect=True)
def test_a_runner_killed_between_sending_and_checkpointing_sends_nothing_twice(
    backend: Backend, tmp_path: Path
) -> None:
    s = shop(backend)
    s.place("O-1", "O-2", "O-3")
    backend.close()  # a DuckDB file has one writing process: the child's
    _killed_in_the_middle(backend, tmp_path, "run")
    s = shop(backend)
    assert counts(s) == (3, 0)
    assert tallies(s).position == 0 and tallies(s).pending() == []
    assert tallies(s).run_once() == 3
    assert counts(s) == (3, 0)
    assert len(tallies(s).pending()) == 3
    backend.close()
    _killed_in_the_middle(backend, tmp_path, "fire")
    s = shop(backend)
    assert counts(s) == (3, 3)
    assert len(tallies(s).pending()) == 3  # the kill came before the fired deadlines were removed
    assert tallies(s).fire_due(now=datetime(2030, 1, 1, tzinfo=UTC)) == 3
    assert counts(s) == (3, 3)
    assert tallies(s).pending() == []
