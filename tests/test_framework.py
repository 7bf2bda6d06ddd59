"""CqrsFramework: load → handle → commit → dispatch, retries, metadata, errors."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from cqrs_lab import (
    ConcurrencyError,
    ConfigurationError,
    CqrsFramework,
    DispatchError,
    EventEnvelope,
    FixedClock,
    MemoryEventStore,
    MemoryQueryStore,
    QueryProcessor,
    SequentialIds,
    TechnicalError,
    UserError,
    caused_by,
)
from tests.conftest import in_threads
from tests.domain_fixtures import (
    Counter,
    CounterView,
    Explode,
    Increment,
    Incremented,
    Noop,
    Noted,
    ReturnGarbage,
    TwoEvents,
)


def make(store: MemoryEventStore | None = None, **kwargs: object) -> CqrsFramework[Counter]:
    return CqrsFramework(
        Counter,
        store or MemoryEventStore(),
        clock=FixedClock(),
        ids=SequentialIds(),
        **kwargs,  # type: ignore[arg-type]
    )


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[EventEnvelope]]] = []

    def dispatch(self, aggregate_id: str, envelopes: Sequence[EventEnvelope]) -> None:
        self.calls.append((aggregate_id, list(envelopes)))


class Failing:
    name = "failing-dispatcher"

    def dispatch(self, aggregate_id: str, envelopes: Sequence[EventEnvelope]) -> None:
        raise RuntimeError("projection down")


def test_execute_commits_events_with_next_sequences_and_returns_them() -> None:
    fw = make()
    first = fw.execute("c1", TwoEvents())
    second = fw.execute("c1", Increment(by=5))
    assert [e.sequence for e in first] == [1, 2]
    assert [e.sequence for e in second] == [3]
    assert [e.position for e in first + second] == [1, 2, 3]
    assert [e.payload for e in first] == [Incremented(by=1), Noted(text="two")]
    assert fw.load("c1") == Counter(value=6, notes=["two"])
    assert fw.load_context("c1").version == 3
    assert [e.payload for e in fw.events("c1")] == [e.payload for e in first + second]


def test_streams_are_independent() -> None:
    fw = make()
    fw.execute("a", Increment(by=1))
    fw.execute("b", Increment(by=2))
    assert fw.load("a").value == 1
    assert fw.load("b").value == 2
    assert fw.load("never").value == 0


def test_metadata_lands_on_every_event_with_command_and_correlation_ids() -> None:
    fw = make()
    envelopes = fw.execute_with_metadata("c1", TwoEvents(), {"user": "ada"})
    metas = [dict(e.metadata) for e in envelopes]
    assert metas[0] == metas[1]
    meta = metas[0]
    assert meta["user"] == "ada"
    assert meta["command_type"] == "TwoEvents"
    assert meta["correlation_id"] == meta["command_id"] == meta["causation_id"]
    assert len({e.event_id for e in envelopes}) == 2
    assert meta["command_id"] not in {e.event_id for e in envelopes}


def test_a_chain_of_commands_is_traced_by_correlation_and_causation() -> None:
    fw = make()
    [first] = fw.execute("c1", Increment(by=1))
    [second] = fw.execute_with_metadata("c2", Increment(by=1), caused_by(first))
    assert second.metadata["correlation_id"] == first.metadata["correlation_id"]
    assert second.metadata["causation_id"] == first.event_id
    assert second.metadata["command_id"] != first.metadata["command_id"]


def test_command_without_events_commits_and_dispatches_nothing() -> None:
    store, recorder = MemoryEventStore(), Recorder()
    fw = make(store, dispatchers=[recorder])
    assert fw.execute("c1", Noop()) == []
    assert list(store.read_all()) == []
    assert recorder.calls == []


def test_user_error_reaches_caller_with_payload_and_commits_nothing() -> None:
    store = MemoryEventStore()
    fw = make(store)
    with pytest.raises(UserError) as info:
        fw.execute("c1", Increment(by=1000))
    assert info.value.payload.model_dump() == {
        "code": "too_big",
        "message": "too big",
        "params": {"by": "1000"},
    }
    assert list(store.read_all()) == []


def test_other_exceptions_become_technical_error_with_cause() -> None:
    store = MemoryEventStore()
    fw = make(store)
    with pytest.raises(TechnicalError) as info:
        fw.execute("c1", Explode())
    assert isinstance(info.value.__cause__, KeyError)
    assert "Counter.handle(Explode)" in str(info.value)
    with pytest.raises(TechnicalError, match="not an Event"):
        fw.execute("c1", ReturnGarbage())
    assert list(store.read_all()) == []


class SlowStore(MemoryEventStore):
    """Lets a second writer commit between this writer's load and commit (a real race)."""

    def __init__(self) -> None:
        super().__init__()
        self.before_commit: list[object] = []
        self._racing = False

    def commit(self, envelopes, *, snapshot=None):  # type: ignore[no-untyped-def]
        if self.before_commit and not self._racing:
            hook = self.before_commit.pop()
            self._racing = True
            try:
                hook()  # type: ignore[operator]
            finally:
                self._racing = False
        return super().commit(envelopes, snapshot=snapshot)


def test_stale_writer_gets_concurrency_error_and_stores_nothing() -> None:
    store = SlowStore()
    fw = make(store)
    other = make(store)
    store.before_commit.append(lambda: other.execute("c1", Increment(by=7)))
    with pytest.raises(ConcurrencyError):
        fw.execute("c1", Increment(by=1))
    assert [e.payload for e in store.read_all()] == [Incremented(by=7)]


def test_retries_reload_and_rehandle_after_a_lost_race() -> None:
    store = SlowStore()
    fw = make(store, retries=1)
    other = make(store)
    store.before_commit.append(lambda: other.execute("c1", Increment(by=7)))
    [envelope] = fw.execute("c1", Increment(by=1))
    assert envelope.sequence == 2
    assert fw.load("c1").value == 8


def test_retries_give_up_after_n_attempts() -> None:
    store = SlowStore()
    fw = make(store, retries=2)
    other = make(store)
    for _ in range(3):
        store.before_commit.append(lambda: other.execute("c1", Increment(by=1)))
    with pytest.raises(ConcurrencyError):
        fw.execute("c1", Increment(by=100))
    assert fw.load("c1").value == 3


def test_threads_racing_with_retries_lose_no_update() -> None:
    store = MemoryEventStore()
    fw = CqrsFramework(Counter, store, retries=1000)
    assert in_threads(lambda _: [fw.execute("c", Increment(by=1)) for _ in range(50)], 4) == []
    assert fw.load("c").value == 200
    assert [e.sequence for e in fw.events("c")] == list(range(1, 201))


def test_failed_dispatcher_keeps_commit_and_other_dispatchers_run() -> None:
    store, before, after = MemoryEventStore(), Recorder(), Recorder()
    fw = make(store, dispatchers=[before, Failing(), after])
    with pytest.raises(DispatchError) as info:
        fw.execute("c1", Increment(by=3))
    assert "failing-dispatcher" in str(info.value)
    assert [n for n, _ in info.value.failures] == ["failing-dispatcher"]
    assert [e.payload for e in info.value.envelopes] == [Incremented(by=3)]
    assert len(list(store.read_all())) == 1
    assert len(before.calls) == len(after.calls) == 1


def test_query_processor_keeps_views_up_to_date() -> None:
    queries = MemoryQueryStore()
    processor = QueryProcessor(CounterView, queries)
    fw = make(dispatchers=[processor])
    fw.execute("c1", TwoEvents())
    fw.execute("c1", Increment(by=4))
    context = queries.load(CounterView, "c1")
    assert context.payload == CounterView(total=5, events=3)
    assert context.version == 2
    assert processor.load("absent") == CounterView()
    assert queries.load(CounterView, "absent").version == 0


def test_stale_view_update_raises_concurrency_error_instead_of_overwriting() -> None:
    queries = MemoryQueryStore()
    stale = queries.load(CounterView, "v")
    fresh = queries.load(CounterView, "v")
    fresh.payload.total = 10
    queries.commit(fresh)
    stale.payload.total = 99
    with pytest.raises(ConcurrencyError, match="CounterView/v"):
        queries.commit(stale)
    assert queries.load(CounterView, "v").payload.total == 10


def test_fixed_clock_and_sequential_ids_make_runs_byte_for_byte_repeatable() -> None:
    def run() -> bytes:
        store = MemoryEventStore()
        fw = make(store)
        fw.execute("c1", TwoEvents())
        fw.execute_with_metadata("c2", Increment(by=2), {"who": "x"})
        table = store.export_arrow()
        import io

        import pyarrow.parquet as pq

        sink = io.BytesIO()
        pq.write_table(table, sink)
        return repr(table.to_pylist()).encode() + sink.getvalue()

    assert run() == run()


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ConfigurationError):
        CqrsFramework(Counter, MemoryEventStore(), retries=-1)
    with pytest.raises(ConfigurationError):
        CqrsFramework(Counter, MemoryEventStore(), snapshot_every=0)
