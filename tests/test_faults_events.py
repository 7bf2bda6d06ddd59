"""Never acknowledge what cannot be read back; every bad event a cqrs_lab error naming it.

Commits (``store.commit`` and ``CqrsFramework.execute``) check each event against the
store's codec before anything is written: a payload that does not decode again, is
nested deeper or is larger than the documented limits, a text with an unpaired
surrogate or a NUL, metadata that is not a map of strings, an aggregate id longer
than the key limit. Reads turn an upcaster that raises into ``CorruptRecordError``.
Every test runs on memory, DuckDB and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import field_serializer

from cqrs_lab import (
    Aggregate,
    Command,
    CorruptRecordError,
    CqrsFramework,
    Event,
    EventCodec,
    EventEnvelope,
    UnstorableEventError,
)
from cqrs_lab.codec import MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_KEY_BYTES
from tests.conftest import Backend
from tests.fault_kit import BOX, T0, Note, envelope


class Packed(Event):
    event_type = "faults.Packed"
    data: Any = None


class OneWay(Event):
    """Serializes ``n`` in a form its own validator refuses: it cannot be read back."""

    event_type = "faults.OneWay"
    n: int

    @field_serializer("n")
    def _as_words(self, n: int) -> str:
        return f"number {n}"


class Pack(Command):
    data: Any = None


HANDLED: list[Command] = []


class Box(Aggregate):
    aggregate_type = BOX
    packed: int = 0

    def handle(self, command: Command) -> list[Event]:
        assert isinstance(command, Pack)
        HANDLED.append(command)
        return [Packed(data=command.data)]

    def apply(self, event: Event) -> None:
        self.packed += 1


def nested(levels: int) -> Any:
    """A value whose JSON nests ``levels`` arrays."""
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def refused(store: Any, envelopes: list[EventEnvelope], *needles: str) -> UnstorableEventError:
    """Commit ``envelopes``, expect ``UnstorableEventError`` naming ``needles``, and check
    that the log did not change."""
    before = [e.event_id for e in store.read_all()]
    with pytest.raises(UnstorableEventError) as caught:
        store.commit(envelopes)
    for needle in needles:
        assert needle in str(caught.value)
    assert "nothing" in str(caught.value).lower()
    assert [e.event_id for e in store.read_all()] == before
    return caught.value


# -- the JSON limits -----------------------------------------------------------------
def test_a_payload_nested_to_the_depth_limit_is_stored_and_read_back(backend: Backend) -> None:
    store = backend.event_store()
    deepest = nested(MAX_JSON_DEPTH - 1)  # the event object itself is the first level
    store.commit([envelope("deep", 1, Packed(data=deepest))])
    [loaded] = store.load_events(BOX, "deep")
    assert loaded.payload == Packed(data=deepest)


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH, 220, 254, 255, 400])
def test_a_payload_nested_deeper_than_the_limit_is_refused_and_nothing_is_stored(
    backend: Backend, levels: int
) -> None:
    store = backend.event_store()
    store.commit([envelope("deep", 1, Note(text="kept"))])
    error = refused(
        store,
        [envelope("deep", 2, Note(text="second")), envelope("deep", 3, Packed(data=nested(levels)))],
        f"{BOX}/deep sequence 3",
        "faults.Packed",
        f"{MAX_JSON_DEPTH} levels",
    )
    assert isinstance(error.__cause__, Exception)
    assert [e.payload for e in store.load_events(BOX, "deep")] == [Note(text="kept")]


def test_the_framework_refuses_the_command_and_retries_do_not_repeat_it(backend: Backend) -> None:
    store = backend.event_store()
    framework = CqrsFramework(Box, store, retries=5)
    framework.execute("b-1", Pack(data=1))
    HANDLED.clear()
    with pytest.raises(UnstorableEventError, match=rf"{BOX}/b-1 sequence 2"):
        framework.execute("b-1", Pack(data=nested(300)))
    assert len(HANDLED) == 1  # an unstorable event is not a race: no retry
    assert framework.load("b-1").packed == 1
    framework.execute("b-1", Pack(data=[1, 2]))
    assert [e.sequence for e in store.load_events(BOX, "b-1")] == [1, 2]
    assert CqrsFramework(Box, store).load("b-1").packed == 2


def test_a_payload_at_the_size_limit_is_stored_and_one_byte_more_is_refused(backend: Backend) -> None:
    store = backend.event_store()
    frame = len(Note(text="").model_dump_json())
    text = "é" * ((MAX_JSON_BYTES - frame) // 2)  # two UTF-8 bytes each: the limit counts bytes
    text += "x" * (MAX_JSON_BYTES - frame - 2 * len(text))
    assert len(Note(text=text).model_dump_json().encode()) == MAX_JSON_BYTES
    store.commit([envelope("big", 1, Note(text=text))])
    assert store.load_events(BOX, "big")[0].payload.text == text
    refused(store, [envelope("big", 2, Note(text=text + "x"))], f"{BOX}/big sequence 2", "bytes")


def test_metadata_larger_than_the_limit_is_refused(backend: Backend) -> None:
    store = backend.event_store()
    refused(
        store,
        [envelope("m", 1, Note(text="x"), metadata={"blob": "y" * MAX_JSON_BYTES})],
        f"{BOX}/m sequence 1",
        "metadata",
    )


# -- payloads that do not read back -------------------------------------------------
def test_a_payload_its_own_class_cannot_read_back_is_refused(backend: Backend) -> None:
    store = backend.event_store()
    error = refused(store, [envelope("o", 1, OneWay(n=3))], f"{BOX}/o sequence 1", "OneWay")
    assert "number 3" in str(error)


def test_an_unpaired_surrogate_in_a_payload_is_refused(backend: Backend) -> None:
    store = backend.event_store()
    refused(store, [envelope("s", 1, Note(text="a\ud800b"))], f"{BOX}/s sequence 1", "surrogate")


def test_an_event_type_the_store_codec_does_not_know_is_refused(backend: Backend) -> None:
    store = backend.event_store(codec=EventCodec([Packed]))
    refused(store, [envelope("u", 1, Note(text="x"))], f"{BOX}/u sequence 1", "faults.Note", "register")


# -- metadata and keys -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("metadata", "needle"),
    [
        ({"when": T0}, "'when'"),
        ({"n": 1}, "'n'"),
        ({"nested": {"a": "b"}}, "'nested'"),
        ({1: "one"}, "1"),
        ({"bad": "a\udcffb"}, "surrogate"),
    ],
)
def test_metadata_that_is_not_a_map_of_strings_is_refused(
    backend: Backend, metadata: dict[Any, Any], needle: str
) -> None:
    store = backend.event_store()
    refused(store, [envelope("md", 1, Note(text="x"), metadata=metadata)], "metadata", needle)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"aggregate_id": "id-\ud800"}, "aggregate id"),
        ({"aggregate_id": "a\x00b"}, "aggregate id"),
        ({"aggregate_type": "Box\x00"}, "aggregate type"),
        ({"event_id": "e\udfff"}, "event id"),
        ({"aggregate_id": "x" * (MAX_KEY_BYTES + 1)}, f"{MAX_KEY_BYTES} bytes"),
        ({"aggregate_id": "€" * 1_000_000}, f"{MAX_KEY_BYTES} bytes"),
    ],
)
def test_keys_and_ids_that_a_store_cannot_keep_are_refused(
    backend: Backend, fields: dict[str, str], needle: str
) -> None:
    store = backend.event_store()
    values = {"aggregate_id": "k", **fields}
    refused(store, [envelope(values.pop("aggregate_id"), 1, Note(text="x"), **values)], needle)


def test_an_aggregate_id_at_the_key_limit_is_stored(backend: Backend) -> None:
    store = backend.event_store()
    longest = "€" * (MAX_KEY_BYTES // 3) + "x" * (MAX_KEY_BYTES % 3)  # € is three UTF-8 bytes
    assert len(longest.encode()) == MAX_KEY_BYTES
    store.commit([envelope(longest, 1, Note(text="x"))])
    assert [e.aggregate_id for e in store.load_events(BOX, longest)] == [longest]


def test_the_committed_envelopes_carry_the_events_as_they_read_back(backend: Backend) -> None:
    store = backend.event_store()
    event = Packed(data=(1, 2))  # a tuple goes in; JSON gives a list back
    [committed] = store.commit([envelope("t", 1, event)])
    [loaded] = store.load_events(BOX, "t")
    assert committed.payload == loaded.payload == Packed(data=[1, 2])


# -- upcasters ---------------------------------------------------------------------------
class Renamed(Event):
    event_type = "faults.Renamed"
    event_version = "2.0"
    full_name: str


@pytest.mark.parametrize("failure", [KeyError("first"), RuntimeError("upcaster bug"), TypeError("bad")])
def test_an_upcaster_that_raises_is_a_corrupt_record_error_naming_the_event(
    backend: Backend, failure: Exception
) -> None:
    codec = EventCodec([Renamed, Note])

    @codec.upcaster("faults.Renamed", "1.0", "2.0")
    def broken(old: dict[str, Any]) -> dict[str, Any]:
        raise failure

    store = backend.event_store(codec=codec)
    store.commit([envelope("r", 1, Note(text="first"))])
    _insert_old_version(backend, store)
    needles = ("faults.Renamed", "version 1.0", f"{BOX}/r sequence 2", "broken")
    for read in (
        lambda: store.load_events(BOX, "r"),
        lambda: list(store.read_all()),
        lambda: store.load_stream(BOX, "r"),
        lambda: CqrsFramework(Box, store).load("r"),
    ):
        with pytest.raises(CorruptRecordError) as caught:
            read()
        assert all(needle in str(caught.value) for needle in needles), str(caught.value)
        assert caught.value.__cause__ is failure
    assert [e.payload for e in store.load_events(BOX, "r", after_sequence=2)] == []


def _insert_old_version(backend: Backend, store: Any) -> None:
    """A version-1.0 row of faults.Renamed at sequence 2, imported as an older program wrote it."""
    store.import_arrow(
        [
            {
                "aggregate_type": BOX,
                "aggregate_id": "r",
                "sequence": 2,
                "event_type": "faults.Renamed",
                "event_version": "1.0",
                "payload": '{"first": "Ada", "last": "Lovelace"}',
                "metadata": "{}",
                "recorded_at": T0,
                "event_id": "r-2",
            }
        ]
    )
