"""W7: worker processes run commands on shared aggregates (Postgres); commands/s, conflicts, retries."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from cqrs_lab.bench.child import child_command
from cqrs_lab.bench.domain import Ledger, PostBatch
from cqrs_lab.bench.results import SIZES, Result, Size, check, median, result
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, PostgresSite, create_tables, fresh_site
from cqrs_lab.bench.workloads import Workload
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import ConcurrencyError
from cqrs_lab.framework import CqrsFramework
from cqrs_lab.stores.base import EventStore, StoredSnapshot


class CountingStore:
    """Passes everything to ``inner``; counts the commits that lost a race (W7)."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.codec = inner.codec
        self.conflicts = 0

    def load_events(
        self, aggregate_type: str, aggregate_id: str, *, after_sequence: int = 0
    ) -> list[EventEnvelope]:
        return self.inner.load_events(aggregate_type, aggregate_id, after_sequence=after_sequence)

    def commit(
        self, envelopes: Sequence[EventEnvelope], *, snapshot: StoredSnapshot | None = None
    ) -> list[EventEnvelope]:
        try:
            return self.inner.commit(envelopes, snapshot=snapshot)
        except ConcurrencyError:
            self.conflicts += 1
            raise

    def read_all(self, after_position: int = 0, *, batch_size: int = 1000) -> Iterator[EventEnvelope]:
        return self.inner.read_all(after_position, batch_size=batch_size)

    def load_snapshot(self, aggregate_type: str, aggregate_id: str) -> StoredSnapshot | None:
        return self.inner.load_snapshot(aggregate_type, aggregate_id)

    def close(self) -> None:
        self.inner.close()


def worker(task: dict[str, Any]) -> int:
    """A W7 worker (child process): run commands on the shared ledgers once the parent says go."""
    places, size = Places(**task["places"]), SIZES[task["size"]]
    import random

    from cqrs_lab.stores.postgres import PostgresEventStore

    assert places.dsn is not None
    store = CountingStore(PostgresEventStore(places.dsn, schema=task["schema"]))
    fw = CqrsFramework(Ledger, store, retries=1000)
    rng = random.Random(task["seed"])
    targets = [f"shared-{rng.randrange(size.shared)}" for _ in range(size.worker_commands)]
    command = PostBatch(n=1)
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.monotonic()
    done = failed = 0
    for aggregate_id in targets:
        try:
            fw.execute(aggregate_id, command)
            done += 1
        except ConcurrencyError:
            failed += 1
    end = time.monotonic()
    store.close()
    print(
        json.dumps({"start": start, "end": end, "done": done, "failed": failed, "conflicts": store.conflicts})
    )
    return 0


def w7_contention(places: Places, size: Size) -> dict[str, float]:
    """W7: ``size.workers`` processes run commands on ``size.shared`` shared aggregates."""
    with fresh_site(places) as site:
        assert isinstance(site, PostgresSite)
        create_tables(site)
        workers = [
            subprocess.Popen(child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(size.workers)
        ]
        try:
            for seed, proc in enumerate(workers):
                assert proc.stdin is not None and proc.stdout is not None
                task = {
                    "workload": "W7",
                    "places": asdict(places),
                    "size": size.name,
                    "schema": site.schema,
                    "seed": seed,
                }
                proc.stdin.write(json.dumps(task) + "\n")
                proc.stdin.flush()
            for proc in workers:
                assert proc.stdout is not None
                check(proc.stdout.readline().strip() == "ready", "a W7 worker failed to start")
            for proc in workers:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.close()
            reports = []
            for proc in workers:
                assert proc.stdout is not None
                out = proc.stdout.read()
                check(proc.wait() == 0, "a W7 worker failed (see its error above)")
                reports.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        count = site.count_events()
    done = sum(r["done"] for r in reports)
    failed = sum(r["failed"] for r in reports)
    conflicts = sum(r["conflicts"] for r in reports)
    check(done + failed == size.workers * size.worker_commands, "W7 lost commands")
    check(count == done, f"W7 stored {count} events for {done} successful commands")
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    return {
        "commands_per_s": done / wall,
        "conflicts_per_s": conflicts / wall,
        "retries": float(conflicts - failed),
        "failed": float(failed),
    }


def bench(run: Run, store: str) -> list[Result]:
    size = run.size
    n = size.workers * size.worker_commands
    places = run.places(store)
    outcomes = run.runs(lambda: w7_contention(places, size))
    title = f"{size.workers} processes, {n:,} commands on {size.shared} shared aggregates"
    extra = {key: median([o[key] for o in outcomes]) for key in ("conflicts_per_s", "retries", "failed")}
    notes = [
        f"{extra['conflicts_per_s']:,.1f} conflicts/s, {extra['retries']:,.0f} retries, "
        f"{extra['failed']:,.0f} failed"
    ]
    runs = [o["commands_per_s"] for o in outcomes]
    return [result("W7", store, title, "commands/s", n, runs, extra=extra, notes=notes)]


WORKLOAD = Workload("W7", ("postgres",), bench, worker)
