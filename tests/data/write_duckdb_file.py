"""Write ``duckdb-<version>.duckdb.gz``: a small cqrs_lab event log made by the installed DuckDB.

tests/test_duckdb_versions.py opens these files with whatever DuckDB is installed
(the newest in the main test run, the declared minimum in .ci/run's lowest-versions
run), so the compatibility the README states is checked with real files. To add a
DuckDB release: install it in a virtual environment with cqrs-lab and run
``python tests/data/write_duckdb_file.py``.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

import duckdb

from cqrs_lab import CqrsFramework, FixedClock, SequentialIds
from cqrs_lab.examples.bank_account import BankAccount, DepositMoney, OpenBankAccount
from cqrs_lab.stores.duckdb import DuckDBEventStore

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.duckdb"
        with DuckDBEventStore(path) as store:
            bank = CqrsFramework(BankAccount, store, clock=FixedClock(), ids=SequentialIds())
            bank.execute("ACC-1", OpenBankAccount(account_id="ACC-1"))
            bank.execute("ACC-1", DepositMoney(amount=Decimal("12.50")))
        target = HERE / f"duckdb-{duckdb.__version__}.duckdb.gz"
        with path.open("rb") as raw, gzip.GzipFile(target, "wb", mtime=0) as packed:
            shutil.copyfileobj(raw, packed)
        print(f"wrote {target.name} ({target.stat().st_size} bytes)")
