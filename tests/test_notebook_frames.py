"""events_frame: event logs as DataFrames, from stores (Arrow, vectorised) and from envelopes."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from pydantic import BaseModel

from cqrs_lab import (
    ConfigurationError,
    CqrsFramework,
    Event,
    EventCodec,
    EventEnvelope,
    FixedClock,
    MemoryEventStore,
    SequentialIds,
    UnknownEventTypeError,
    UserError,
)
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountOpened,
    CustomerDepositedMoney,
    CustomerWroteCheck,
    DepositMoney,
    OpenBankAccount,
    WithdrawMoney,
    WriteCheck,
)
from cqrs_lab.examples.hotel_booking import BookRoom, RegisterRoom, Room, RoomKind
from cqrs_lab.notebook import ENVELOPE_COLUMNS, events_frame, events_polars, events_table


class Address(BaseModel):
    city: str
    zip_code: str


class CustomerMoved(Event):
    event_type = "nb.CustomerMoved"
    address: Address
    noted: str
    moved_at: datetime
    sequence: int


class Renamed(Event):
    """Version 2 of a renamed event: ``old_name`` became ``name``."""

    event_type = "nb.Renamed"
    event_version = "2.0"
    name: str


def bank(store: Any) -> CqrsFramework[BankAccount]:
    fw = CqrsFramework(BankAccount, store, clock=FixedClock(), ids=SequentialIds())
    fw.execute("A-1", OpenBankAccount(account_id="A-1"))
    fw.execute("A-1", DepositMoney(amount=Decimal("10.50")))
    fw.execute("B-2", OpenBankAccount(account_id="B-2"))
    fw.execute("A-1", WriteCheck(check_number="1001", amount=Decimal("4")))
    fw.execute("B-2", DepositMoney(amount=Decimal("0.1")))
    return fw


def test_columns_are_envelope_then_metadata_then_payload_fields_in_first_seen_order() -> None:
    frame = events_frame(bank(MemoryEventStore()).event_store)
    assert list(frame.columns) == [
        *ENVELOPE_COLUMNS,
        "metadata.causation_id",
        "metadata.command_id",
        "metadata.command_type",
        "metadata.correlation_id",
        "account_id",
        "amount",
        "balance",
        "check_number",
    ]
    assert frame["position"].tolist() == [1, 2, 3, 4, 5]
    assert frame["event_type"].tolist() == [
        "BankAccountOpened", "CustomerDepositedMoney", "BankAccountOpened",
        "CustomerWroteCheck", "CustomerDepositedMoney",
    ]
    assert frame["metadata.command_type"].tolist() == [
        "OpenBankAccount", "DepositMoney", "OpenBankAccount", "WriteCheck", "DepositMoney",
    ]
    assert frame["recorded_at"].iloc[1] == pd.Timestamp("2024-01-01 00:00:01", tz="UTC")


def test_decimal_fields_hold_decimal_values_and_missing_fields_are_missing() -> None:
    frame = events_frame(bank(MemoryEventStore()).event_store)
    amounts = frame["amount"].dropna().tolist()
    assert amounts == [Decimal("10.50"), Decimal("4"), Decimal("0.1")]
    assert all(isinstance(v, Decimal) for v in amounts)
    assert [str(v) for v in amounts] == ["10.50", "4.00", "0.10"]  # one scale per column
    assert frame["balance"].iloc[3] == Decimal("6.50")
    assert frame["amount"].isna().tolist() == [True, False, True, False, False]
    assert frame["check_number"].iloc[3] == "1001"
    assert frame["amount"].sum() == Decimal("14.60")


def test_store_and_its_envelopes_give_the_same_frame() -> None:
    store = MemoryEventStore()
    bank(store)
    rooms = CqrsFramework(Room, store, clock=FixedClock(), ids=SequentialIds(100))
    rooms.execute("101", RegisterRoom(number="101", kind=RoomKind.DOUBLE))
    rooms.execute("101", BookRoom(booking_id="b1", guest="Ann", first_night=date(2024, 5, 1), nights=2))
    from_store = events_frame(store)
    from_envelopes = events_frame(list(store.read_all()))
    pd.testing.assert_frame_equal(from_store, from_envelopes)
    assert from_store["nights"].iloc[-1] == ["2024-05-01", "2024-05-02"]
    assert from_store["kind"].iloc[-2] == "double"


def test_duckdb_store_gives_the_same_frame_as_the_memory_store(tmp_path: Path) -> None:
    from cqrs_lab.stores.duckdb import DuckDBEventStore

    memory = MemoryEventStore()
    bank(memory)
    with DuckDBEventStore(tmp_path / "events.duckdb") as duck:
        bank(duck)
        pd.testing.assert_frame_equal(events_frame(duck), events_frame(memory))


def test_store_with_export_arrow_decodes_no_event_one_by_one() -> None:
    class CountingCodec(EventCodec):
        decoded = 0

        def decode(self, *args: Any, **kwargs: Any) -> Event:
            CountingCodec.decoded += 1
            return super().decode(*args, **kwargs)

    codec = CountingCodec([BankAccountOpened, CustomerDepositedMoney, CustomerWroteCheck])
    store = MemoryEventStore(codec=codec)
    bank(store)
    CountingCodec.decoded = 0
    frame = events_frame(store)
    assert len(frame) == 5
    assert CountingCodec.decoded == 0


def test_filters_by_aggregate_event_type_and_position_range() -> None:
    fw = bank(MemoryEventStore())
    assert events_frame(fw, aggregate_id="A-1")["sequence"].tolist() == [1, 2, 3]
    assert events_frame(fw, aggregate_id=["B-2"])["position"].tolist() == [3, 5]
    by_type = events_frame(fw, event_types=[CustomerDepositedMoney, "CustomerWroteCheck"])
    assert by_type["position"].tolist() == [2, 4, 5]
    assert events_frame(fw, event_types="BankAccountOpened")["aggregate_id"].tolist() == ["A-1", "B-2"]
    assert events_frame(fw, after_position=2, to_position=4)["position"].tolist() == [3, 4]
    listed = events_frame(list(fw.event_store.read_all()), after_position=4)
    assert listed["position"].tolist() == [5]


def test_framework_source_keeps_to_its_aggregate_type() -> None:
    store = MemoryEventStore()
    fw = bank(store)
    rooms = CqrsFramework(Room, store, clock=FixedClock(), ids=SequentialIds(100))
    rooms.execute("101", RegisterRoom(number="101", kind=RoomKind.SINGLE))
    assert set(events_frame(fw)["aggregate_type"]) == {"BankAccount"}
    assert events_frame(rooms)["event_type"].tolist() == ["RoomRegistered"]
    assert events_frame(fw, aggregate_type="Room")["aggregate_id"].tolist() == ["101"]
    assert len(events_frame(store)) == 6


def moved(sequence: int, city: str, noted: str) -> EventEnvelope:
    event = CustomerMoved(
        address=Address(city=city, zip_code="01234"),
        noted=noted,
        moved_at=datetime(2024, 3, 1, 12, 30, tzinfo=UTC),
        sequence=sequence * 10,
    )
    return EventEnvelope("Customer", "c-1", sequence, event, {"source": "2024-01-01"},
                         datetime(2024, 1, 1, tzinfo=UTC), f"e-{sequence}", sequence)


def test_nested_models_flatten_and_clashing_names_get_a_payload_prefix() -> None:
    frame = events_frame([moved(1, "Berlin", "x"), moved(2, "Oslo", "y")])
    assert list(frame.columns)[len(ENVELOPE_COLUMNS):] == [
        "metadata.source", "address.city", "address.zip_code", "noted", "moved_at", "payload.sequence",
    ]
    assert frame["address.city"].tolist() == ["Berlin", "Oslo"]
    assert frame["sequence"].tolist() == [1, 2]
    assert frame["payload.sequence"].tolist() == [10, 20]


def test_text_that_looks_like_a_date_stays_text_and_datetime_fields_are_utc_timestamps() -> None:
    frame = events_frame([moved(1, "Berlin", "2024-01-01"), moved(2, "Oslo", "2024-01-02 10:00:00")])
    assert frame["noted"].tolist() == ["2024-01-01", "2024-01-02 10:00:00"]
    assert frame["address.zip_code"].tolist() == ["01234", "01234"]
    assert frame["metadata.source"].tolist() == ["2024-01-01", "2024-01-01"]
    assert frame["moved_at"].tolist() == [pd.Timestamp("2024-03-01 12:30", tz="UTC")] * 2


def old_renamed_row(position: int, payload: str, version: str) -> dict[str, Any]:
    return {
        "position": position, "aggregate_type": "Thing", "aggregate_id": "t-1", "sequence": position,
        "event_type": "nb.Renamed", "event_version": version, "payload": payload, "metadata": "{}",
        "recorded_at": datetime(2024, 1, 1, tzinfo=UTC), "event_id": f"e-{position}",
    }


def test_events_stored_at_an_older_version_are_upcast() -> None:
    codec = EventCodec([Renamed])
    codec.register_upcaster("nb.Renamed", "1.0", "2.0", lambda data: {"name": data["old_name"]})
    store = MemoryEventStore(codec=codec)
    store.import_arrow([
        old_renamed_row(1, '{"old_name":"first"}', "1.0"),
        old_renamed_row(2, '{"name":"second"}', "2.0"),
    ])
    frame = events_frame(store)
    assert frame["name"].tolist() == ["first", "second"]
    assert frame["event_version"].tolist() == ["2.0", "2.0"]
    assert "old_name" not in frame.columns


def test_unknown_event_type_raises_like_loading_it_would() -> None:
    store = MemoryEventStore(codec=EventCodec())
    store.import_arrow([old_renamed_row(1, '{"name":"x"}', "2.0")])
    with pytest.raises(UnknownEventTypeError, match=r"nb\.Renamed"):
        events_frame(store)


def test_without_payloads_a_frame_is_the_envelope_and_metadata_and_needs_no_event_class() -> None:
    store = MemoryEventStore(codec=EventCodec())
    store.import_arrow([{**old_renamed_row(1, '{"name":"x"}', "1.0"), "metadata": '{"process":"P"}'}])
    table = events_table(store, payloads=False)  # nb.Renamed is unknown here: not decoded, not upcast
    assert table.column_names == [*ENVELOPE_COLUMNS, "metadata.process"]
    assert table.column("event_version").to_pylist() == ["1.0"]
    full = bank(MemoryEventStore())
    lean = events_frame(full, payloads=False)
    assert list(lean.columns) == [c for c in events_frame(full).columns if c in lean.columns]
    assert "amount" not in lean.columns and "metadata.command_type" in lean.columns
    assert lean.equals(events_frame(full)[lean.columns])
    envelopes = list(full.event_store.read_all())
    assert events_frame(envelopes, payloads=False).equals(lean.reset_index(drop=True))


def test_empty_log_gives_just_the_envelope_columns() -> None:
    frame = events_frame(MemoryEventStore())
    assert list(frame.columns) == list(ENVELOPE_COLUMNS)
    assert len(frame) == 0
    assert len(events_frame(bank(MemoryEventStore()), aggregate_id="nobody")) == 0


def test_bare_events_are_refused_with_a_hint() -> None:
    with pytest.raises(ConfigurationError, match="state_history"):
        events_frame([BankAccountOpened(account_id="A")])  # type: ignore[list-item]


def test_withdrawal_rejections_leave_no_rows() -> None:
    fw = bank(MemoryEventStore())
    with pytest.raises(UserError, match="funds not available"):
        fw.execute("B-2", WithdrawMoney(amount=Decimal("100")))
    assert len(events_frame(fw, aggregate_id="B-2")) == 2


# -- types, column by column ---------------------------------------------------------
class Shelved(Event):
    event_type = "nb.Shelved"
    shelf: int
    since: date


class Lent(Event):
    event_type = "nb.Lent"
    member: str
    days: int
    fee: Decimal | None = None
    due: date | None = None


class Odd(Event):
    event_type = "nb.Odd"
    shelf: str


def envelope(sequence: int, event: Event) -> EventEnvelope:
    return EventEnvelope("Book", "b-1", sequence, event, {}, datetime(2024, 1, 1, tzinfo=UTC),
                         f"e-{sequence}", sequence)


LOG = [
    envelope(1, Shelved(shelf=3, since=date(2024, 2, 1))),
    envelope(2, Lent(member="ada", days=14, fee=Decimal("1.5"), due=date(2024, 3, 1))),
    envelope(3, Lent(member="grace", days=7)),
]


def test_every_column_keeps_its_type_column_by_column() -> None:
    frame = events_frame(bank(MemoryEventStore()))
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        "position": "int64[pyarrow]",
        "aggregate_type": "string[pyarrow]",
        "aggregate_id": "string[pyarrow]",
        "sequence": "int64[pyarrow]",
        "event_type": "string[pyarrow]",
        "event_version": "string[pyarrow]",
        "recorded_at": "timestamp[us, tz=UTC][pyarrow]",
        "event_id": "string[pyarrow]",
        "metadata.causation_id": "string[pyarrow]",
        "metadata.command_id": "string[pyarrow]",
        "metadata.command_type": "string[pyarrow]",
        "metadata.correlation_id": "string[pyarrow]",
        "account_id": "string[pyarrow]",
        "amount": "decimal128(38, 2)[pyarrow]",
        "balance": "decimal128(38, 2)[pyarrow]",
        "check_number": "string[pyarrow]",
    }


def test_integers_stay_integers_and_dates_are_dates_where_other_event_types_lack_them() -> None:
    frame = events_frame(LOG)
    assert str(frame["shelf"].dtype) == "int64[pyarrow]"
    assert str(frame["days"].dtype) == "int64[pyarrow]"
    assert str(frame["since"].dtype) == "date32[day][pyarrow]"
    assert str(frame["due"].dtype) == "date32[day][pyarrow]"
    assert str(frame["fee"].dtype) == "decimal128(38, 1)[pyarrow]"
    assert frame["shelf"].tolist()[0] == 3 and type(frame["shelf"].tolist()[0]) is int
    assert frame["days"].tolist()[1:] == [14, 7]
    assert frame["due"].tolist()[1] == date(2024, 3, 1)
    assert frame["fee"].tolist()[1] == Decimal("1.5")


def test_a_missing_value_is_always_pd_na() -> None:
    frame = events_frame(LOG)
    missing = [(name, i) for name in frame.columns for i in range(len(frame)) if frame[name].isna().iloc[i]]
    assert ("days", 0) in missing and ("shelf", 1) in missing and ("fee", 2) in missing
    assert all(frame[name].iloc[i] is pd.NA for name, i in missing)
    assert "NaN" not in frame.to_string() and "None" not in frame.to_string()


def test_a_field_of_different_types_in_different_event_types_is_text() -> None:
    frame = events_frame([*LOG, envelope(4, Odd(shelf="top"))])
    assert str(frame["shelf"].dtype) == "string[pyarrow]"
    assert frame["shelf"].tolist() == ["3", pd.NA, pd.NA, "top"]


def test_events_table_is_the_arrow_table_behind_the_frame() -> None:
    table = events_table(LOG)
    assert table.schema.field("days").type == pa.int64()
    assert table.schema.field("recorded_at").type == pa.timestamp("us", tz="UTC")
    pd.testing.assert_frame_equal(table.to_pandas(types_mapper=pd.ArrowDtype), events_frame(LOG))


def test_events_polars_has_the_same_columns_and_types() -> None:
    import polars as pl

    frame = events_polars(bank(MemoryEventStore()), aggregate_id="A-1")
    assert frame.columns == list(events_frame(bank(MemoryEventStore()), aggregate_id="A-1").columns)
    assert frame.schema["position"] == pl.Int64
    assert frame.schema["amount"] == pl.Decimal(38, 2)
    assert frame.schema["recorded_at"] == pl.Datetime("us", "UTC")
    assert frame["amount"].to_list() == [None, Decimal("10.50"), Decimal("4.00")]
    assert events_polars(LOG).schema["days"] == pl.Int64


def test_events_polars_without_polars_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(ConfigurationError, match="pip install polars"):
        events_polars(LOG)


def test_the_notebook_kit_imports_without_polars() -> None:
    code = "import sys, cqrs_lab.notebook; print('polars' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
