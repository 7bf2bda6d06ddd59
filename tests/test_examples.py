"""The example domains: bank account (the seed's demo) and hotel booking (workshop)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from decimal import Decimal

import pytest

from cqrs_lab import (
    CqrsFramework,
    MemoryEventStore,
    MemoryQueryStore,
    QueryProcessor,
    TestFramework,
    UserError,
)
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountOpened,
    OpenBankAccount,
    WithdrawMoney,
)
from cqrs_lab.examples.hotel_booking import (
    BookingCancelled,
    BookRoom,
    CancelBooking,
    CheckIn,
    GuestCheckedIn,
    HotelOccupancy,
    RegisterRoom,
    Room,
    RoomBooked,
    RoomKind,
    RoomRegistered,
    hotel_view_id,
)

REGISTERED = RoomRegistered(number="101", kind=RoomKind.DOUBLE)
BOOKED = RoomBooked(booking_id="b1", guest="ada", nights=[date(2024, 5, 1), date(2024, 5, 2)])


def test_bank_account_rejects_a_second_open_and_overdraft() -> None:
    opened = [BankAccountOpened(account_id="A")]
    TestFramework(BankAccount).given(opened).when(OpenBankAccount(account_id="A")).then_expect_error(
        "bank account is already open"
    )
    TestFramework(BankAccount).given(opened).when(WithdrawMoney(amount=Decimal("0.01"))).then_expect_error(
        "funds not available", code="insufficient_funds"
    )


def test_room_books_free_nights() -> None:
    TestFramework(Room).given([REGISTERED]).when(
        BookRoom(booking_id="b1", guest="ada", first_night=date(2024, 5, 1), nights=2)
    ).then_expect_events([BOOKED])


def test_room_refuses_overlapping_bookings() -> None:
    spec = (
        TestFramework(Room)
        .given([REGISTERED, BOOKED])
        .when(BookRoom(booking_id="b2", guest="bob", first_night=date(2024, 5, 2), nights=3))
    )
    spec.then_expect_error("room is not free on those nights", code="room_taken")
    error = spec.inspect_result()
    assert isinstance(error, UserError) and error.payload.params == {"first_clash": "2024-05-02"}


def test_room_cannot_cancel_after_check_in() -> None:
    checked_in = GuestCheckedIn(booking_id="b1", guest="ada")
    TestFramework(Room).given([REGISTERED, BOOKED]).when(CheckIn(booking_id="b1")).then_expect_events(
        [checked_in]
    )
    TestFramework(Room).given([REGISTERED, BOOKED, checked_in]).when(
        CancelBooking(booking_id="b1")
    ).then_expect_error("guest has already checked in")
    TestFramework(Room).given([REGISTERED]).when(CancelBooking(booking_id="zz")).then_expect_error(
        "no such booking"
    )


def test_hotel_occupancy_spans_rooms_and_events() -> None:
    queries = MemoryQueryStore()
    processor = QueryProcessor(HotelOccupancy, queries, view_id=hotel_view_id)
    fw = CqrsFramework(Room, MemoryEventStore(), [processor])
    fw.execute("101", RegisterRoom(number="101", kind=RoomKind.DOUBLE))
    fw.execute("102", RegisterRoom(number="102", kind=RoomKind.SUITE))
    fw.execute("101", BookRoom(booking_id="b1", guest="ada", first_night=date(2024, 5, 1), nights=2))
    fw.execute("102", BookRoom(booking_id="b2", guest="ada", first_night=date(2024, 5, 2), nights=1))
    fw.execute("101", CancelBooking(booking_id="b1"))
    fw.execute("102", CheckIn(booking_id="b2"))
    view = processor.load("hotel")
    assert view == HotelOccupancy(
        rooms={"101": RoomKind.DOUBLE, "102": RoomKind.SUITE},
        booked_nights={date(2024, 5, 2): 1},
        bookings_by_guest={"ada": ["b2"]},
        checked_in=["b2"],
    )
    assert queries.load(HotelOccupancy, "hotel").version == 6
    assert fw.load("101").bookings == {}


def test_booking_cancelled_carries_what_the_view_needs() -> None:
    TestFramework(Room).given([REGISTERED, BOOKED]).when(CancelBooking(booking_id="b1")).then_expect_events(
        [BookingCancelled(booking_id="b1", guest="ada", nights=BOOKED.nights)]
    )


@pytest.mark.parametrize("nights", [0, 31])
def test_book_room_validates_nights(nights: int) -> None:
    with pytest.raises(ValueError, match="nights"):
        BookRoom(booking_id="b", guest="g", first_night=date(2024, 1, 1), nights=nights)


def test_demo_prints_the_story_events_and_query() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cqrs_lab.cli", "demo", "--memory"], capture_output=True, text=True, check=True
    ).stdout
    assert "rejected  WithdrawMoney(amount=Decimal('5000.00')): funds not available" in out
    assert "CustomerWroteCheck(check_number='1170'" in out
    assert "balance=Decimal('629.50')" in out
