"""The ``cqrs-lab`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from decimal import Decimal

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from cqrs_lab import (
        CqrsFramework,
        FixedClock,
        MemoryEventStore,
        MemoryQueryStore,
        QueryProcessor,
        UserError,
    )
    from cqrs_lab.envelope import SequentialIds
    from cqrs_lab.examples.bank_account import (
        BankAccount,
        BankAccountQuery,
        DepositMoney,
        OpenBankAccount,
        WithdrawMoney,
        WriteCheck,
    )

    events, queries = MemoryEventStore(), MemoryQueryStore()
    processor = QueryProcessor(BankAccountQuery, queries)
    framework = CqrsFramework(BankAccount, events, [processor], clock=FixedClock(), ids=SequentialIds())
    story = [
        OpenBankAccount(account_id="ACC-001"),
        DepositMoney(amount=Decimal("1000.00")),
        WithdrawMoney(amount=Decimal("250.00")),
        WriteCheck(check_number="1170", amount=Decimal("120.50")),
        WithdrawMoney(amount=Decimal("5000.00")),
    ]
    for command in story:
        try:
            framework.execute("ACC-001", command)
            print(f"ok        {command!r}")
        except UserError as exc:
            print(f"rejected  {command!r}: {exc.message}")
    print()
    for envelope in events.read_all():
        print(f"{envelope.position:>3} {envelope.aggregate_id}#{envelope.sequence} {envelope.payload!r}")
    print()
    print(processor.load("ACC-001"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cqrs-lab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the bank-account story and print the events and the query")
    demo.add_argument("--memory", action="store_true", help="use the in-memory store")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
