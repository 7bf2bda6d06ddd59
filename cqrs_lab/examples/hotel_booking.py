"""A workshop domain: booking hotel rooms.

A ``Room`` aggregate takes bookings for nights and refuses overlapping ones;
``HotelOccupancy`` is a query that spans several events and several rooms
(one view for the whole hotel: nights booked per date, bookings per guest).
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from cqrs_lab.domain import Aggregate, Command, Event, Query
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import UserError

__all__ = [
    "BookRoom",
    "BookingCancelled",
    "CancelBooking",
    "CheckIn",
    "GuestCheckedIn",
    "HotelOccupancy",
    "RegisterRoom",
    "Room",
    "RoomBooked",
    "RoomKind",
    "RoomRegistered",
    "hotel_view_id",
]


class RoomKind(StrEnum):
    SINGLE = "single"
    DOUBLE = "double"
    SUITE = "suite"


class RegisterRoom(Command):
    number: str
    kind: RoomKind


class BookRoom(Command):
    booking_id: str
    guest: str
    first_night: date
    nights: int = Field(ge=1, le=30)


class CancelBooking(Command):
    booking_id: str


class CheckIn(Command):
    booking_id: str


class RoomRegistered(Event):
    number: str
    kind: RoomKind


class RoomBooked(Event):
    booking_id: str
    guest: str
    nights: list[date]


class BookingCancelled(Event):
    booking_id: str
    guest: str
    nights: list[date]


class GuestCheckedIn(Event):
    booking_id: str
    guest: str


class Booking(BaseModel):
    """A booking held by a room."""

    model_config = ConfigDict(frozen=True)

    guest: str
    nights: list[date]
    checked_in: bool = False


class Room(Aggregate):
    """A hotel room: one booking per night."""

    aggregate_type = "Room"

    number: str = ""
    kind: RoomKind | None = None
    bookings: dict[str, Booking] = Field(default_factory=dict)

    def _taken(self) -> set[date]:
        return {night for b in self.bookings.values() for night in b.nights}

    def handle(self, command: Command) -> list[Event]:
        match command:
            case RegisterRoom(number=number, kind=kind):
                if self.number:
                    raise UserError("room is already registered", code="already_registered")
                return [RoomRegistered(number=number, kind=kind)]
            case BookRoom(booking_id=booking_id, guest=guest, first_night=first, nights=count):
                if not self.number:
                    raise UserError("room is not registered", code="unknown_room")
                if booking_id in self.bookings:
                    raise UserError("booking already exists", code="duplicate_booking")
                nights = [first + timedelta(days=i) for i in range(count)]
                clash = sorted(set(nights) & self._taken())
                if clash:
                    raise UserError(
                        "room is not free on those nights",
                        code="room_taken",
                        params={"first_clash": clash[0].isoformat()},
                    )
                return [RoomBooked(booking_id=booking_id, guest=guest, nights=nights)]
            case CancelBooking(booking_id=booking_id):
                booking = self._booking(booking_id)
                if booking.checked_in:
                    raise UserError("guest has already checked in", code="checked_in")
                return [BookingCancelled(booking_id=booking_id, guest=booking.guest, nights=booking.nights)]
            case CheckIn(booking_id=booking_id):
                booking = self._booking(booking_id)
                if booking.checked_in:
                    raise UserError("guest has already checked in", code="checked_in")
                return [GuestCheckedIn(booking_id=booking_id, guest=booking.guest)]
        raise UserError(f"Room does not handle {type(command).__name__}", code="unknown_command")

    def _booking(self, booking_id: str) -> Booking:
        if booking_id not in self.bookings:
            raise UserError("no such booking", code="unknown_booking", params={"booking_id": booking_id})
        return self.bookings[booking_id]

    def apply(self, event: Event) -> None:
        match event:
            case RoomRegistered(number=number, kind=kind):
                self.number, self.kind = number, kind
            case RoomBooked(booking_id=booking_id, guest=guest, nights=nights):
                self.bookings = {**self.bookings, booking_id: Booking(guest=guest, nights=nights)}
            case BookingCancelled(booking_id=booking_id):
                self.bookings = {k: v for k, v in self.bookings.items() if k != booking_id}
            case GuestCheckedIn(booking_id=booking_id):
                booking = self.bookings[booking_id]
                self.bookings = {
                    **self.bookings,
                    booking_id: Booking(guest=booking.guest, nights=booking.nights, checked_in=True),
                }


def hotel_view_id(envelope: EventEnvelope) -> str:
    """Every room's events update the single hotel-wide view."""
    return "hotel"


class HotelOccupancy(Query):
    """Rooms, nights booked per date and active bookings per guest, across all rooms."""

    query_type = "HotelOccupancy"

    rooms: dict[str, RoomKind] = Field(default_factory=dict)
    booked_nights: dict[date, int] = Field(default_factory=dict)
    bookings_by_guest: dict[str, list[str]] = Field(default_factory=dict)
    checked_in: list[str] = Field(default_factory=list)

    def update(self, envelope: EventEnvelope) -> None:
        match envelope.payload:
            case RoomRegistered(number=number, kind=kind):
                self.rooms[number] = kind
            case RoomBooked(booking_id=booking_id, guest=guest, nights=nights):
                for night in nights:
                    self.booked_nights[night] = self.booked_nights.get(night, 0) + 1
                self.bookings_by_guest.setdefault(guest, []).append(booking_id)
            case BookingCancelled(booking_id=booking_id, guest=guest, nights=nights):
                for night in nights:
                    self.booked_nights[night] -= 1
                    if not self.booked_nights[night]:
                        del self.booked_nights[night]
                remaining = [b for b in self.bookings_by_guest.get(guest, []) if b != booking_id]
                if remaining:
                    self.bookings_by_guest[guest] = remaining
                else:
                    self.bookings_by_guest.pop(guest, None)
            case GuestCheckedIn(booking_id=booking_id):
                self.checked_in.append(booking_id)
