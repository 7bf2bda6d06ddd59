"""The store contract, tested once and run on every backend: memory, DuckDB (a real
file) and PostgreSQL (a real server), through the ``backend`` fixture."""

from __future__ import annotations

import json
import weakref
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cqrs_lab import (
    Aggregate,
    Command,
    ConcurrencyError,
    CorruptRecordError,
    CqrsFramework,
    Event,
    EventEnvelope,
    InvalidImportError,
    MemoryEventStore,
    Projection,
    Query,
    QueryContext,
    UnknownEventTypeError,
)
from cqrs_lab.codec import StoredEvent
from cqrs_lab.stores.base import StoredSnapshot
from tests.conftest import Backend, in_threads

# -- a small domain under test-only names --------------------------------------
TALLY = "conformance.Tally"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


class Deposited(Event):
    event_type = "conformance.Deposited"
    amount: Decimal


class Noted(Event):
    event_type = "conformance.Noted"
    text: str


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"


class Item(BaseModel):
    model_config = ConfigDict(frozen=True)
    sku: str
    quantity: int
    price: Decimal


class Rich(Event):
    """Every kind of field that must come back exactly."""

    event_type = "conformance.Rich"
    amount: Decimal
    at: AwareDatetime
    ref: UUID
    colour: Colour
    items: list[Item]
    nested: dict[str, list[int]]
    ratio: float
    big: int
    maybe: int | None


class Deposit(Command):
    amount: Decimal


class Tally(Aggregate):
    aggregate_type = TALLY
    total: Decimal = Decimal("0")

    def handle(self, command: Command) -> list[Event]:
        assert isinstance(command, Deposit)
        return [Deposited(amount=command.amount)]

    def apply(self, event: Event) -> None:
        if isinstance(event, Deposited):
            self.total += event.amount


class TallyView(Query):
    query_type = "conformance.TallyView"
    total: Decimal = Decimal("0")
    label: str = ""
    seen: list[int] = Field(default_factory=list)

    def update(self, envelope: EventEnvelope) -> None:
        if isinstance(envelope.payload, Deposited):
            self.total += envelope.payload.amount
        self.seen.append(envelope.sequence)


class OtherView(Query):
    query_type = "conformance.OtherView"
    count: int = 0

    def update(self, envelope: EventEnvelope) -> None:
        self.count += 1


def env(
    aggregate_id: str,
    sequence: int,
    event: Event | None = None,
    *,
    metadata: dict[str, str] | None = None,
) -> EventEnvelope:
    return EventEnvelope(
        aggregate_type=TALLY,
        aggregate_id=aggregate_id,
        sequence=sequence,
        payload=event if event is not None else Deposited(amount=Decimal(sequence)),
        metadata=metadata if metadata is not None else {"command_id": f"c-{aggregate_id}-{sequence}"},
        recorded_at=T0 + timedelta(seconds=sequence),
        event_id=f"{aggregate_id}-{sequence}",
    )


def insert_raw_event(
    backend: Backend,
    store: Any,
    *,
    aggregate_id: str,
    sequence: int,
    event_type: str,
    payload: str,
    metadata: str = "{}",
) -> None:
    """Put a row in the events table behind the store's back, as raw SQL would."""
    values: list[Any] = [
        TALLY,
        aggregate_id,
        sequence,
        event_type,
        "1.0",
        payload,
        metadata,
        T0,
        f"raw-{sequence}",
    ]
    if backend.name == "memory":
        store._append_records([StoredEvent(*values)], None)
    elif backend.name == "duckdb":
        store.sql(
            "INSERT INTO events SELECT coalesce(max(position), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM events",
            params=values,
        )
    else:
        import psycopg
        from psycopg import sql

        statement = sql.SQL(
            "INSERT INTO {s}.events SELECT coalesce(max(position), 0) + 1, %s, %s, %s, %s, %s,"
            " %s::jsonb, %s::jsonb, %s, %s FROM {s}.events"
        ).format(s=sql.Identifier(backend.schema or ""))
        with psycopg.connect(backend.dsn or "", autocommit=True) as conn:
            conn.execute(statement, values)


# -- events ------------------------------------------------------------------
def test_committed_events_load_back_equal_and_in_sequence_order(backend: Backend) -> None:
    store = backend.event_store()
    committed = store.commit([env("a", 1), env("a", 2), env("a", 3)])
    assert [e.position for e in committed] == [1, 2, 3]
    assert store.load_events(TALLY, "a") == committed
    assert store.load_events(TALLY, "a", after_sequence=2) == committed[2:]
    assert store.load_events(TALLY, "nobody") == []
    assert store.commit([]) == []


def test_streams_are_kept_apart_by_aggregate_type_and_id(backend: Backend) -> None:
    store = backend.event_store()
    store.commit([env("a", 1)])
    store.commit([env("b", 1), env("b", 2)])
    other = EventEnvelope(
        aggregate_type="conformance.Other",
        aggregate_id="a",
        sequence=1,
        payload=Noted(text="x"),
        recorded_at=T0,
        event_id="o1",
    )
    store.commit([other])
    assert [e.sequence for e in store.load_events(TALLY, "a")] == [1]
    assert [e.sequence for e in store.load_events(TALLY, "b")] == [1, 2]
    assert [e.payload for e in store.load_events("conformance.Other", "a")] == [Noted(text="x")]


def test_stale_writer_gets_concurrency_error_and_nothing_of_it_is_stored(backend: Backend) -> None:
    store = backend.event_store()
    store.commit([env("a", 1), env("a", 2)])
    with pytest.raises(ConcurrencyError, match=r"conformance\.Tally/a\b.*sequence 2") as caught:
        store.commit([env("a", 2, Noted(text="stale")), env("a", 3, Noted(text="stale"))])
    assert "retry" in str(caught.value)
    assert [e.payload for e in store.load_events(TALLY, "a")] == [Deposited(amount=1), Deposited(amount=2)]
    assert len(list(store.read_all())) == 2
    assert store.commit([env("a", 3)])[0].position == 3


def test_commit_whose_third_event_collides_stores_none_of_its_events(backend: Backend) -> None:
    store = backend.event_store()
    store.commit([env("b", 1)])
    store.commit([env("a", 1)])
    batch = [env("b", 2), env("b", 3), env("b", 1, Noted(text="collides"))]
    with pytest.raises(ConcurrencyError):
        store.commit(batch)
    assert [e.sequence for e in store.load_events(TALLY, "b")] == [1]
    assert [e.position for e in store.read_all()] == [1, 2]
    assert store.commit([env("b", 2)])[0].position == 3


def test_commit_repeating_a_sequence_is_refused_whole(backend: Backend) -> None:
    store = backend.event_store()
    with pytest.raises(ConcurrencyError):
        store.commit([env("a", 1), env("a", 1, Noted(text="again"))])
    assert store.load_events(TALLY, "a") == []


def test_read_all_yields_every_event_once_in_commit_order(backend: Backend) -> None:
    store = backend.event_store()
    committed: list[EventEnvelope] = []
    for i in range(1, 6):
        committed += store.commit([env("a", i)])
        committed += store.commit([env("b", 2 * i - 1), env("b", 2 * i)])
    everything = list(store.read_all())
    assert everything == committed
    assert [e.position for e in everything] == list(range(1, 16))


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 1000])
def test_read_all_after_position_crosses_batch_boundaries(backend: Backend, batch_size: int) -> None:
    store = backend.event_store()
    for i in range(1, 10):
        store.commit([env("a", i)])
    assert [e.position for e in store.read_all(batch_size=batch_size)] == list(range(1, 10))
    assert [e.position for e in store.read_all(4, batch_size=batch_size)] == list(range(5, 10))
    assert list(store.read_all(9, batch_size=batch_size)) == []
    assert list(store.read_all(50, batch_size=batch_size)) == []


def test_metadata_round_trips(backend: Backend) -> None:
    store = backend.event_store()
    metadata = {"command_id": "c1", "user": "Zoë ✓", "quote": 'say "hi" \\ bye', "empty": "", "z": "1"}
    store.commit([env("a", 1, metadata=metadata)])
    [loaded] = store.load_events(TALLY, "a")
    assert dict(loaded.metadata) == metadata
    assert loaded.event_id == "a-1"
    assert loaded.recorded_at == T0 + timedelta(seconds=1)


def test_recorded_at_in_any_timezone_comes_back_as_the_same_instant(backend: Backend) -> None:
    store = backend.event_store()
    at = datetime(2024, 7, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-7)))
    store.commit([EventEnvelope(TALLY, "a", 1, Deposited(amount=Decimal(1)), recorded_at=at, event_id="e")])
    [loaded] = store.load_events(TALLY, "a")
    assert loaded.recorded_at == at
    assert loaded.recorded_at.utcoffset() is not None


@pytest.mark.parametrize(
    "text",
    [
        "Zoë, Ærøskøbing, İstanbul, Łódź",
        "日本語のテキスト 中文 한국어",
        "emoji 👩‍👩‍👧‍👦 🏳️‍🌈 and astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "right-to-left: שלום مرحبا",
        "combining: e\u0301 vs é; zero-width\u200bjoin",
        'quotes " and \' and \\ backslash \\u0041 and {"json": "inside"}',
        "line\nbreaks\r\nand\ttabs",
    ],
)
def test_unicode_payload_round_trips_exactly(backend: Backend, text: str) -> None:
    store = backend.event_store()
    store.commit([env("a", 1, Noted(text=text))])
    [loaded] = store.load_events(TALLY, "a")
    assert loaded.payload == Noted(text=text)
    assert loaded.payload.text == text


def test_one_megabyte_payload_round_trips(backend: Backend) -> None:
    store = backend.event_store()
    text = "".join(chr(0x20 + (i * 7919) % 0x5F) for i in range(1024 * 1024)) + "€"
    store.commit([env("a", 1, Noted(text=text)), env("a", 2)])
    loaded = store.load_events(TALLY, "a")
    assert loaded[0].payload.text == text
    assert [e.sequence for e in store.read_all()] == [1, 2]


def test_decimal_datetime_uuid_enum_and_nested_fields_round_trip_exactly(backend: Backend) -> None:
    store = backend.event_store()
    event = Rich(
        amount=Decimal("12345678901234567890.1234567890"),
        at=datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ref=UUID("12345678-1234-5678-1234-567812345678"),
        colour=Colour.GREEN,
        items=[
            Item(sku="A-1", quantity=3, price=Decimal("0.10")),
            Item(sku="ü", quantity=-1, price=Decimal("1E+3")),
        ],
        nested={"x": [1, 2, 3], "": []},
        ratio=0.1,
        big=2**70,
        maybe=None,
    )
    small = Rich(
        amount=Decimal("-0.00"),
        at=T0,
        ref=UUID(int=1),
        colour=Colour.RED,
        items=[],
        nested={},
        ratio=5e-324,
        big=-(2**63),
        maybe=0,
    )
    store.commit([env("a", 1, event), env("a", 2, small)])
    loaded = [e.payload for e in store.load_events(TALLY, "a")]
    assert loaded == [event, small]
    first, second = loaded
    assert isinstance(first, Rich) and isinstance(second, Rich)
    assert str(first.amount) == "12345678901234567890.1234567890"
    assert str(first.items[0].price) == "0.10"
    assert first.at.utcoffset() == timedelta(hours=5, minutes=30)
    assert str(second.amount) == "-0.00"
    assert second.ratio == 5e-324


def test_threads_sharing_a_store_never_lose_or_duplicate_events(backend: Backend) -> None:
    store = backend.event_store()
    framework = CqrsFramework(Tally, store, retries=200)

    def work(worker: int) -> None:
        for i in range(16):
            framework.execute(f"t{i % 2}", Deposit(amount=Decimal(worker * 100 + i)))

    assert in_threads(work, 4) == []
    log = list(store.read_all())
    assert [e.position for e in log] == list(range(1, 65))
    for aggregate_id in ("t0", "t1"):
        assert [e.sequence for e in store.load_events(TALLY, aggregate_id)] == list(range(1, 33))
    expected = sum(Decimal(w * 100 + i) for w in range(4) for i in range(16))
    assert framework.load("t0").total + framework.load("t1").total == expected


# -- bad rows ----------------------------------------------------------------
def test_unknown_event_type_row_gives_error_naming_aggregate_and_sequence(backend: Backend) -> None:
    store = backend.event_store()
    store.commit([env("bad", 1)])
    insert_raw_event(
        backend, store, aggregate_id="bad", sequence=2, event_type="conformance.Vanished", payload='{"x": 1}'
    )
    with pytest.raises(UnknownEventTypeError) as caught:
        store.load_events(TALLY, "bad")
    message = str(caught.value)
    assert "conformance.Tally/bad sequence 2" in message
    assert "conformance.Vanished" in message
    with pytest.raises(UnknownEventTypeError, match="sequence 2"):
        list(store.read_all())
    with pytest.raises(UnknownEventTypeError, match=r"Tally/bad sequence 2.*conformance\.Vanished"):
        store.load_stream(TALLY, "bad")
    with pytest.raises(UnknownEventTypeError, match=r"Tally/bad sequence 2"):
        CqrsFramework(Tally, store).load("bad")
    assert store.load_events(TALLY, "bad", after_sequence=2) == []
    assert store.commit([env("bad", 3)])[0].sequence == 3


@pytest.mark.parametrize(
    "payload",
    ['{"amount": "not a number"}', '{"amount": "1.00", "unexpected": true}', "[1, 2]", '"just text"', "{}"],
)
def test_corrupt_payload_row_gives_corrupt_record_error_naming_aggregate_and_sequence(
    backend: Backend, payload: str
) -> None:
    store = backend.event_store()
    store.commit([env("bad", 1)])
    insert_raw_event(
        backend, store, aggregate_id="bad", sequence=2, event_type="conformance.Deposited", payload=payload
    )
    with pytest.raises(CorruptRecordError) as caught:
        store.load_events(TALLY, "bad")
    assert not isinstance(caught.value, UnknownEventTypeError)
    assert "conformance.Tally/bad sequence 2" in str(caught.value)
    assert "Deposited" in str(caught.value)
    with pytest.raises(CorruptRecordError, match="sequence 2"):
        list(store.read_all())
    with pytest.raises(CorruptRecordError, match=r"Tally/bad sequence 2.*Deposited"):
        store.load_stream(TALLY, "bad")
    with pytest.raises(CorruptRecordError, match=r"Tally/bad sequence 2"):
        CqrsFramework(Tally, store).load("bad")
    assert [e.sequence for e in store.load_events(TALLY, "bad", after_sequence=2)] == []


def test_reading_the_log_gives_every_event_before_a_bad_row_then_the_error_naming_it(
    backend: Backend,
) -> None:
    """Rows are decoded as they are read, so the events before a bad row are delivered
    (a projection applies them and keeps its checkpoint just before the bad row)."""
    store = backend.event_store()
    for i in range(1, 6):
        store.commit([env("good", i)])
    insert_raw_event(
        backend, store, aggregate_id="bad", sequence=1, event_type="conformance.Deposited", payload="[1, 2]"
    )
    store.commit([env("later", 1)])
    read: list[int] = []

    def read_the_log() -> None:
        for envelope in store.read_all(batch_size=100):
            read.append(envelope.position)

    with pytest.raises(CorruptRecordError, match=r"Tally/bad sequence 1 \(position 6\)"):
        read_the_log()
    assert read == [1, 2, 3, 4, 5]
    queries = backend.query_store(store)
    projection = Projection("tally", store, queries, [TallyView], view_id=lambda e: "all", batch_size=2)
    with pytest.raises(CorruptRecordError, match="position 6"):
        projection.run()
    assert projection.position == 4  # two whole batches applied; the third holds the bad row
    context = queries.load(TallyView, "all")
    assert (context.payload.seen, context.version) == ([1, 2, 3, 4], 2)  # one commit per batch


class WatchedTally(Tally):
    """A ``Tally`` that notes, at each event it applies, how many it applied are still alive."""

    def apply(self, event: Event) -> None:
        super().apply(event)
        _APPLIED.append(weakref.ref(event))
        _ALIVE.append(sum(ref() is not None for ref in _APPLIED))


_APPLIED: list[weakref.ref[Event]] = []
_ALIVE: list[int] = []


def test_rebuilding_an_aggregate_frees_each_event_once_applied(backend: Backend) -> None:
    """A fresh load decodes each event as it applies it: the events of a long stream are
    never all alive at once (which made the garbage collector walk them over and over)."""
    store = backend.event_store()
    fw = CqrsFramework(WatchedTally, store, cache_size=0)
    for _ in range(5):
        fw.execute("long", Deposit(amount=Decimal("1.5")))
    _APPLIED.clear()
    _ALIVE.clear()
    assert fw.load("long").total == Decimal("7.5")
    assert len(_APPLIED) == 5
    assert max(_ALIVE) <= 2  # the event being applied, and at most the one before it
    assert all(ref() is None for ref in _APPLIED)


def test_corrupt_metadata_row_gives_corrupt_record_error_naming_the_row(backend: Backend) -> None:
    store = backend.event_store()
    insert_raw_event(
        backend,
        store,
        aggregate_id="bad",
        sequence=1,
        event_type="conformance.Noted",
        payload='{"text": "ok"}',
        metadata='["not", "an", "object"]',
    )
    with pytest.raises(CorruptRecordError, match=r"conformance\.Tally/bad sequence 1.*metadata"):
        store.load_events(TALLY, "bad")
    # Rebuilding an aggregate does not read metadata: the row's event still loads.
    assert [(s, e.text) for s, _, e in store.load_stream(TALLY, "bad")] == [(1, "ok")]


def test_load_stream_gives_what_load_events_gives_without_the_envelopes(backend: Backend) -> None:
    store = backend.event_store()
    store.commit([env("s", 1), env("s", 2)])
    store.commit([env("other", 1)])
    store.commit([env("s", 3)])
    envelopes = store.load_events(TALLY, "s")
    assert store.load_stream(TALLY, "s") == [(e.sequence, e.event_id, e.payload) for e in envelopes]
    assert [s for s, _, _ in store.load_stream(TALLY, "s", after_sequence=1)] == [2, 3]
    assert store.load_stream(TALLY, "nobody") == []


def test_stream_head_is_unknown_or_the_streams_last_event(backend: Backend) -> None:
    """``stream_head`` may answer None (it would have to ask), never something stale."""
    store = backend.event_store()
    other = backend.event_store() if backend.name != "memory" else store
    assert store.stream_head(TALLY, "h") is None  # an empty stream has no last event
    for sequence in (1, 2, 3):
        store.commit([env("h", sequence)])
        head = store.stream_head(TALLY, "h")
        assert head is None or head == (sequence, store.load_events(TALLY, "h")[-1].event_id)
    store.load_stream(TALLY, "h")
    other.commit([env("h", 4), env("h", 5)])
    last = store.load_events(TALLY, "h")[-1]
    assert store.stream_head(TALLY, "h") in (None, (5, last.event_id))
    with pytest.raises(ConcurrencyError):
        store.commit([env("h", 5)])
    assert store.stream_head(TALLY, "h") in (None, (5, last.event_id))


def test_commit_after_a_row_written_around_the_store_takes_the_next_position(backend: Backend) -> None:
    store = backend.event_store()
    store.commit([env("a", 1)])
    insert_raw_event(
        backend,
        store,
        aggregate_id="raw",
        sequence=1,
        event_type="conformance.Noted",
        payload='{"text": "raw"}',
    )
    assert store.commit([env("a", 2)])[0].position == 3
    assert [e.position for e in store.read_all()] == [1, 2, 3]


# -- snapshots ---------------------------------------------------------------
def test_snapshot_is_stored_with_the_commit_and_loads_back(backend: Backend) -> None:
    store = backend.event_store()
    assert store.load_snapshot(TALLY, "a") is None
    state = Tally(total=Decimal("3.50")).model_dump_json()
    store.commit([env("a", 1), env("a", 2)], snapshot=StoredSnapshot(TALLY, "a", 2, state))
    snapshot = store.load_snapshot(TALLY, "a")
    assert snapshot is not None
    assert (snapshot.aggregate_type, snapshot.aggregate_id, snapshot.version) == (TALLY, "a", 2)
    assert Tally.model_validate_json(snapshot.payload) == Tally(total=Decimal("3.50"))
    assert store.load_snapshot(TALLY, "b") is None


def test_newer_snapshot_replaces_older_and_older_never_replaces_newer(backend: Backend) -> None:
    store = backend.event_store()
    store.commit(
        [env("a", 1)], snapshot=StoredSnapshot(TALLY, "a", 1, Tally(total=Decimal(1)).model_dump_json())
    )
    store.commit(
        [env("a", 2)], snapshot=StoredSnapshot(TALLY, "a", 5, Tally(total=Decimal(5)).model_dump_json())
    )
    snapshot = store.load_snapshot(TALLY, "a")
    assert snapshot is not None and snapshot.version == 5
    store.commit(
        [env("a", 3)], snapshot=StoredSnapshot(TALLY, "a", 3, Tally(total=Decimal(3)).model_dump_json())
    )
    snapshot = store.load_snapshot(TALLY, "a")
    assert snapshot is not None and snapshot.version == 5


def test_load_snapshot_and_stream_gives_the_snapshot_and_the_events_after_it(backend: Backend) -> None:
    store = backend.event_store()
    assert store.load_snapshot_and_stream(TALLY, "a") == (None, [])
    store.commit([env("a", 1), env("a", 2)])
    store.commit([env("b", 1)])
    snapshot, stream = store.load_snapshot_and_stream(TALLY, "a")
    assert snapshot is None and [s for s, _, _ in stream] == [1, 2]
    state = Tally(total=Decimal(3)).model_dump_json()
    store.commit([env("a", 3)], snapshot=StoredSnapshot(TALLY, "a", 3, state))
    assert store.load_snapshot_and_stream(TALLY, "a") == (store.load_snapshot(TALLY, "a"), [])
    store.commit([env("a", 4), env("a", 5)])
    snapshot, stream = store.load_snapshot_and_stream(TALLY, "a")
    assert snapshot is not None and (snapshot.version, Tally.model_validate_json(snapshot.payload)) == (
        3,
        Tally(total=Decimal(3)),
    )
    assert stream == store.load_stream(TALLY, "a", after_sequence=3)
    assert [s for s, _, _ in stream] == [4, 5]


def test_snapshot_of_a_refused_commit_is_not_stored(backend: Backend) -> None:
    store = backend.event_store()
    store.commit([env("a", 1)])
    with pytest.raises(ConcurrencyError):
        store.commit([env("a", 1)], snapshot=StoredSnapshot(TALLY, "a", 1, Tally().model_dump_json()))
    assert store.load_snapshot(TALLY, "a") is None


# -- views and checkpoints ---------------------------------------------------
def test_missing_view_loads_as_default_at_version_zero(backend: Backend) -> None:
    queries = backend.query_store(backend.event_store())
    context = queries.load(TallyView, "nobody")
    assert (context.view_id, context.version, context.payload) == ("nobody", 0, TallyView())


def test_view_commit_round_trips_and_counts_versions(backend: Backend) -> None:
    queries = backend.query_store(backend.event_store())
    view = TallyView(total=Decimal("10.10"), label="Zoë 日本 👩‍👩‍👧", seen=[1, 2])
    stored = queries.commit(QueryContext("v1", 0, view))
    assert stored.version == 1
    loaded = queries.load(TallyView, "v1")
    assert (loaded.version, loaded.payload) == (1, view)
    assert str(loaded.payload.total) == "10.10"
    loaded.payload.total += 1
    assert queries.commit(loaded).version == 2
    assert queries.load(TallyView, "v1").payload.total == Decimal("11.10")


def test_load_many_returns_stored_and_default_views_keyed_by_id(backend: Backend) -> None:
    queries = backend.query_store(backend.event_store())
    queries.commit_batch([QueryContext(v, 0, TallyView(label=v)) for v in ("a", "b", "c")])
    queries.commit(QueryContext("a", 0, OtherView(count=9)))
    loaded = queries.load_many(TallyView, ["c", "missing", "a", "c"])
    assert list(loaded) == ["c", "missing", "a"]
    assert [(c.view_id, c.version, c.payload.label) for c in loaded.values()] == [
        ("c", 1, "c"),
        ("missing", 0, ""),
        ("a", 1, "a"),
    ]
    assert queries.load_many(TallyView, []) == {}
    assert queries.load_many(OtherView, ["a", "b"])["a"].payload.count == 9
    assert queries.load_many(OtherView, ["a", "b"])["b"].version == 0


def test_stale_view_commit_gets_concurrency_error_and_keeps_the_stored_view(backend: Backend) -> None:
    queries = backend.query_store(backend.event_store())
    queries.commit(QueryContext("v1", 0, TallyView(label="first")))
    first = queries.load(TallyView, "v1")
    second = queries.load(TallyView, "v1")
    first.payload.label = "winner"
    queries.commit(first)
    second.payload.label = "loser"
    with pytest.raises(ConcurrencyError, match=r"conformance\.TallyView/v1"):
        queries.commit(second)
    with pytest.raises(ConcurrencyError):
        queries.commit(QueryContext("v1", 0, TallyView(label="also stale")))
    loaded = queries.load(TallyView, "v1")
    assert (loaded.version, loaded.payload.label) == (2, "winner")


def test_commit_batch_writes_views_and_checkpoint_together(backend: Backend) -> None:
    queries = backend.query_store(backend.event_store())
    assert queries.load_checkpoint("proj") == 0
    queries.commit(QueryContext("old", 0, TallyView(label="old")))
    old = queries.load(TallyView, "old")
    old.payload.label = "old, updated"
    queries.commit_batch(
        [old, QueryContext("new", 0, TallyView(label="new")), QueryContext("o", 0, OtherView(count=2))],
        checkpoint=("proj", 0, 42),
    )
    assert queries.load_checkpoint("proj") == 42
    assert queries.load(TallyView, "old").payload.label == "old, updated"
    assert queries.load(TallyView, "new").version == 1
    assert queries.load(OtherView, "o").payload.count == 2
    queries.commit_batch([], checkpoint=("proj", 42, 43))
    assert queries.load_checkpoint("proj") == 43
    assert queries.load_checkpoint("other") == 0


def test_refused_commit_batch_writes_no_view_and_keeps_the_checkpoint(backend: Backend) -> None:
    queries = backend.query_store(backend.event_store())
    queries.commit_batch([QueryContext("taken", 0, TallyView(label="first"))], checkpoint=("proj", 0, 5))
    with pytest.raises(ConcurrencyError):
        queries.commit_batch(
            [
                QueryContext("fresh", 0, TallyView(label="x")),
                QueryContext("taken", 0, TallyView(label="stale")),
            ],
            checkpoint=("proj", 5, 9),
        )
    assert queries.load(TallyView, "fresh").version == 0
    assert queries.load(TallyView, "taken").payload.label == "first"
    assert queries.load_checkpoint("proj") == 5


def test_commit_batch_moves_the_checkpoint_only_from_where_the_batch_started(backend: Backend) -> None:
    queries = backend.query_store(backend.event_store())
    queries.commit_batch([QueryContext("v", 0, TallyView(label="first"))], checkpoint=("proj", 0, 5))
    for stale in (0, 3, 9):  # a runner that read the checkpoint at 0, or anywhere but 5
        refused = f"'proj': its checkpoint is no longer at position {stale}"
        with pytest.raises(ConcurrencyError, match=refused):
            queries.commit_batch([QueryContext("w", 0, TallyView(label="x"))], checkpoint=("proj", stale, 8))
    assert queries.load(TallyView, "w").version == 0  # nothing of a refused batch is written
    assert queries.load_checkpoint("proj") == 5
    queries.commit_batch([QueryContext("w", 0, TallyView(label="fresh"))], checkpoint=("proj", 5, 8))
    assert queries.load_checkpoint("proj") == 8
    assert queries.load(TallyView, "w").payload.label == "fresh"
    queries.reset([TallyView.query_type], checkpoint="proj")
    with pytest.raises(ConcurrencyError):  # a runner that read 8 before the reset
        queries.commit_batch([], checkpoint=("proj", 8, 9))
    assert queries.load_checkpoint("proj") == 0
    queries.commit_batch([], checkpoint=("proj", 0, 2))  # an absent checkpoint is at 0
    assert queries.load_checkpoint("proj") == 2


def test_reset_deletes_views_of_the_given_types_and_the_checkpoint(backend: Backend) -> None:
    queries = backend.query_store(backend.event_store())
    queries.commit_batch(
        [
            QueryContext("a", 0, TallyView()),
            QueryContext("b", 0, TallyView()),
            QueryContext("a", 0, OtherView()),
        ],
        checkpoint=("proj", 0, 7),
    )
    queries.commit_batch([], checkpoint=("keep", 0, 3))
    queries.reset([TallyView.query_type], checkpoint="proj")
    assert queries.load(TallyView, "a").version == 0
    assert queries.load(TallyView, "b").version == 0
    assert queries.load(OtherView, "a").version == 1
    assert queries.load_checkpoint("proj") == 0
    assert queries.load_checkpoint("keep") == 3


# -- import / export ---------------------------------------------------------
def _fill(store: Any, prefix: str = "") -> list[EventEnvelope]:
    """Four events of every awkward kind (quotes, commas, newlines, unicode, big numbers)."""
    rich = Rich(
        amount=Decimal("1.10"),
        at=T0,
        ref=UUID(int=7),
        colour=Colour.RED,
        items=[Item(sku="x", quantity=1, price=Decimal("2.50"))],
        nested={"k": [1]},
        ratio=1.5,
        big=2**65,
        maybe=None,
    )
    committed: list[EventEnvelope] = []
    committed += store.commit(
        [env(prefix + "a", 1), env(prefix + "a", 2, Noted(text='Zoë, 日本, "q", a,b\nc'))]
    )
    committed += store.commit(
        [env(prefix + "b", 1, rich, metadata={"command_id": "c", "note": 'ü, "quoted"'})]
    )
    committed += store.commit([env(prefix + "a", 3)])
    return committed


def _essence(envelopes: list[EventEnvelope]) -> list[tuple[Any, ...]]:
    return [
        (e.aggregate_type, e.aggregate_id, e.sequence, e.payload, dict(e.metadata), e.recorded_at, e.event_id)
        for e in envelopes
    ]


def test_arrow_export_and_import_round_trip(backend: Backend) -> None:
    store = backend.event_store()
    committed = _fill(store)
    table = store.export_arrow()
    assert table.schema.names == [
        "position",
        "aggregate_type",
        "aggregate_id",
        "sequence",
        "event_type",
        "event_version",
        "payload",
        "metadata",
        "recorded_at",
        "event_id",
    ]
    assert table.column("position").to_pylist() == [1, 2, 3, 4]
    assert store.export_arrow(after_position=2).column("position").to_pylist() == [3, 4]
    copy = MemoryEventStore()
    assert copy.import_arrow(table) == 4
    assert list(copy.read_all()) == committed

    source = MemoryEventStore()
    originals = _fill(source, prefix="imported-")
    assert store.import_arrow(source.export_arrow()) == 4
    imported = list(store.read_all(4))
    assert [e.position for e in imported] == [5, 6, 7, 8]
    assert _essence(imported) == _essence(originals)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_file_export_and_import_round_trip(backend: Backend, tmp_path: Path, suffix: str) -> None:
    store = backend.event_store()
    committed = _fill(store)
    exported = tmp_path / f"events{suffix}"
    assert store.export_events(exported) == 4
    copy = MemoryEventStore()
    assert copy.import_events(exported) == 4
    assert list(copy.read_all()) == committed

    source = MemoryEventStore()
    originals = _fill(source, prefix="file-")
    written = tmp_path / f"written{suffix}"
    source.export_events(written)
    assert store.import_events(written) == 4
    imported = list(store.read_all(4))
    assert [e.position for e in imported] == [5, 6, 7, 8]
    assert _essence(imported) == _essence(originals)


def test_import_assigns_positions_anew_in_input_position_order(backend: Backend) -> None:
    store = backend.event_store()
    store.commit([env("first", 1)])
    rows = [
        {**_row("x", 2), "position": 30},
        {**_row("x", 1), "position": 10},
        {**_row("y", 1), "position": 20},
    ]
    assert store.import_arrow(rows) == 3
    log = list(store.read_all())
    assert [(e.position, e.aggregate_id, e.sequence) for e in log] == [
        (1, "first", 1),
        (2, "x", 1),
        (3, "y", 1),
        (4, "x", 2),
    ]
    assert store.commit([env("x", 3)])[0].position == 5


def test_a_stream_loads_in_sequence_order_whatever_order_it_was_stored_in(backend: Backend) -> None:
    store = backend.event_store()
    rows = [{**_row("x", s), "position": p} for p, s in enumerate([3, 1, 4, 2, 5], start=1)]
    assert store.import_arrow(rows) == 5
    assert [e.sequence for e in store.read_all()] == [3, 1, 4, 2, 5]
    assert [e.sequence for e in store.load_events(TALLY, "x")] == [1, 2, 3, 4, 5]
    assert [e.sequence for e in store.load_events(TALLY, "x", after_sequence=2)] == [3, 4, 5]


def _row(aggregate_id: str, sequence: int) -> dict[str, Any]:
    return {
        "aggregate_type": TALLY,
        "aggregate_id": aggregate_id,
        "sequence": sequence,
        "event_type": "conformance.Deposited",
        "event_version": "1.0",
        "payload": json.dumps({"amount": str(sequence)}),
        "metadata": "{}",
        "recorded_at": T0,
        "event_id": f"{aggregate_id}-{sequence}",
    }


def test_import_with_a_taken_sequence_imports_nothing(backend: Backend) -> None:
    """Refused by the check before anything is written: not a race (see tests/test_faults_import.py)."""
    store = backend.event_store()
    store.commit([env("a", 1)])
    store.commit([env("a, (b)", 1)])
    with pytest.raises(InvalidImportError, match=r"conformance\.Tally/a sequence 1 is already stored"):
        store.import_arrow([_row("fresh", 1), _row("a", 1), _row("fresh", 2)])
    with pytest.raises(InvalidImportError, match=r"Tally/a, \(b\) sequence 1 is already stored"):
        store.import_arrow([_row("fresh", 1), _row("a, (b)", 1)])
    with pytest.raises(InvalidImportError, match=r"Tally/twice sequence 1 appears twice in the input"):
        store.import_arrow([_row("fresh", 1), _row("twice", 1), _row("twice", 1)])
    assert [(e.aggregate_id, e.sequence) for e in store.read_all()] == [("a", 1), ("a, (b)", 1)]
    assert store.import_arrow([_row("fresh", 1)]) == 1
    assert [e.position for e in store.read_all()] == [1, 2, 3]


def test_export_and_import_of_an_empty_log(backend: Backend) -> None:
    store = backend.event_store()
    empty = store.export_arrow()
    assert empty.num_rows == 0
    assert store.import_arrow(empty) == 0
    assert list(store.read_all()) == []
