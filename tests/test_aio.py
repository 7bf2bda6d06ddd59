"""The asyncio API: AsyncCqrsFramework on every store, AsyncPostgresEventStore beside the sync store.

Each test drives its coroutine with ``asyncio.run`` (no plugin needed).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from cqrs_lab import (
    ConcurrencyError,
    CqrsFramework,
    DispatchError,
    DuplicateCommandError,
    EventEnvelope,
    QueryProcessor,
    UserError,
)
from cqrs_lab.aio import AsyncCqrsFramework, AsyncPostgresEventStore
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountQuery,
    DepositMoney,
    OpenBankAccount,
    WithdrawMoney,
)
from cqrs_lab.stores.base import StoredSnapshot
from cqrs_lab.stores.postgres import PostgresEventStore
from tests.conftest import Backend

HANG_GUARD = 30.0


def _async_store(backend: Backend) -> Any:
    """The native async store on Postgres; the sync store elsewhere (the framework runs it in threads)."""
    if backend.name == "postgres":
        return AsyncPostgresEventStore(backend.dsn, schema=backend.schema)
    return backend.event_store()


class Recorder:
    """An asyncio dispatcher: ``dispatch`` is a coroutine function."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def dispatch(self, aggregate_id: str, envelopes: Sequence[EventEnvelope]) -> None:
        await asyncio.sleep(0)
        self.seen += [e.position for e in envelopes]


def test_async_framework_executes_loads_and_dispatches_on_every_store(backend: Backend) -> None:
    queries = backend.query_store()
    recorder = Recorder()

    async def main() -> None:
        store = _async_store(backend)
        bank = AsyncCqrsFramework(BankAccount, store, [QueryProcessor(BankAccountQuery, queries), recorder])
        try:
            await bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
            [deposit] = await bank.execute("ACC-1", DepositMoney(amount=Decimal("100")))
            await bank.execute_with_metadata("ACC-1", WithdrawMoney(amount=Decimal("30")), {"by": "teller"})
            with pytest.raises(UserError, match="funds not available"):
                await bank.execute("ACC-1", WithdrawMoney(amount=Decimal("1000")))
            assert (await bank.load("ACC-1")).balance == Decimal("70")
            events = await bank.events("ACC-1")
            assert [e.sequence for e in events] == [1, 2, 3]
            assert events[2].metadata["by"] == "teller"
            assert deposit.position == events[1].position
            live_store = bank.event_store  # AsyncPostgresEventStore, or the sync store run in threads
            async with live_store.subscribe(after_position=1, timeout=0) as live:
                assert [e.sequence async for e in live] == [2, 3]
            assert [e.position async for e in live_store.read_all(after_position=1, batch_size=1)] == [2, 3]
        finally:
            await bank.event_store.close()

    asyncio.run(main())
    assert queries.load(BankAccountQuery, "ACC-1").payload.balance == Decimal("70")
    assert recorder.seen == [1, 2, 3]


def test_a_failing_dispatcher_raises_dispatch_error_after_the_commit(backend: Backend) -> None:
    class Broken:
        async def dispatch(self, aggregate_id: str, envelopes: Sequence[EventEnvelope]) -> None:
            raise RuntimeError("view down")

    async def main() -> None:
        store = _async_store(backend)
        bank = AsyncCqrsFramework(BankAccount, store, [Broken()])
        try:
            with pytest.raises(DispatchError, match="view down") as caught:
                await bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
            assert [e.sequence for e in caught.value.envelopes] == [1]
            assert len(await bank.events("ACC-1")) == 1
        finally:
            await bank.event_store.close()

    asyncio.run(main())


def test_fifty_concurrent_tasks_on_one_aggregate_all_commit_with_retries(backend: Backend) -> None:
    async def main() -> None:
        store = _async_store(backend)
        bank = AsyncCqrsFramework(BankAccount, store, retries=1000, snapshot_every=7)
        try:
            await bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
            await asyncio.gather(*(bank.execute("ACC-1", DepositMoney(amount=Decimal(1))) for _ in range(50)))
            assert (await bank.load("ACC-1")).balance == Decimal(50)
            assert [e.sequence for e in await bank.events("ACC-1")] == list(range(1, 52))
            racer = AsyncCqrsFramework(BankAccount, store)  # retries=0: the loser is told
            results = await asyncio.gather(
                *(racer.execute("ACC-1", DepositMoney(amount=Decimal(1))) for _ in range(20)),
                return_exceptions=True,
            )
            lost = [r for r in results if isinstance(r, BaseException)]
            assert all(isinstance(r, ConcurrencyError) for r in lost)
            assert (await bank.load("ACC-1")).balance == Decimal(50 + 20 - len(lost))
        finally:
            await bank.event_store.close()

    asyncio.run(main())


@pytest.mark.postgres
def test_async_and_sync_stores_interleaved_on_one_schema_share_one_gap_free_order(
    postgres_dsn: str, pg_schema: str
) -> None:
    sync_store = PostgresEventStore(postgres_dsn, schema=pg_schema)
    sync_bank = CqrsFramework(BankAccount, sync_store, retries=100)
    try:

        async def main() -> list[int]:
            async with AsyncPostgresEventStore(postgres_dsn, schema=pg_schema) as store:
                bank = AsyncCqrsFramework(BankAccount, store, retries=100)
                await bank.execute("A", OpenBankAccount(account_id="A"))
                sync_bank.execute("S", OpenBankAccount(account_id="S"))
                seen: list[int] = []
                async with store.subscribe(after_position=0, timeout=HANG_GUARD, poll_interval=20) as events:
                    sync_writer = threading.Thread(
                        target=lambda: [
                            sync_bank.execute("A", DepositMoney(amount=Decimal(1))) for _ in range(15)
                        ]
                    )
                    sync_writer.start()
                    for _ in range(15):
                        await bank.execute("A", DepositMoney(amount=Decimal(2)))
                        await bank.execute("S", DepositMoney(amount=Decimal(3)))
                    async for envelope in events:  # woken by the sync store's NOTIFY as well
                        seen.append(envelope.position)
                        if len(seen) == 2 + 15 * 3:
                            break
                    await asyncio.to_thread(sync_writer.join, HANG_GUARD)
                assert (await bank.load("A")).balance == Decimal(15 * 1 + 15 * 2)
                return seen

        seen = asyncio.run(main())
        log = list(sync_store.read_all())
        assert [e.position for e in log] == list(range(1, 2 + 15 * 3 + 1))
        assert seen == [e.position for e in log]
        assert sync_bank.load("S").balance == Decimal(45)
        # a sync subscription sees the async store's commits
        with sync_store.subscribe(after_position=45, timeout=0) as events:
            assert [e.aggregate_id for e in events] == [log[45].aggregate_id, log[46].aggregate_id]
    finally:
        sync_store.close()


@pytest.mark.postgres
def test_async_postgres_store_refuses_bad_settings_and_reports_an_unreachable_server() -> None:
    from cqrs_lab import ConfigurationError, StoreUnavailableError

    with pytest.raises(ConfigurationError, match="pool_size"):
        AsyncPostgresEventStore("postgresql://localhost/x", pool_size=0)
    with pytest.raises(ConfigurationError, match="schema name"):
        AsyncPostgresEventStore("postgresql://localhost/x", schema="no; drop")
    store = AsyncPostgresEventStore("postgresql://nobody@127.0.0.1:9/nothing", connect_timeout=1)

    async def main() -> None:
        with pytest.raises(StoreUnavailableError, match="cannot connect to PostgreSQL"):
            await store.load_events("BankAccount", "A")

    asyncio.run(main())


def test_an_async_subscription_is_woken_by_commits_on_every_store(backend: Backend) -> None:
    async def main() -> list[int]:
        bank = AsyncCqrsFramework(BankAccount, _async_store(backend))
        store = bank.event_store
        await bank.execute("A", OpenBankAccount(account_id="A"))
        got: list[int] = []
        writer = None

        async def two_deposits() -> None:
            for _ in range(2):
                await bank.execute("A", DepositMoney(amount=Decimal(1)))

        try:
            # polling alone would not come for 60 s: only a commit's wake-up ends the 5 s idle wait
            async with store.subscribe(after_position=0, timeout=5.0, poll_interval=60) as events:
                async for envelope in events:
                    got.append(envelope.position)
                    if len(got) == 1:
                        writer = asyncio.ensure_future(two_deposits())
                    if len(got) == 3:
                        break
            assert writer is not None
            await writer
        finally:
            await store.close()
        return got

    assert asyncio.run(main()) == [1, 2, 3]


# -- command ids ------------------------------------------------------------------
def test_an_async_command_id_runs_once_and_a_repeat_returns_the_first_envelopes_on_every_store(
    backend: Backend,
) -> None:
    recorder = Recorder()

    async def main() -> None:
        bank = AsyncCqrsFramework(BankAccount, _async_store(backend), [recorder])
        try:
            await bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
            first = await bank.execute("ACC-1", DepositMoney(amount=Decimal("10.00")), command_id="dep-42")
            again = await bank.execute("ACC-1", DepositMoney(amount=Decimal("10.00")), command_id="dep-42")
            assert again == first and first[0].metadata["command_id"] == "dep-42"
            meta = await bank.execute_with_metadata(
                "ACC-1", DepositMoney(amount=Decimal("10.00")), {"by": "other"}, command_id="dep-42"
            )
            assert meta == first and meta[0].metadata.get("by") is None  # nothing was handled again
            with pytest.raises(DuplicateCommandError, match="'dep-42'") as caught:
                await bank.execute("ACC-1", DepositMoney(amount=Decimal("99.00")), command_id="dep-42")
            assert caught.value.command_id == "dep-42"
            with pytest.raises(UserError):  # a rejected command leaves its id free
                await bank.execute("ACC-1", WithdrawMoney(amount=Decimal("50.00")), command_id="w-1")
            await bank.execute("ACC-1", DepositMoney(amount=Decimal("50.00")))
            [withdrawn] = await bank.execute(
                "ACC-1", WithdrawMoney(amount=Decimal("50.00")), command_id="w-1"
            )
            assert withdrawn.sequence == 4
            assert [e.sequence for e in await bank.events("ACC-1")] == [1, 2, 3, 4]
            assert (await bank.load("ACC-1")).balance == Decimal("10.00")
        finally:
            await bank.event_store.close()

    asyncio.run(main())
    assert recorder.seen == [1, 2, 3, 4]  # the repeats dispatched nothing


def test_a_command_id_is_shared_by_the_sync_and_the_async_framework_on_one_store(backend: Backend) -> None:
    store = backend.event_store()
    sync_bank = CqrsFramework(BankAccount, store)
    sync_bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
    by_sync = sync_bank.execute("ACC-1", DepositMoney(amount=Decimal("3.00")), command_id="s")

    async def main() -> list[EventEnvelope]:
        # Postgres: the native store on the same schema; elsewhere the same store, run in threads
        postgres = backend.name == "postgres"
        bank = AsyncCqrsFramework(BankAccount, _async_store(backend) if postgres else store)
        try:
            assert (
                await bank.execute("ACC-1", DepositMoney(amount=Decimal("3.00")), command_id="s") == by_sync
            )
            return await bank.execute("ACC-1", DepositMoney(amount=Decimal("4.00")), command_id="a")
        finally:
            if postgres:
                await bank.event_store.close()

    by_async = asyncio.run(main())
    assert sync_bank.execute("ACC-1", DepositMoney(amount=Decimal("4.00")), command_id="a") == by_async
    assert sync_bank.load("ACC-1").balance == Decimal("7.00")


def test_async_tasks_racing_with_one_command_id_commit_once_and_all_get_its_envelopes(
    backend: Backend,
) -> None:
    async def main() -> None:
        bank = AsyncCqrsFramework(BankAccount, _async_store(backend))  # retries=0: no second try
        try:
            await bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
            for round_ in range(5):
                results = await asyncio.gather(
                    *(
                        bank.execute(
                            "ACC-1", DepositMoney(amount=Decimal("1.00")), command_id=f"race-{round_}"
                        )
                        for _ in range(8)
                    )
                )
                [winner] = {tuple(e.event_id for e in r) for r in results}
                assert len(winner) == 1
            events = await bank.events("ACC-1")
            assert [e.metadata["command_id"] for e in events[1:]] == [f"race-{n}" for n in range(5)]
        finally:
            await bank.event_store.close()

    asyncio.run(main())


@pytest.mark.postgres
def test_the_async_postgres_store_refuses_a_taken_command_id_whole(postgres_dsn: str, pg_schema: str) -> None:
    async def main() -> None:
        async with AsyncPostgresEventStore(postgres_dsn, schema=pg_schema) as store:
            bank = AsyncCqrsFramework(BankAccount, store)
            await bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
            [event] = await bank.execute("ACC-1", DepositMoney(amount=Decimal("1.00")), command_id="c-1")
            stored = await store.load_command("BankAccount", "ACC-1", "c-1")
            assert stored is not None and (stored.first_sequence, stored.last_sequence) == (2, 2)
            later = replace(event, sequence=3, event_id="another")
            snapshot = StoredSnapshot("BankAccount", "ACC-1", 3, "{}")
            command = replace(stored, first_sequence=3, last_sequence=3)
            with pytest.raises(ConcurrencyError, match="command id 'c-1' is already committed"):
                await store.commit([later], snapshot=snapshot, command=command)
            assert [e.sequence for e in await store.load_events("BankAccount", "ACC-1")] == [1, 2]
            assert (await store.load_snapshot_and_stream("BankAccount", "ACC-1"))[0] is None
            assert await store.load_command("BankAccount", "ACC-1", "nope") is None

    asyncio.run(main())
