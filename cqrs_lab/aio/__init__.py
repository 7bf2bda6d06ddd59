"""asyncio API: ``AsyncCqrsFramework`` and the native ``AsyncPostgresEventStore``.

Imported only when used (``import cqrs_lab`` does not load it, nor psycopg)::

    from cqrs_lab.aio import AsyncCqrsFramework, AsyncPostgresEventStore

    store = AsyncPostgresEventStore(dsn)
    bank = AsyncCqrsFramework(BankAccount, store, [accounts])
    await bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
    async with store.subscribe(after_position=0, timeout=5.0) as events:
        async for envelope in events: ...

``AsyncPostgresEventStore`` uses psycopg's async pool on the same tables, with
the same statements and guarantees as ``PostgresEventStore``: sync and async
stores on one schema see each other's events in one gap-free global order.
Memory and DuckDB stores are adapted with threads (``ThreadedEventStore``;
``AsyncCqrsFramework`` wraps them itself).
"""

from __future__ import annotations

from typing import Any

from cqrs_lab.aio.framework import AsyncCqrsFramework, AsyncEventStore
from cqrs_lab.aio.subscriptions import AsyncSubscription
from cqrs_lab.aio.threaded import ThreadedEventStore

__all__ = [
    "AsyncCqrsFramework",
    "AsyncEventStore",
    "AsyncPostgresEventStore",
    "AsyncSubscription",
    "ThreadedEventStore",
]


def __getattr__(name: str) -> Any:
    if name == "AsyncPostgresEventStore":  # loads psycopg only when asked for
        from cqrs_lab.aio.postgres import AsyncPostgresEventStore

        return AsyncPostgresEventStore
    raise AttributeError(f"module 'cqrs_lab.aio' has no attribute {name!r}")
