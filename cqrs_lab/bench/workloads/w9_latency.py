"""W9: commit-to-delivery latency of a subscriber in another process (PostgreSQL); p99 in ms.

No raw baseline: the subscriber woken by NOTIFY (with its poll fallback) is
compared with subscribers polling alone, at the fallback's interval and at 10 ms.
"""

from __future__ import annotations

import statistics
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from typing import Any

from cqrs_lab.bench.child import collect, spawn_child
from cqrs_lab.bench.domain import Ledger, PostBatch
from cqrs_lab.bench.results import Result, Size, check, median, result
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, PostgresSite, fresh_site
from cqrs_lab.bench.workloads import Workload
from cqrs_lab.framework import CqrsFramework
from cqrs_lab.subscriptions import POLL_INTERVAL, Signal, Subscription

W9_PACE = 0.002
"""Seconds the W9 writer waits between commits (so each commit is measured on its own)."""
W9_MODES = {"notify": None, "poll": POLL_INTERVAL, "poll-10ms": 0.01}
"""W9's subscribers: woken by NOTIFY (polling every ``POLL_INTERVAL`` as the fallback), or
polling alone, at the fallback's interval and at 10 ms."""
TARGET_MS = 50


def subscriber(task: dict[str, Any]) -> int:
    """W9's subscriber (a child process): the monotonic time each position arrived."""
    import json

    from cqrs_lab.stores.postgres import PostgresEventStore

    places = Places(**task["places"])
    assert places.dsn is not None
    n = task["commits"]
    arrived: dict[int, float] = {}
    with PostgresEventStore(places.dsn, schema=task["schema"], pool_size=1) as store:
        poll = task["poll"]
        events: AbstractContextManager[Subscription] = (
            store.subscribe(after_position=0, timeout=120)
            if poll is None  # polling alone: the same reader, with nothing to wake it
            else nullcontext(Subscription(store._read_envelopes, Signal(), timeout=120, poll_interval=poll))
        )
        with events as subscription:
            print("ready", flush=True)
            for envelope in subscription:
                arrived[envelope.position] = time.monotonic()
                if len(arrived) == n:
                    break
    print(json.dumps(arrived))
    return 0


def w9_latency(places: Places, size: Size, mode: str) -> dict[str, float]:
    """``size.live_commits`` one-event commits, each timed from just before ``execute``
    to its arrival in a subscriber process; p50 and p99 in ms."""
    n = size.live_commits
    with fresh_site(places) as site:
        assert isinstance(site, PostgresSite)
        store = site.event_store()
        child = spawn_child(
            {"workload": "W9", "places": asdict(places), "size": size.name, "schema": site.schema,
             "commits": n, "poll": W9_MODES[mode]}
        )  # fmt: skip
        try:
            fw = CqrsFramework(Ledger, store)
            command = PostBatch(n=1)
            sent: dict[int, float] = {}
            for i in range(n):
                started = time.monotonic()
                [envelope] = fw.execute(f"w9-{i % 10}", command)
                sent[envelope.position] = started
                time.sleep(W9_PACE)
            arrived = {int(k): v for k, v in collect(child, "W9").items()}
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            store.close()
    check(sorted(arrived) == sorted(sent), f"W9 ({mode}): the subscriber did not get exactly the commits")
    latencies = [1000 * (arrived[p] - sent[p]) for p in sent]
    return {"p50": median(latencies), "p99": statistics.quantiles(latencies, n=100)[98]}


def bench(run: Run, store: str) -> list[Result]:
    n = run.size.live_commits
    places = run.places(store)
    results = []
    for mode, poll in W9_MODES.items():
        outcomes = run.runs(lambda mode=mode: w9_latency(places, run.size, mode))  # type: ignore[misc]
        how = "woken by NOTIFY" if poll is None else f"polling alone every {poll * 1000:g} ms"
        title = f"commit-to-delivery p99, subscriber in another process {how}, {n:,} commits"
        p99 = [o["p99"] for o in outcomes]
        p50 = median([o["p50"] for o in outcomes])
        row = result(
            "W9", store, title, "ms", n, p99, variant="" if poll is None else mode,
            extra={"p50_ms": p50}, notes=[f"p50 {p50:,.2f} ms"],
        )  # fmt: skip
        if poll is None:
            row.target, row.met = f"p99 < {TARGET_MS} ms", median(p99) < TARGET_MS
        results.append(row)
    return results


WORKLOAD = Workload("W9", ("postgres",), bench, subscriber)
