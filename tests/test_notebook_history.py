"""state_history, styled_state_history and state_at (time travel)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from cqrs_lab import ConfigurationError, CqrsFramework, FixedClock, MemoryEventStore, SequentialIds
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountOpened,
    CustomerDepositedMoney,
    CustomerWroteCheck,
    DepositMoney,
    OpenBankAccount,
)
from cqrs_lab.examples.hotel_booking import Room, RoomBooked, RoomKind, RoomRegistered
from cqrs_lab.notebook import HISTORY_UUID, state_at, state_history, styled_state_history

EVENTS = [
    BankAccountOpened(account_id="A-1"),
    CustomerDepositedMoney(amount=Decimal("10.00"), balance=Decimal("10.00")),
    CustomerWroteCheck(check_number="1001", amount=Decimal("3.00"), balance=Decimal("7.00")),
]


def committed() -> CqrsFramework[BankAccount]:
    fw = CqrsFramework(BankAccount, MemoryEventStore(), clock=FixedClock(), ids=SequentialIds())
    fw.execute("A-1", OpenBankAccount(account_id="A-1"))
    fw.execute("B-2", OpenBankAccount(account_id="B-2"))
    fw.execute("A-1", DepositMoney(amount=Decimal("5.00")))
    fw.execute("A-1", DepositMoney(amount=Decimal("2.50")))
    return fw


def test_one_row_per_event_with_the_state_after_it() -> None:
    frame = state_history(BankAccount, EVENTS)
    assert list(frame.columns) == ["sequence", "event_type", "opened", "account_id", "balance"]
    assert frame["sequence"].tolist() == [1, 2, 3]
    assert frame["event_type"].tolist() == [type(e).__name__ for e in EVENTS]
    assert frame["balance"].tolist() == [Decimal("0"), Decimal("10.00"), Decimal("7.00")]
    assert frame["opened"].tolist() == [True, True, True]


def test_envelopes_keep_their_sequence_numbers() -> None:
    fw = committed()
    frame = state_history(BankAccount, fw.events("A-1"))
    assert frame["sequence"].tolist() == [1, 2, 3]
    assert frame["balance"].tolist() == [Decimal("0"), Decimal("5.00"), Decimal("7.50")]


def test_rows_are_snapshots_not_views_of_one_mutating_state() -> None:
    nights = [date(2024, 5, 1)]
    frame = state_history(Room, [
        RoomRegistered(number="101", kind=RoomKind.SUITE),
        RoomBooked(booking_id="b1", guest="Ann", nights=nights),
        RoomBooked(booking_id="b2", guest="Bo", nights=[date(2024, 5, 2)]),
    ])
    assert [sorted(b) for b in frame["bookings"]] == [[], ["b1"], ["b1", "b2"]]
    assert frame["kind"].tolist() == [RoomKind.SUITE] * 3


def test_events_of_several_streams_are_refused() -> None:
    fw = committed()
    with pytest.raises(ConfigurationError, match="2 streams"):
        state_history(BankAccount, list(fw.event_store.read_all()))


def test_no_events_gives_the_columns_and_no_rows() -> None:
    frame = state_history(BankAccount, [])
    assert list(frame.columns) == ["sequence", "event_type", "opened", "account_id", "balance"]
    assert frame.empty


def test_styled_history_marks_exactly_the_changed_cells() -> None:
    html = styled_state_history(BankAccount, EVENTS).to_html()
    changed = [line for line in html.splitlines() if "cqrs-lab-changed" in line and "<td" in line]
    # row 0: opened and account_id change from the initial state; rows 1 and 2: balance
    assert [line.split(">")[1].split("<")[0] for line in changed] == ["True", "A-1", "10.00", "7.00"]
    assert f'id="T_{HISTORY_UUID}"' in html
    assert "background-color: #fff3a3" in html


def test_styled_history_html_and_text_are_identical_on_every_run() -> None:
    first = styled_state_history(BankAccount, EVENTS)
    second = styled_state_history(BankAccount, list(EVENTS))
    assert first.to_html() == second.to_html()
    assert repr(first) == repr(second) == "<state history: 3 event(s), 3 field(s)>"


def test_state_at_a_sequence_and_at_a_time() -> None:
    envelopes = committed().events("A-1")
    assert state_at(BankAccount, envelopes, sequence=2).balance == Decimal("5.00")
    assert state_at(BankAccount, envelopes).balance == Decimal("7.50")
    assert state_at(BankAccount, envelopes, sequence=0) == BankAccount()
    # FixedClock: the events of A-1 were recorded at 00:00:00, 00:00:02 and 00:00:03
    two_seconds = datetime(2024, 1, 1, 0, 0, 2, tzinfo=UTC)
    assert state_at(BankAccount, envelopes, at=two_seconds).balance == Decimal("5.00")
    assert state_at(BankAccount, envelopes, at=two_seconds.replace(second=1)).balance == Decimal("0")


def test_state_at_refuses_ambiguous_or_naive_arguments() -> None:
    envelopes = committed().events("A-1")
    with pytest.raises(ConfigurationError, match="not both"):
        state_at(BankAccount, envelopes, sequence=1, at=datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(ConfigurationError, match="timezone"):
        state_at(BankAccount, envelopes, at=datetime(2024, 1, 1))
    with pytest.raises(ConfigurationError, match="envelopes"):
        state_at(BankAccount, EVENTS, at=datetime(2024, 1, 1, tzinfo=UTC))


def test_columns_are_typed_from_the_aggregate_fields() -> None:
    frame = state_history(BankAccount, EVENTS)
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        "sequence": "int64[pyarrow]",
        "event_type": "string[pyarrow]",
        "opened": "bool[pyarrow]",
        "account_id": "string[pyarrow]",
        "balance": "decimal128(38, 2)[pyarrow]",
    }
    rooms = state_history(Room, [RoomRegistered(number="101", kind=RoomKind.SUITE)])
    assert str(rooms["kind"].dtype) == "string[pyarrow]" and rooms["kind"].tolist() == ["suite"]
    assert rooms["bookings"].tolist() == [{}]  # a mapping field holds its dicts
