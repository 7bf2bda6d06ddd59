"""A deterministic generator of the bank-account sample event log.

``generate(accounts=3000, commands=110_000, seed=2024)`` drives the real
domain through ``CqrsFramework`` on a memory store, with a fixed clock and
sequential ids, and returns the log as an Arrow table (``event_arrow_schema``).
The same arguments always give the same rows; ``data/`` holds the default log
as Parquet and JSON Lines (``write_sample``).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from cqrs_lab.domain import Command
from cqrs_lab.envelope import FixedClock, SequentialIds
from cqrs_lab.errors import UserError
from cqrs_lab.examples.bank_account import (
    BankAccount,
    DepositMoney,
    OpenBankAccount,
    WithdrawMoney,
    WriteCheck,
)
from cqrs_lab.framework import CqrsFramework
from cqrs_lab.stores.memory import MemoryEventStore

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SAMPLE_FILES", "generate", "write_sample"]

SAMPLE_FILES = ("bank_account_events.parquet", "bank_account_events.jsonl.gz")
START = datetime(2024, 1, 1, tzinfo=UTC)
OPEN_RATE = 0.06
"""Chance that a command opens a new account while fewer than ``accounts`` exist.

A constant, so that a shorter run yields exactly a prefix of a longer one."""


def _amount(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


def generate(
    accounts: int = 3000,
    commands: int = 110_000,
    seed: int = 2024,
    progress: Callable[[int], None] | None = None,
) -> pa.Table:
    """Run ``commands`` random commands over ``accounts`` accounts; the log as an Arrow table.

    Rejected commands (overdrafts) produce no events, as in the real domain, so
    the log has somewhat fewer events than commands. A run with fewer
    ``commands`` gives exactly the first rows of a longer one.
    """
    rng = random.Random(seed)
    store = MemoryEventStore()
    framework = CqrsFramework(
        BankAccount, store, clock=FixedClock(START, timedelta(seconds=30)), ids=SequentialIds()
    )
    opened: list[str] = []
    for step in range(commands):
        if len(opened) < accounts and (not opened or rng.random() < OPEN_RATE):
            account_id = f"ACC-{len(opened) + 1:05d}"
            opened.append(account_id)
            command: Command = OpenBankAccount(account_id=account_id)
        else:
            account_id = opened[rng.randrange(len(opened))]
            roll = rng.random()
            if roll < 0.45:
                command = DepositMoney(amount=_amount(rng, 10, 2000))
            elif roll < 0.8:
                command = WithdrawMoney(amount=_amount(rng, 5, 800))
            else:
                command = WriteCheck(check_number=f"{rng.randint(1000, 9999)}", amount=_amount(rng, 5, 1500))
        with contextlib.suppress(UserError):  # rejected commands leave no event, as in real life
            framework.execute(account_id, command)
        if progress is not None and step % 1000 == 999:
            progress(1000)
    return store.export_arrow()


def write_sample(folder: str | Path, table: pa.Table | None = None) -> list[Path]:
    """Write the sample log (generated with the defaults unless given) to ``folder``."""
    from cqrs_lab.stores.arrow import write_events_file

    log = table if table is not None else generate()
    paths = [Path(folder) / name for name in SAMPLE_FILES]
    for path in paths:
        write_events_file(log, path)
    return paths
