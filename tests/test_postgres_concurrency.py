"""Many OS processes on one PostgreSQL log: no lost or half-committed command, no skipped event.

Writers and the tailing reader are separate Python processes (``subprocess``
running the scripts below), as in production; they report what they did as
JSON on stdout.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from cqrs_lab import CqrsFramework
from cqrs_lab.examples.bank_account import BankAccount, OpenBankAccount
from cqrs_lab.stores.postgres import PostgresEventStore

pytestmark = pytest.mark.slow

ACCOUNTS = [f"ACC-{i}" for i in range(5)]

BANK_WRITER = """
import json, random, sys
from decimal import Decimal
from cqrs_lab import CqrsFramework, UserError
from cqrs_lab.examples.bank_account import BankAccount, DepositMoney, WithdrawMoney
from cqrs_lab.stores.postgres import PostgresEventStore

dsn, schema, seed, commands = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
accepted, rejected = [], 0
with PostgresEventStore(dsn, schema=schema, pool_size=2) as store:
    framework = CqrsFramework(BankAccount, store, retries=10_000)
    for _ in range(commands):
        account = f"ACC-{rng.randrange(5)}"
        amount = Decimal(rng.randint(1, 20_000)) / 100
        kind = "deposit" if rng.random() < 0.55 else "withdraw"
        command = DepositMoney(amount=amount) if kind == "deposit" else WithdrawMoney(amount=amount)
        try:
            [envelope] = framework.execute(account, command)
        except UserError:
            rejected += 1
            continue
        accepted.append([account, kind, str(amount), envelope.event_id])
print(json.dumps({"accepted": accepted, "rejected": rejected}))
"""

TAILING_READER = """
import json, os, sys, time
import cqrs_lab.examples.bank_account
from cqrs_lab.stores.postgres import PostgresEventStore

dsn, schema, stop_file = sys.argv[1], sys.argv[2], sys.argv[3]
seen, last = [], 0
with PostgresEventStore(dsn, schema=schema, pool_size=1) as store:
    while True:
        stopping = os.path.exists(stop_file)  # checked before reading: the last read sees everything
        batch = list(store.read_all(last, batch_size=7))
        for envelope in batch:
            seen.append([envelope.position, envelope.event_id])
            last = envelope.position
        if stopping and not batch:
            break
        if not batch:
            time.sleep(0.002)
print(json.dumps(seen))
"""

TRIPLE_WRITER = """
import sys
from cqrs_lab import Aggregate, Command, CqrsFramework, Event
from cqrs_lab.stores.postgres import PostgresEventStore

class AddThree(Command):
    pass

class Part(Event):
    event_type = "killtest.Part"
    n: int

class Triple(Aggregate):
    aggregate_type = "killtest.Triple"
    parts: int = 0

    def handle(self, command):
        return [Part(n=1), Part(n=2), Part(n=3)]

    def apply(self, event):
        self.parts += 1

dsn, schema, writer, commands = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with PostgresEventStore(dsn, schema=schema, pool_size=1) as store:
    framework = CqrsFramework(Triple, store, retries=10_000, snapshot_every=4)
    for i in range(commands):
        framework.execute_with_metadata(f"T-{i % 3}", AddThree(), {"writer": writer})
print("done")
"""


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out


def query(dsn: str, statement: sql.Composed, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(statement, params).fetchall()


def test_four_writer_processes_and_a_tailing_reader_lose_skip_and_duplicate_nothing(
    postgres_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store:
        framework = CqrsFramework(BankAccount, store)
        opened = [framework.execute(a, OpenBankAccount(account_id=a))[0].event_id for a in ACCOUNTS]
    stop_file = tmp_path / "writers-done"
    reader = spawn(TAILING_READER, postgres_dsn, pg_schema, stop_file)
    writers = [spawn(BANK_WRITER, postgres_dsn, pg_schema, seed, 200) for seed in range(4)]
    reports = [json.loads(finish(w)) for w in writers]
    stop_file.touch()
    seen = json.loads(finish(reader))

    accepted = [row for report in reports for row in report["accepted"]]
    assert len(accepted) + sum(r["rejected"] for r in reports) == 800
    assert len(accepted) > 400  # the run really wrote under contention

    with PostgresEventStore(postgres_dsn, schema=pg_schema) as store:
        log = list(store.read_all())
        framework = CqrsFramework(BankAccount, store)
        # every aggregate's sequences are 1..n, no gap, no duplicate
        for account in ACCOUNTS:
            sequences = [e.sequence for e in store.load_events("BankAccount", account)]
            assert sequences == list(range(1, len(sequences) + 1))
        # each balance is what the writers were told was accepted
        net: dict[str, Decimal] = defaultdict(Decimal)
        for account, kind, amount, _ in accepted:
            net[account] += Decimal(amount) if kind == "deposit" else -Decimal(amount)
        for account in ACCOUNTS:
            assert framework.load(account).balance == net[account]
            assert framework.load(account).balance >= 0

    # the log holds exactly the opened accounts and the accepted commands
    assert sorted(e.event_id for e in log) == sorted(opened + [row[3] for row in accepted])
    # the tailing reader saw every event exactly once, in strictly increasing position order
    positions = [position for position, _ in seen]
    assert all(a < b for a, b in itertools.pairwise(positions))
    assert seen == [[e.position, e.event_id] for e in log]
    # and positions are gap-free (a refused commit gives its positions back)
    assert [e.position for e in log] == list(range(1, len(log) + 1))


def test_killing_writer_processes_mid_run_never_leaves_a_half_committed_command(
    postgres_dsn: str, pg_schema: str
) -> None:
    events = sql.Identifier(pg_schema, "events")
    PostgresEventStore(postgres_dsn, schema=pg_schema).close()
    # the two victims have more work than they can finish before they are killed, however
    # fast the server is; the survivor has 150 commands
    writers = [spawn(TRIPLE_WRITER, postgres_dsn, pg_schema, w, n) for w, n in enumerate((10**6, 10**6, 150))]

    def written_by(writer: int) -> int:
        count = sql.SQL("SELECT count(*) FROM {} WHERE metadata->>'writer' = %s").format(events)
        return int(query(postgres_dsn, count, [str(writer)])[0][0])

    for victim, threshold in ((0, 30), (1, 90)):
        deadline = time.monotonic() + 60
        while written_by(victim) < threshold:
            assert time.monotonic() < deadline, f"writer {victim} did not get going"
            time.sleep(0.001)
        os.kill(writers[victim].pid, signal.SIGKILL)
        writers[victim].wait(timeout=30)
        assert writers[victim].returncode == -signal.SIGKILL
    assert finish(writers[2]).strip() == "done"  # the survivor is not blocked by the killed ones

    rows = query(
        postgres_dsn,
        sql.SQL(
            "SELECT aggregate_id, sequence, metadata->>'command_id', (payload->>'n')::int, position"
            " FROM {} ORDER BY position"
        ).format(events),
    )
    by_command: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    by_stream: dict[str, list[int]] = defaultdict(list)
    for aggregate_id, sequence, command_id, n, _ in rows:
        by_command[command_id].append((aggregate_id, sequence, n))
        by_stream[aggregate_id].append(sequence)
    assert len(by_command) >= 150
    for parts in by_command.values():
        assert [n for _, _, n in parts] == [1, 2, 3]
        assert len({aggregate_id for aggregate_id, _, _ in parts}) == 1
        first = parts[0][1]
        assert [sequence for _, sequence, _ in parts] == [first, first + 1, first + 2]
    for sequences in by_stream.values():
        assert sorted(sequences) == list(range(1, len(sequences) + 1))
    assert [row[4] for row in rows] == list(range(1, len(rows) + 1))
    assert written_by(2) == 450
