"""W11: ``AsyncCqrsFramework`` with 50 tasks against ``CqrsFramework`` with 4 threads (PostgreSQL)."""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence

from cqrs_lab.bench.domain import Ledger, PostBatch
from cqrs_lab.bench.results import Result, Size, check, median, result, timed
from cqrs_lab.bench.runner import Run
from cqrs_lab.bench.sites import Places, PostgresSite, fresh_site
from cqrs_lab.bench.workloads import Workload
from cqrs_lab.framework import CqrsFramework

W11_TASKS = 50
W11_THREADS = 4


def w11_async(places: Places, size: Size, side: str) -> float:
    """``size.aggregates`` one-event commands on new aggregates; commands/s, by
    ``AsyncCqrsFramework`` in ``W11_TASKS`` tasks ("async") or ``CqrsFramework`` in
    ``W11_THREADS`` threads ("sync"), each store with its default pool."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    n = size.aggregates
    ids = [f"w11-{i}" for i in range(n)]
    command = PostBatch(n=1)
    with fresh_site(places) as site:
        assert isinstance(site, PostgresSite)
        if side == "async":
            from cqrs_lab.aio import AsyncCqrsFramework, AsyncPostgresEventStore

            async def main() -> float:
                async with AsyncPostgresEventStore(site.dsn, schema=site.schema) as store:
                    fw = AsyncCqrsFramework(Ledger, store)
                    await fw.load("warm-up")  # opens the pool

                    async def task(share: Sequence[str]) -> None:
                        for aggregate_id in share:
                            await fw.execute(aggregate_id, command)

                    start = time.perf_counter()
                    await asyncio.gather(*(task(ids[k::W11_TASKS]) for k in range(W11_TASKS)))
                    return time.perf_counter() - start

            gc.collect()
            seconds = asyncio.run(main())
        else:
            store = site.event_store()
            fw = CqrsFramework(Ledger, store)

            def thread(share: Sequence[str]) -> None:
                for aggregate_id in share:
                    fw.execute(aggregate_id, command)

            with ThreadPoolExecutor(W11_THREADS) as pool:
                shares = [ids[k::W11_THREADS] for k in range(W11_THREADS)]
                seconds, _ = timed(lambda: list(pool.map(thread, shares)))
            store.close()
        count = site.count_events()
    check(count == n, f"W11 ({side}) committed {count} events, expected {n}")
    return n / seconds


def bench(run: Run, store: str) -> list[Result]:
    n = run.size.aggregates
    places = run.places(store)
    pairs = run.runs(lambda: (w11_async(places, run.size, "async"), w11_async(places, run.size, "sync")))
    title = f"{n:,} commands on new aggregates, AsyncCqrsFramework with {W11_TASKS} tasks"
    return [
        result(
            "W11", store, title, "commands/s", n, [p[0] for p in pairs], [p[1] for p in pairs],
            baseline_name=f"CqrsFramework, {W11_THREADS} threads", ratio_meaning="async ÷ sync (rate)",
            ratio=median([p[0] for p in pairs]) / median([p[1] for p in pairs]),
        )
    ]  # fmt: skip


WORKLOAD = Workload("W11", ("postgres",), bench)
