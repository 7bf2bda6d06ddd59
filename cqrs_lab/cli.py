"""The ``cqrs-lab`` command: a demo, and the event log from the shell.

Every subcommand mirrors a Python call (``import`` → ``store.import_events``,
``export`` → ``store.export_events``, ``replay`` → ``Projection.rebuild``,
``handout`` → ``cqrs_lab.notebook.write_handout``), and
every one is documented in README.md (a test checks it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from cqrs_lab.errors import ConfigurationError, CqrsLabError, TechnicalError

__all__ = ["main"]

TRACEBACK_ENV = "CQRS_LAB_TRACEBACK"
"""Set to 1 to get the traceback of an unexpected error instead of its one-line summary."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2), like the rest."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {value}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- opening stores -------------------------------------------------------------
def _add_store_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--db", metavar="PATH", help="a DuckDB database file")
    where.add_argument(
        "--dsn", metavar="DSN", help="a PostgreSQL connection string (default: $CQRS_LAB_POSTGRES_DSN)"
    )
    parser.add_argument("--schema", default="cqrs_lab", help="PostgreSQL schema (default: cqrs_lab)")


def _postgres(args: argparse.Namespace, *, must_exist: bool) -> Any:
    """The PostgreSQL event store of ``--dsn`` and ``--schema``; errors in the options' words.

    A command that reads (``must_exist``) never creates the schema or its tables.
    """
    from cqrs_lab.stores.postgres import DSN_ENV, DSN_SOURCES, NOT_CREATED, PostgresEventStore

    try:
        return PostgresEventStore(args.dsn, schema=args.schema, create=not must_exist)
    except CqrsLabError as exc:
        text = str(exc).replace(DSN_SOURCES, f"--dsn or ${DSN_ENV}")
        text = text.replace(NOT_CREATED, "check --schema (a command that only reads creates no schema)")
        raise type(exc)(text) from exc


@contextmanager
def _open_stores(
    args: argparse.Namespace, *, must_exist: bool, read_only: bool = False
) -> Iterator[tuple[Any, Any]]:
    """The event store and (unless ``read_only``) a query store sharing its database,
    closed afterwards."""
    if args.db is None and (args.dsn or os.environ.get("CQRS_LAB_POSTGRES_DSN")):
        from cqrs_lab.stores.postgres import PostgresQueryStore

        pg_events = _postgres(args, must_exist=must_exist)
        pg_queries = None if read_only else PostgresQueryStore(pg_events, schema=args.schema)
        try:
            yield pg_events, pg_queries
        finally:
            if pg_queries is not None:
                pg_queries.close()
            pg_events.close()
        return
    if args.db is None:
        raise ConfigurationError("say which store: --db PATH (DuckDB) or --dsn DSN (PostgreSQL)")
    path = Path(args.db)
    if must_exist and not path.is_file():
        raise ConfigurationError(f"no DuckDB database at {str(path)!r}: check the path (--db)")
    from cqrs_lab.stores.duckdb import DuckDBEventStore, DuckDBQueryStore

    events = DuckDBEventStore(path, read_only=read_only)
    queries = None if read_only else DuckDBQueryStore(events)
    try:
        yield events, queries
    finally:
        if queries is not None:
            queries.close()
        events.close()


@contextmanager
def _progress(total: int | None, unit: str, desc: str) -> Iterator[Callable[[int], None]]:
    from tqdm import tqdm

    with tqdm(total=total, unit=unit, desc=desc, disable=None, file=sys.stderr) as bar:
        yield bar.update


# -- subcommands -----------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from cqrs_lab import CqrsFramework, FixedClock, QueryProcessor, SequentialIds, UserError
    from cqrs_lab.examples.bank_account import (
        BankAccount,
        BankAccountQuery,
        DepositMoney,
        OpenBankAccount,
        WithdrawMoney,
        WriteCheck,
    )
    from cqrs_lab.stores.memory import MemoryEventStore, MemoryQueryStore

    if args.memory:
        events: Any = MemoryEventStore()
        queries: Any = MemoryQueryStore()
        where = "memory"
    else:
        from cqrs_lab.stores.duckdb import DuckDBEventStore, DuckDBQueryStore

        path = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="cqrs-lab-demo-")) / "demo.duckdb"
        if path.exists():
            raise ConfigurationError(
                f"{str(path)!r} already exists; the demo writes a new database: give a new --db path"
            )
        events = DuckDBEventStore(path)
        queries = DuckDBQueryStore(events)
        where = str(path)
    processor = QueryProcessor(BankAccountQuery, queries)
    framework = CqrsFramework(BankAccount, events, [processor], clock=FixedClock(), ids=SequentialIds())
    story = [
        OpenBankAccount(account_id="ACC-001"),
        DepositMoney(amount=Decimal("1000.00")),
        WithdrawMoney(amount=Decimal("250.00")),
        WriteCheck(check_number="1170", amount=Decimal("120.50")),
        WithdrawMoney(amount=Decimal("5000.00")),
    ]
    print(f"store: {where}\n")
    for command in story:
        try:
            framework.execute("ACC-001", command)
            print(f"ok        {command!r}")
        except UserError as exc:
            print(f"rejected  {command!r}: {exc.message}")
    print("\nevents:")
    for envelope in events.read_all():
        print(f"{envelope.position:>3} {envelope.aggregate_id}#{envelope.sequence} {envelope.payload!r}")
    print(f"\nquery: {processor.load('ACC-001')!r}")
    queries.close()
    events.close()
    if not args.memory:
        print(f"\nThe log is in {where}; try: cqrs-lab events --db {where}")
    return 0


def _events(args: argparse.Namespace) -> int:
    import pyarrow.compute as pc

    with _open_stores(args, must_exist=True, read_only=True) as (events, _):
        table = events.export_arrow(after_position=args.after)
    if args.aggregate_id is not None:
        table = table.filter(pc.equal(table["aggregate_id"], args.aggregate_id))
    if args.type is not None:
        table = table.filter(pc.equal(table["event_type"], args.type))
    total = table.num_rows
    table = table.slice(0, args.limit) if args.limit else table
    frame = table.select(
        ["position", "aggregate_type", "aggregate_id", "sequence", "event_type", "payload"]
    ).to_pandas()
    import pandas as pd

    with pd.option_context("display.max_colwidth", 80, "display.width", 200, "display.max_rows", None):
        print(frame.to_string(index=False) if len(frame) else "(no events)")
    if args.limit and total > args.limit:
        print(f"... {total - args.limit} more (use --limit 0 for all, --after N to page)")
    return 0


def _import(args: argparse.Namespace) -> int:
    from cqrs_lab.stores.arrow import read_events_file

    table = read_events_file(args.file, args.format)
    with (
        _open_stores(args, must_exist=False) as (events, _),
        _progress(table.num_rows, "event", "import") as step,
    ):
        count = events.import_arrow(table)
        step(count)
    print(f"imported {count} events from {args.file}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from cqrs_lab.stores.arrow import write_events_file

    with _open_stores(args, must_exist=True, read_only=True) as (events, _):
        table = events.export_arrow(after_position=args.after)
    with _progress(table.num_rows, "event", "export") as step:
        count = write_events_file(table, args.file, args.format)
        step(count)
    print(f"exported {count} events to {args.file}")
    return 0


def _load_object(spec: str, option: str) -> Any:
    module_name, _, name = spec.partition(":")
    if not name:
        raise ConfigurationError(
            f"{option} {spec!r} is not module:name (e.g. cqrs_lab.examples.bank_account:BankAccountQuery)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"{option}: cannot import {module_name!r} for {spec!r}: {exc}") from exc
    if not hasattr(module, name):
        raise ConfigurationError(f"{option}: module {module_name!r} has no {name!r}")
    return getattr(module, name)


def _replay(args: argparse.Namespace) -> int:
    from cqrs_lab.domain import Query
    from cqrs_lab.projections import Projection

    queries = [_load_object(spec, "--query") for spec in args.query]
    for query in queries:
        if not (isinstance(query, type) and issubclass(query, Query)):
            raise ConfigurationError(f"--query: {query!r} is not a Query class")
    extra: dict[str, Any] = {}
    if args.view_id:
        view_id = _load_object(args.view_id, "--view-id")
        if isinstance(view_id, type) or not callable(view_id):
            raise ConfigurationError(
                f"--view-id {args.view_id!r} is not a function (it is {view_id!r}): give a function "
                "that takes an event envelope and returns the id of the view it updates"
            )
        extra["view_id"] = view_id
    with _open_stores(args, must_exist=True) as (events, query_store):
        projection = Projection(args.name, events, query_store, queries, **extra)
        # the total costs one read of the log through Arrow: cheap beside decoding every event
        total = events.export_arrow(after_position=0).num_rows
        with _progress(total, "event", f"replay {args.name}") as step:
            try:
                count = projection.rebuild(progress=step)
            except CqrsLabError:
                raise
            except Exception as exc:  # a query's update() failed: the projection says where
                where = " ".join(getattr(exc, "__notes__", []))
                raise TechnicalError(f"{exc!r} {where}".strip()) from exc
    print(
        f"replayed {count} events into {', '.join(q.query_type for q in queries)} (projection {args.name!r})"
    )
    return 0


def _projections(spec: str, events: Any, queries: Any) -> list[Any]:
    """The Projections and ProcessRunners named by ``MODULE:NAME``: one, a list of them, or a
    callable taking ``(event_store, query_store)`` and returning either."""
    from cqrs_lab.process import ProcessRunner
    from cqrs_lab.projections import Projection

    runs = (Projection, ProcessRunner)
    found = _load_object(spec, "--projection")
    if callable(found) and not isinstance(found, (*runs, type)):
        found = found(events, queries)
    items = [found] if isinstance(found, runs) else found
    try:
        projections = list(items)
    except TypeError:
        projections = [items]
    bad = [p for p in projections if not isinstance(p, runs)]
    if bad or not projections:
        raise ConfigurationError(
            f"{spec} gave {bad[0] if bad else 'no projection'!r}: it must be a Projection or a "
            "ProcessRunner, a list of them, or a function taking (event_store, query_store) and "
            "returning them"
        )
    return projections


def _project(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from cqrs_lab.projections import Projection
    from cqrs_lab.worker import ProjectionWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    stop = threading.Event()
    with _open_stores(args, must_exist=False) as (events, queries):
        projections = [p for spec in args.projection for p in _projections(spec, events, queries)]
        worker = ProjectionWorker(projections, lease=args.lease, name=args.name)
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                handlers[number] = signal.signal(number, lambda *_: stop.set())
        try:
            applied = worker.run(stop)
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
    for projection in projections:
        count = applied[projection.name]
        if isinstance(projection, Projection):
            print(f"projection {projection.name}: {count} event(s) applied by this worker")
        else:
            fired = worker.fired[projection.name]
            print(
                f"process runner {projection.name}: {count} event(s) handled and {fired} deadline(s) "
                "fired by this worker"
            )
    return 0


def _sample(args: argparse.Namespace) -> int:
    from cqrs_lab.examples.sample import generate, write_sample

    folder = Path(args.folder)
    if not folder.exists():
        raise ConfigurationError(f"folder {str(folder)!r} does not exist: create it first")
    if not folder.is_dir():
        raise ConfigurationError(f"{str(folder)!r} is not a folder: give the folder to write the files in")
    with _progress(args.commands, "command", "generate") as step:
        table = generate(accounts=args.accounts, commands=args.commands, seed=args.seed, progress=step)
    for path in write_sample(folder, table):
        print(f"wrote {path} ({table.num_rows} events)")
    return 0


def _handout(args: argparse.Namespace) -> int:
    from cqrs_lab.notebook.handout import write_handout

    path = write_handout(args.notebook, args.out)
    print(f"wrote {path}: one HTML file, every output visible offline")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from cqrs_lab import bench

    return int(bench.run_from_args(args))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cqrs-lab", description="CQRS and event sourcing, explored in Jupyter.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    demo = commands.add_parser(
        "demo", help="run the bank-account story on DuckDB and print the events and the query"
    )
    demo.add_argument(
        "--db", metavar="PATH", help="write the demo to this new DuckDB file (default: a temp file)"
    )
    demo.add_argument("--memory", action="store_true", help="use the in-memory store instead")
    demo.set_defaults(run=_demo)

    events = commands.add_parser("events", help="list and filter the event log as a table")
    _add_store_options(events)
    events.add_argument("--aggregate-id", help="only this aggregate")
    events.add_argument("--type", help="only this event type")
    events.add_argument(
        "--after", type=_at_least(0), default=0, metavar="POSITION", help="only events after this position"
    )
    events.add_argument(
        "--limit", type=_at_least(0), default=20, metavar="N", help="show at most N (0: all; default 20)"
    )
    events.set_defaults(run=_events)

    imp = commands.add_parser("import", help="import events from Parquet, JSON Lines or CSV (atomic)")
    imp.add_argument("file", help="a .parquet, .jsonl, .jsonl.gz or .csv file")
    imp.add_argument(
        "--format", choices=["parquet", "jsonl", "csv"], help="override the format from the suffix"
    )
    _add_store_options(imp)
    imp.set_defaults(run=_import)

    exp = commands.add_parser("export", help="export events to Parquet, JSON Lines or CSV")
    exp.add_argument("file", help="a .parquet, .jsonl, .jsonl.gz or .csv file")
    exp.add_argument(
        "--format", choices=["parquet", "jsonl", "csv"], help="override the format from the suffix"
    )
    exp.add_argument(
        "--after", type=_at_least(0), default=0, metavar="POSITION", help="only events after this position"
    )
    _add_store_options(exp)
    exp.set_defaults(run=_export)

    replay = commands.add_parser("replay", help="rebuild projections (views) from the whole event log")
    _add_store_options(replay)
    replay.add_argument(
        "--query", action="append", required=True, metavar="MODULE:CLASS", help="a Query class (repeatable)"
    )
    replay.add_argument("--name", default="default", help="the projection's name (its checkpoint)")
    replay.add_argument("--view-id", metavar="MODULE:FUNCTION", help="maps an envelope to its view id")
    replay.set_defaults(run=_replay)

    project = commands.add_parser(
        "project",
        help=(
            "run projections and process runners continuously, sharing them with the other workers "
            "(Ctrl-C stops)"
        ),
    )
    _add_store_options(project)
    project.add_argument(
        "--projection",
        action="append",
        required=True,
        metavar="MODULE:NAME",
        help=(
            "a Projection or ProcessRunner, a list of them, or a function (event_store, query_store) "
            "-> them (repeatable)"
        ),
    )
    project.add_argument(
        "--lease",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how soon another worker takes over the projections of a worker that died (default 10)",
    )
    project.add_argument("--name", help="this worker's name in logs and pg_stat_activity (default host:pid)")
    project.set_defaults(run=_project)

    sample = commands.add_parser("sample", help="generate the deterministic bank-account sample log")
    sample.add_argument("folder", help="where to write the Parquet and JSON Lines files")
    sample.add_argument(
        "--accounts", type=_at_least(1), default=3000, metavar="N", help="bank accounts (default 3000)"
    )
    sample.add_argument(
        "--commands", type=_at_least(1), default=110_000, metavar="N", help="commands to run (default 110000)"
    )
    sample.add_argument("--seed", type=int, default=2024, help="random seed: the same seed, the same log")
    sample.set_defaults(run=_sample)

    handout = commands.add_parser(
        "handout", help="a notebook as one self-contained HTML file that works offline (for a class)"
    )
    handout.add_argument("notebook", metavar="NOTEBOOK.ipynb", help="the notebook, as saved (with outputs)")
    handout.add_argument(
        "-o", "--out", metavar="OUT.html", help="where to write it (default: NOTEBOOK.html beside it)"
    )
    handout.set_defaults(run=_handout)

    bench = commands.add_parser("bench", help="benchmark every store against its raw driver")
    from cqrs_lab import bench as bench_module

    bench_module.add_arguments(bench)
    bench.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; every error is one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except CqrsLabError as exc:
        print(f"cqrs-lab {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        print(
            f"cqrs-lab {args.command}: error: unexpected {type(exc).__name__}: {_one_line(str(exc))} "
            f"(set {TRACEBACK_ENV}=1 for the traceback)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
