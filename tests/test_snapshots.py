"""Snapshots on every backend: same state as a replay, fewer events read, bad ones ignored."""

from __future__ import annotations

import warnings
from decimal import Decimal
from typing import Any

import pytest

from cqrs_lab import CqrsFramework, EventEnvelope, SequentialIds, SnapshotIgnoredWarning
from cqrs_lab.examples.bank_account import (
    BankAccount,
    DepositMoney,
    OpenBankAccount,
    WithdrawMoney,
    WriteCheck,
)
from tests.conftest import Backend


class RecordingStore:
    """Passes every call to ``store``; remembers the ``after_sequence`` of each stream load."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.loads: list[tuple[int, int]] = []  # (after_sequence, events returned)

    def load_events(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> list[EventEnvelope]:
        events: list[EventEnvelope] = self.store.load_events(
            aggregate_type, aggregate_id, after_sequence=after_sequence
        )
        self.loads.append((after_sequence, len(events)))
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class LegacyAccount(BankAccount):
    """An older shape of the bank account: its snapshots carry a field the current class forbids."""

    aggregate_type = "BankAccount"
    legacy_flag: bool = True


def run_story(framework: CqrsFramework[Any], account: str, deposits: int) -> None:
    framework.execute(account, OpenBankAccount(account_id=account))
    for i in range(1, deposits + 1):
        framework.execute(account, DepositMoney(amount=Decimal(f"{i}.25")))
        if i % 4 == 0:
            framework.execute(account, WithdrawMoney(amount=Decimal("1.10")))
        if i % 5 == 0:
            framework.execute(account, WriteCheck(check_number=f"C{i}", amount=Decimal("0.99")))


def test_aggregate_loaded_from_a_snapshot_equals_the_replayed_one(backend: Backend) -> None:
    store = backend.event_store()
    snapshotting = CqrsFramework(BankAccount, store, snapshot_every=4, ids=SequentialIds())
    run_story(snapshotting, "A-1", 13)
    events = store.load_events("BankAccount", "A-1")
    snapshot = store.load_snapshot("BankAccount", "A-1")
    assert snapshot is not None
    assert snapshot.version == len(events) // 4 * 4
    assert snapshot.version < len(events)
    replayed = CqrsFramework(BankAccount, store, cache_size=0).load("A-1")
    from_snapshot = CqrsFramework(BankAccount, store, snapshot_every=4, cache_size=0).load("A-1")
    assert from_snapshot == replayed
    assert snapshotting.load("A-1") == replayed  # from its cache
    assert (
        replayed.balance
        == Decimal("0.25") * 13 + sum(range(1, 14)) - Decimal("1.10") * 3 - Decimal("0.99") * 2
    )
    context = snapshotting.load_context("A-1")
    assert context.version == len(events)


def test_a_snapshot_is_stored_with_each_commit_that_crosses_a_multiple(backend: Backend) -> None:
    store = backend.event_store()
    framework = CqrsFramework(BankAccount, store, snapshot_every=3)
    framework.execute("A-1", OpenBankAccount(account_id="A-1"))
    versions = []
    for _ in range(7):
        framework.execute("A-1", DepositMoney(amount=Decimal("1.00")))
        snapshot = store.load_snapshot("BankAccount", "A-1")
        versions.append(None if snapshot is None else snapshot.version)
    assert versions == [None, 3, 3, 3, 6, 6, 6]
    snapshot = store.load_snapshot("BankAccount", "A-1")
    assert snapshot is not None
    assert BankAccount.model_validate_json(snapshot.payload).balance == Decimal("5.00")


def test_loading_with_a_snapshot_reads_only_the_events_after_it(backend: Backend) -> None:
    store = backend.event_store()
    run_story(CqrsFramework(BankAccount, store, snapshot_every=5), "A-1", 9)
    total = len(store.load_events("BankAccount", "A-1"))
    snapshot = store.load_snapshot("BankAccount", "A-1")
    assert snapshot is not None and 0 < snapshot.version < total

    recording = RecordingStore(store)
    CqrsFramework(BankAccount, recording, snapshot_every=5).load("A-1")
    assert recording.loads == [(snapshot.version, total - snapshot.version)]

    without = RecordingStore(store)
    CqrsFramework(BankAccount, without).load("A-1")
    assert without.loads == [(0, total)]


def test_snapshot_that_no_longer_decodes_is_ignored_with_a_warning_and_rebuilt_from_events(
    backend: Backend,
) -> None:
    store = backend.event_store()
    run_story(CqrsFramework(LegacyAccount, store, snapshot_every=2), "A-1", 6)
    snapshot = store.load_snapshot("BankAccount", "A-1")
    assert snapshot is not None and "legacy_flag" in snapshot.payload
    total = len(store.load_events("BankAccount", "A-1"))

    recording = RecordingStore(store)
    current = CqrsFramework(BankAccount, recording, snapshot_every=2, cache_size=0)  # every load reads
    with pytest.warns(SnapshotIgnoredWarning, match=r"BankAccount/A-1 .*rebuilding from events"):
        loaded = current.load("A-1")
    assert recording.loads == [(0, total)]
    assert loaded == CqrsFramework(BankAccount, store).load("A-1")

    with pytest.warns(SnapshotIgnoredWarning):
        current.execute("A-1", DepositMoney(amount=Decimal("1.00")))
    if total % 2 == 0:
        with pytest.warns(SnapshotIgnoredWarning):
            current.execute("A-1", DepositMoney(amount=Decimal("1.00")))
    replaced = store.load_snapshot("BankAccount", "A-1")
    assert replaced is not None and "legacy_flag" not in replaced.payload
    with warnings.catch_warnings():
        warnings.simplefilter("error", SnapshotIgnoredWarning)
        assert current.load("A-1") == CqrsFramework(BankAccount, store).load("A-1")
