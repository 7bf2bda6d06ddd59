"""Hypothesis strategies kept in one place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, ConfigDict

from cqrs_lab import Event
from cqrs_lab.examples.bank_account import DepositMoney, OpenBankAccount, WithdrawMoney, WriteCheck


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Line(BaseModel):
    model_config = ConfigDict(frozen=True)
    sku: str
    quantity: int
    price: Decimal


class Everything(Event):
    """An event with every kind of field that must round-trip exactly."""

    event_type = "test.Everything"
    amount: Decimal
    at: AwareDatetime
    ref: UUID
    colour: Colour
    lines: list[Line]
    note: str
    ratio: float
    flag: bool
    maybe: int | None


# NUL is left out: PostgreSQL JSONB cannot hold it, and the Postgres store refuses such an
# event with a StoreError (pinned in tests/test_postgres_store.py).
texts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40
)
decimals = st.decimals(
    allow_nan=False, allow_infinity=False, places=None, min_value=Decimal("-1e12"), max_value=Decimal("1e12")
)
timezones = st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-14 * 60, 14 * 60))
aware = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=timezones)
lines = st.builds(Line, sku=texts, quantity=st.integers(-(2**53), 2**53), price=decimals)

everything = st.builds(
    Everything,
    amount=decimals,
    at=aware,
    ref=st.uuids(),
    colour=st.sampled_from(Colour),
    lines=st.lists(lines, max_size=4),
    note=texts,
    ratio=st.floats(allow_nan=False, allow_infinity=False),
    flag=st.booleans(),
    maybe=st.none() | st.integers(-(2**63), 2**63 - 1),
)

money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2)

bank_commands = st.lists(
    st.one_of(
        st.builds(OpenBankAccount, account_id=st.just("ACC")),
        st.builds(DepositMoney, amount=money),
        st.builds(WithdrawMoney, amount=money),
        st.builds(WriteCheck, check_number=st.text("0123456789", min_size=1, max_size=6), amount=money),
    ),
    max_size=30,
)

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
