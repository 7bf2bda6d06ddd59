"""Event types, JSON encoding, unknown types, corrupt rows and upcasters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cqrs_lab import CorruptRecordError, Event, EventCodec, MemoryEventStore, UnknownEventTypeError
from cqrs_lab.codec import EventTypeConflictWarning, StoredEvent, decode_metadata, default_codec
from cqrs_lab.errors import ConfigurationError
from tests.domain_fixtures import Incremented


class RenamedV2(Event):
    event_type = "test.Renamed"
    event_version = "3.0"
    full_name: str
    age: int


def test_event_type_defaults_to_class_name_and_version_to_1_0() -> None:
    class Plain(Event):
        event_type = "test.Plain"

    class Defaulted(Event):
        x: int = 0

    assert Defaulted.event_type == "Defaulted"
    assert Defaulted.event_version == "1.0"
    assert default_codec.event_class("test.Plain") is Plain


def test_events_and_commands_are_frozen() -> None:
    event = Incremented(by=1)
    with pytest.raises(ValueError, match="frozen"):
        event.by = 2  # type: ignore[misc]


def test_same_event_type_from_another_class_warns() -> None:
    codec = EventCodec()

    class A(Event):
        event_type = "test.Clash"

    class B(Event):
        event_type = "test.Clash2"

    codec.register(A)
    B.event_type = "test.Clash"
    with pytest.warns(EventTypeConflictWarning, match="test.Clash"):
        codec.register(B)
    assert codec.event_class("test.Clash") is B


def record(event_type: str, version: str, payload: str, sequence: int = 4) -> StoredEvent:
    return StoredEvent(
        "Person",
        "p-1",
        sequence,
        event_type,
        version,
        payload,
        "{}",
        "2024-01-01T00:00:00+00:00",
        "00000000-0000-0000-0000-000000000001",
        position=9,
    )


def test_unknown_event_type_names_type_aggregate_and_sequence() -> None:
    store = MemoryEventStore()
    with pytest.raises(UnknownEventTypeError) as info:
        store.decode(record("test.NeverDefined", "1.0", "{}"))
    message = str(info.value)
    assert "test.NeverDefined" in message
    assert "Person/p-1" in message
    assert "sequence 4" in message


def test_corrupt_payload_is_a_clear_error() -> None:
    store = MemoryEventStore()
    with pytest.raises(CorruptRecordError, match=r"Person/p-1 sequence 4.*does not decode"):
        store.decode(record("test.Incremented", "1.0", "{not json"))
    with pytest.raises(CorruptRecordError, match="metadata is not valid JSON"):
        store.decode(
            StoredEvent(
                "Person",
                "p-1",
                4,
                "test.Incremented",
                "1.0",
                '{"by": 1}',
                "{oops",
                "2024-01-01T00:00:00+00:00",
                "x",
            )
        )


def test_metadata_values_are_read_back_as_strings_and_a_non_object_is_a_clear_error() -> None:
    assert decode_metadata('{"user":"ada","attempt":2,"ok":true}', "row") == {
        "user": "ada",
        "attempt": "2",
        "ok": "True",
    }
    with pytest.raises(CorruptRecordError, match=r"Person/p-1 sequence 4.*metadata is not a JSON object"):
        MemoryEventStore().decode(
            StoredEvent("Person", "p-1", 4, "test.Incremented", "1.0", '{"by": 1}', "[1]", "2024-01-01", "x")
        )


def test_upcasters_chain_from_old_versions_at_load_time() -> None:
    codec = EventCodec([RenamedV2])

    @codec.upcaster("test.Renamed", "1.0", "2.0")
    def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {"full_name": f"{data['first']} {data['last']}"}

    @codec.upcaster("test.Renamed", "2.0", "3.0")
    def v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "age": 0}

    store = MemoryEventStore(codec)
    stored = record("test.Renamed", "1.0", json.dumps({"first": "Ada", "last": "Lovelace"}))
    assert store.decode(stored).payload == RenamedV2(full_name="Ada Lovelace", age=0)
    stored_v2 = record("test.Renamed", "2.0", json.dumps({"full_name": "Alan Turing"}))
    assert store.decode(stored_v2).payload == RenamedV2(full_name="Alan Turing", age=0)
    current = record("test.Renamed", "3.0", json.dumps({"full_name": "Grace Hopper", "age": 85}))
    assert store.decode(current).payload == RenamedV2(full_name="Grace Hopper", age=85)


def test_stored_rows_are_never_rewritten_by_upcasting() -> None:
    codec = EventCodec([RenamedV2])
    codec.register_upcaster("test.Renamed", "2.0", "3.0", lambda d: {**d, "age": 1})
    store = MemoryEventStore(codec)
    store.import_arrow(
        [
            {
                **{
                    k: getattr(record("test.Renamed", "2.0", '{"full_name": "X"}'), k)
                    for k in (
                        "aggregate_type",
                        "aggregate_id",
                        "sequence",
                        "event_type",
                        "event_version",
                        "payload",
                        "metadata",
                        "event_id",
                    )
                },
                "sequence": 1,  # an import starts a stream at 1
                "recorded_at": "2024-01-01T00:00:00+00:00",
            }
        ]
    )
    assert [e.payload.age for e in store.read_all()] == [1]  # type: ignore[attr-defined]
    assert store.export_arrow().column("payload").to_pylist() == ['{"full_name": "X"}']
    assert store.export_arrow().column("event_version").to_pylist() == ["2.0"]


def test_missing_upcaster_says_which_version_to_register() -> None:
    codec = EventCodec([RenamedV2])
    store = MemoryEventStore(codec)
    with pytest.raises(UnknownEventTypeError, match=r"stored at version 1\.0.*register_upcaster"):
        store.decode(record("test.Renamed", "1.0", "{}"))


def test_upcaster_to_same_version_is_rejected() -> None:
    with pytest.raises(ConfigurationError):
        EventCodec().register_upcaster("x", "1.0", "1.0", lambda d: d)


def test_envelope_of_builds_the_same_envelope_as_the_constructor() -> None:
    from datetime import UTC, datetime

    from cqrs_lab.envelope import EventEnvelope, envelope_of

    values = ("T", "id-1", 3, Incremented(by=2), {"k": "v"}, datetime(2024, 1, 1, tzinfo=UTC), "e-1", 9)
    built = envelope_of(*values)
    assert built == EventEnvelope(*values)
    assert repr(built) == repr(EventEnvelope(*values))
    assert built.with_position(10).position == 10
    with pytest.raises(AttributeError):
        built.sequence = 4  # type: ignore[misc]


def test_codec_validator_is_only_given_for_current_versions_of_known_types() -> None:
    codec = EventCodec()
    codec.register(Incremented)
    validate = codec.validator(Incremented.event_type, Incremented.event_version)
    assert validate is not None and validate('{"by": 5}') == Incremented(by=5)
    assert codec.validator(Incremented.event_type, "0.9") is None
    assert codec.validator("nobody.Knows", "1.0") is None
