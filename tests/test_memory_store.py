"""Memory-store specifics: events are kept serialized; commits from many threads stay consistent."""

from __future__ import annotations

from typing import Any

from cqrs_lab import Event, EventEnvelope, MemoryEventStore
from tests.conftest import in_threads
from tests.strategies import EPOCH


class Loose(Event):
    event_type = "test.Loose"
    data: Any


def test_events_are_kept_serialized_so_a_type_that_does_not_round_trip_fails_here() -> None:
    store = MemoryEventStore()
    event = Loose(data=(1, 2))
    store.commit([EventEnvelope("T", "t-1", 1, event, {}, EPOCH, "e-1")])
    [loaded] = store.load_events("T", "t-1")
    assert loaded.payload is not event
    assert loaded.payload.data == [1, 2]  # a tuple went in; JSON gives a list back
    assert loaded.payload != event


def test_concurrent_commits_from_threads_get_unique_gap_free_positions() -> None:
    store = MemoryEventStore()

    def writer(n: int) -> None:
        for seq in range(1, 101):
            store.commit([EventEnvelope("T", f"w{n}", seq, Loose(data=seq), {}, EPOCH, f"{n}-{seq}")])

    assert in_threads(writer, 8) == []
    log = list(store.read_all(batch_size=37))
    assert [e.position for e in log] == list(range(1, 801))
    for n in range(8):
        assert [e.sequence for e in store.load_events("T", f"w{n}")] == list(range(1, 101))
