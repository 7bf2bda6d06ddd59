"""W10: four projections over the global log run by 1 or 2 worker processes (PostgreSQL).

Events applied per second from the start until every projection has applied the
log; every view is checked against the ledgers' totals. No raw baseline: two
workers are compared with one.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Any

from cqrs_lab.bench.child import collect, spawn_child
from cqrs_lab.bench.domain import LedgerTotals, posted
from cqrs_lab.bench.results import Result, Size, check, median, result
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, PostgresSite, fresh_site
from cqrs_lab.bench.workloads import Workload
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.projections import Projection
from cqrs_lab.stores.base import EventStore, QueryStore

if TYPE_CHECKING:
    import pyarrow as pa

W10_PROJECTIONS = 4
W10_LEASE = 1.0
"""W10's worker lease (s): short, so two workers settle on two projections each quickly."""


def _w10_view(projection: int, envelope: EventEnvelope) -> str:
    return f"{envelope.aggregate_id}#{projection}"


def w10_projections(event_store: EventStore, query_store: QueryStore) -> list[Projection]:
    """W10's projections: ``LedgerTotals`` per ledger, each projection into views of its own."""
    return [
        Projection(f"w10_{i}", event_store, query_store, [LedgerTotals], view_id=partial(_w10_view, i))
        for i in range(W10_PROJECTIONS)
    ]


def worker(task: dict[str, Any]) -> int:
    """A W10 worker process: runs the projections from "go" until told to stop."""
    from cqrs_lab.stores.postgres import PostgresEventStore, PostgresQueryStore
    from cqrs_lab.worker import ProjectionWorker

    places = Places(**task["places"])
    assert places.dsn is not None
    with (
        PostgresEventStore(places.dsn, schema=task["schema"], pool_size=2) as store,
        PostgresQueryStore(store) as queries,
    ):
        projection_worker = ProjectionWorker(
            w10_projections(store, queries), lease=W10_LEASE, name=task["name"]
        )
        stop = threading.Event()
        print("ready", flush=True)
        sys.stdin.readline()

        def stop_on_next_line() -> None:
            sys.stdin.readline()
            stop.set()

        threading.Thread(target=stop_on_next_line, daemon=True).start()
        applied = projection_worker.run(stop)
    print(json.dumps(applied))
    return 0


def w10_workers(places: Places, size: Size, workers: int, data: pa.Table) -> float:
    """``W10_PROJECTIONS`` projections over the ``size.log`` log, run by ``workers`` worker
    processes from the start until every projection has applied the log; events applied/s.
    Each view is checked against the totals computed from the table."""
    n = int(data.num_rows)
    with fresh_site(places) as site:
        assert isinstance(site, PostgresSite)
        store = site.event_store()
        store.import_arrow(data)
        queries = site.query_store(store)
        task = {"workload": "W10", "places": asdict(places), "size": size.name, "schema": site.schema}
        children = [spawn_child(task | {"name": f"w10-{k}"}) for k in range(workers)]
        try:
            start = time.perf_counter()
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            for projection in w10_projections(store, queries):
                projection.wait_for(n, timeout=3600)
            seconds = time.perf_counter() - start
            for child in children:
                assert child.stdin is not None
                child.stdin.write("stop\n")
                child.stdin.close()
            applied = [collect(child, "W10") for child in children]
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        for i in range(W10_PROJECTIONS):
            done = sum(a[f"w10_{i}"] for a in applied)
            check(done == n, f"W10: projection w10_{i} applied {done} events in {workers} workers, not {n}")
        _w10_check_views(queries, data)
        queries.close()
        store.close()
    return W10_PROJECTIONS * n / seconds


def _w10_check_views(queries: QueryStore, data: pa.Table) -> None:
    """Every view of every W10 projection holds exactly its ledger's entries and balance."""
    expected: dict[str, tuple[int, int]] = {}
    for ledger, sequence in zip(data["aggregate_id"].to_pylist(), data["sequence"].to_pylist(), strict=True):
        entries, balance = expected.get(ledger, (0, 0))
        expected[ledger] = (entries + 1, balance + posted(sequence).amount)
    for i in range(W10_PROJECTIONS):
        views = queries.load_many(LedgerTotals, [f"{ledger}#{i}" for ledger in expected])
        got = {v.split("#")[0]: (c.payload.entries, c.payload.balance) for v, c in views.items()}
        check(got == expected, f"W10: the views of projection w10_{i} are not the ledgers' totals")


def bench(run: Run, store: str) -> list[Result]:
    n = run.size.log
    places, data = run.places(store), run.table("log")
    pairs = run.runs(lambda: (w10_workers(places, run.size, 1, data), w10_workers(places, run.size, 2, data)))
    one, two = [p[0] for p in pairs], [p[1] for p in pairs]
    title = f"{W10_PROJECTIONS} projections over {n:,} events, events applied/s"
    return [
        result("W10", store, f"{title}, 1 worker process", "events/s", n, one),
        result(
            "W10", store, f"{title}, 2 worker processes", "events/s", n, two, one, variant="2workers",
            baseline_name="1 worker process", ratio=median(two) / median(one),
            ratio_meaning="2 workers ÷ 1 worker (rate)",
        ),
    ]  # fmt: skip


WORKLOAD = Workload("W10", ("postgres",), bench, worker)
