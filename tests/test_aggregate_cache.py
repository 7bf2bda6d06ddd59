"""CqrsFramework's aggregate cache: only the tail of a stream is read, and the cached
state is always the state a full reload gives (other writers, replaced streams,
misbehaving handlers, lossy serializers, threads)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import field_serializer

from cqrs_lab import (
    Aggregate,
    Command,
    ConcurrencyError,
    ConfigurationError,
    CqrsFramework,
    Event,
    EventEnvelope,
    FixedClock,
    MemoryEventStore,
    SequentialIds,
    TechnicalError,
    UserError,
)
from cqrs_lab.codec import StoredEvent
from tests.conftest import Backend, in_threads
from tests.domain_fixtures import Counter, Increment, TwoEvents


class CountingStore(MemoryEventStore):
    """A memory store that records the ``after_sequence`` of every stream load."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[int] = []

    def _load_records(self, aggregate_type: str, aggregate_id: str, after_sequence: int) -> list[StoredEvent]:
        self.loads.append(after_sequence)
        return super()._load_records(aggregate_type, aggregate_id, after_sequence)


class AskingStore(CountingStore):
    """A counting store that cannot tell a stream's head without a query (as on PostgreSQL)."""

    def stream_head(self, aggregate_type: str, aggregate_id: str) -> tuple[int, str] | None:
        return None


def counter(store: Any, **kwargs: Any) -> CqrsFramework[Counter]:
    kwargs.setdefault("ids", SequentialIds())
    return CqrsFramework(Counter, store, clock=FixedClock(), **kwargs)


def reloaded(store: Any, aggregate_id: str) -> Counter:
    """The state from the store alone (no cache)."""
    return counter(store, cache_size=0).load(aggregate_id)


def test_a_cached_aggregate_reads_only_the_stream_from_its_cached_version() -> None:
    store = AskingStore()
    fw = counter(store)
    for _ in range(5):
        fw.execute("c", Increment(by=2))
    # First command: the whole (empty) stream; then from the last event the cached
    # state has seen (it is read again to check that it is still the same event).
    assert store.loads == [0, 0, 1, 2, 3]
    assert fw.load("c").value == 10
    assert store.loads[-1] == 4
    uncached = AskingStore()
    plain = counter(uncached, cache_size=0)
    for _ in range(3):
        plain.execute("c", Increment())
    assert uncached.loads == [0, 0, 0]
    assert plain.cache is None


def test_a_store_that_knows_the_stream_head_is_not_read_for_a_cached_aggregate() -> None:
    store = CountingStore()
    fw = counter(store)
    for _ in range(5):
        fw.execute("c", Increment(by=2))
    assert store.loads == [0]  # the first command's load; then the store knew the head
    assert store.stream_head(Counter.aggregate_type, "c") == (5, fw.events("c")[-1].event_id)
    # Another writer moves the head: the cached aggregate reads the tail it missed.
    counter(store, ids=SequentialIds(start=1_000_000)).execute("c", Increment(by=1))
    assert fw.load("c").value == 11 == reloaded(store, "c").value
    assert store.loads[-2:] == [4, 0]  # the tail from the cached version; reloaded() reads it all


def test_events_from_another_writer_are_applied_to_the_cached_state(backend: Backend) -> None:
    store = backend.event_store()
    # A second store object on the same database (memory stores share nothing: reuse it).
    shared = store if backend.name == "memory" else backend.event_store()
    mine = counter(store)
    theirs = counter(shared, ids=SequentialIds(start=1_000_000))
    mine.execute("c", Increment(by=1))
    theirs.execute("c", Increment(by=10))
    theirs.execute("c", TwoEvents())
    committed = mine.execute("c", Increment(by=100))
    assert committed[0].sequence == 5
    assert mine.load("c") == theirs.load("c") == reloaded(shared, "c")
    assert mine.load("c").value == 112
    assert mine.load("c").notes == ["two"]


def test_a_stream_that_is_not_the_cached_one_is_reloaded_in_full() -> None:
    fw = counter(MemoryEventStore())
    fw.execute("c", Increment(by=1))
    fw.execute("c", Increment(by=2))
    # Another store whose stream "c" has the same length but other events.
    other = MemoryEventStore()
    counter(other, ids=SequentialIds(start=2_000_000)).execute("c", Increment(by=40))
    counter(other, ids=SequentialIds(start=3_000_000)).execute("c", Increment(by=2))
    fw.event_store = other
    assert fw.load("c").value == 42
    fw.execute("c", Increment(by=1))
    assert fw.load("c").value == 43 == reloaded(other, "c").value
    # And a stream that is now shorter than the cached version.
    fw.event_store = MemoryEventStore()
    assert fw.load("c").value == 0


def test_callers_get_copies_so_the_cache_cannot_be_changed_through_them() -> None:
    fw = counter(MemoryEventStore())
    fw.execute("c", TwoEvents())
    loaded = fw.load("c")
    loaded.value = 999
    loaded.notes.append("mutated by a caller")
    assert fw.load("c").value == 1
    assert fw.load("c").notes == ["two"]


class Sloppy(Command):
    pass


class SloppyCounter(Counter):
    """Changes its state in ``handle`` (which it must not) before refusing the command."""

    aggregate_type = "SloppyCounter"

    def handle(self, command: Command) -> list[Event]:
        if isinstance(command, Sloppy):
            self.value = -1
            self.notes.append("changed in handle")
            raise UserError("refused after changing state")
        return super().handle(command)


def test_a_handler_that_changes_state_and_fails_does_not_change_the_cache() -> None:
    fw = CqrsFramework(SloppyCounter, MemoryEventStore(), clock=FixedClock(), ids=SequentialIds())
    fw.execute("c", Increment(by=3))
    with pytest.raises(UserError):
        fw.execute("c", Sloppy())
    assert fw.load("c").value == 3
    assert fw.load("c").notes == []
    assert fw.execute("c", Increment(by=1))[0].sequence == 2
    assert fw.load("c").value == 4


class Measured(Event):
    event_type = "test.cache.Measured"
    grams: float

    @field_serializer("grams")
    def _rounded(self, grams: float) -> float:
        return round(grams, 1)  # stored with less precision than the event had


class Weigh(Command):
    grams: float


class Scale(Aggregate):
    aggregate_type = "test.cache.Scale"
    total: float = 0.0

    def handle(self, command: Command) -> list[Event]:
        assert isinstance(command, Weigh)
        return [Measured(grams=command.grams)]

    def apply(self, event: Event) -> None:
        assert isinstance(event, Measured)
        self.total += event.grams


def test_the_cache_applies_committed_events_as_the_store_gives_them_back() -> None:
    store = MemoryEventStore()
    fw = CqrsFramework(Scale, store, clock=FixedClock(), ids=SequentialIds())
    fw.execute("s", Weigh(grams=1.26))
    fw.execute("s", Weigh(grams=1.26))
    # Stored as 1.3 each: the cached state is what a reload gives, not 2.52.
    fresh = CqrsFramework(Scale, store, cache_size=0).load("s")
    assert fresh.total == pytest.approx(2.6)
    assert fw.load("s") == fresh


def test_the_least_recently_used_aggregates_leave_the_cache_first() -> None:
    store = AskingStore()
    fw = counter(store, cache_size=2)
    for name in ("a", "b", "c"):
        fw.execute(name, Increment())
    assert fw.cache is not None and len(fw.cache) == 2
    store.loads.clear()
    fw.load("c")
    fw.load("b")
    fw.load("a")  # evicted: read in full
    assert store.loads == [0, 0, 0]
    store.loads.clear()
    fw.load("a")  # cached again by the full read, "c" evicted
    fw.load("c")
    assert store.loads == [0, 0]


def test_cache_size_must_not_be_negative() -> None:
    with pytest.raises(ConfigurationError, match="cache_size"):
        counter(MemoryEventStore(), cache_size=-1)


class Doubted(Event):
    event_type = "test.cache.Doubted"


def test_an_apply_that_fails_on_a_new_event_raises_and_drops_the_entry() -> None:
    store = MemoryEventStore()
    fw = counter(store)
    fw.execute("c", Increment(by=1))
    # Another writer stores an event Counter.apply does not know.
    store.commit([EventEnvelope("Counter", "c", 2, Doubted(), {}, FixedClock()(), "foreign-1")])
    original = Counter.apply

    def strict(self: Counter, event: Event) -> None:
        if isinstance(event, Doubted):
            raise ValueError("cannot apply Doubted")
        original(self, event)

    Counter.apply = strict  # type: ignore[method-assign]
    try:
        with pytest.raises(TechnicalError, match="Doubted"):
            fw.load("c")
        assert fw.cache is not None and len(fw.cache) == 0
        with pytest.raises(TechnicalError, match="Doubted"):
            fw.load("c")  # a full replay fails the same way: nothing stale was kept
    finally:
        Counter.apply = original  # type: ignore[method-assign]
    assert fw.load("c").value == 1


def test_threads_sharing_a_framework_and_its_cache_agree_with_the_store(backend: Backend) -> None:
    store = backend.event_store()
    fw = CqrsFramework(Counter, store, retries=50)

    def work(_: int) -> None:
        for _ in range(25):
            fw.execute("shared", Increment(by=1))

    assert in_threads(work, 4) == []
    assert fw.load("shared").value == 100
    assert reloaded(store, "shared").value == 100
    assert [e.sequence for e in fw.events("shared")] == list(range(1, 101))


class RacingStore(MemoryEventStore):
    """Lets another writer commit to the stream just before the next commit goes in."""

    def __init__(self) -> None:
        super().__init__()
        self.before_next_commit: Any = None

    def _append_records(self, records: Any, snapshot: Any, command: Any = None) -> list[int]:
        race, self.before_next_commit = self.before_next_commit, None
        if race is not None:
            race()
        return super()._append_records(records, snapshot, command)


def test_a_command_handled_on_a_cached_state_that_went_stale_retries_on_the_new_one() -> None:
    store = RacingStore()
    fw = counter(store, retries=1)
    other = counter(store, ids=SequentialIds(start=1_000_000), cache_size=0)
    fw.execute("c", Increment(by=1))
    store.before_next_commit = lambda: other.execute("c", Increment(by=5))
    committed = fw.execute("c", Increment(by=1))
    assert [e.sequence for e in committed] == [3]
    assert fw.load("c").value == 7 == reloaded(store, "c").value
    store.before_next_commit = lambda: other.execute("c", Increment(by=5))
    with pytest.raises(ConcurrencyError):
        counter(store, retries=0).execute("c", Increment(by=1))
    assert fw.load("c").value == 12 == reloaded(store, "c").value
