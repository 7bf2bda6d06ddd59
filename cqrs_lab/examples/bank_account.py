"""The seed's bank-account domain: open, deposit, withdraw, write checks."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from cqrs_lab.domain import Aggregate, Command, Event, Query
from cqrs_lab.envelope import EventEnvelope
from cqrs_lab.errors import UserError
from cqrs_lab.projections import Projection
from cqrs_lab.stores.base import EventStore, QueryStore

__all__ = [
    "BankAccount",
    "BankAccountOpened",
    "BankAccountQuery",
    "CustomerDepositedMoney",
    "CustomerWithdrewCash",
    "CustomerWroteCheck",
    "DepositMoney",
    "OpenBankAccount",
    "WithdrawMoney",
    "WriteCheck",
    "projections",
]

Amount = Field(gt=Decimal(0), decimal_places=2)


# -- commands -----------------------------------------------------------------
class OpenBankAccount(Command):
    account_id: str


class DepositMoney(Command):
    amount: Decimal = Amount


class WithdrawMoney(Command):
    amount: Decimal = Amount


class WriteCheck(Command):
    check_number: str
    amount: Decimal = Amount


# -- events -------------------------------------------------------------------
class BankAccountOpened(Event):
    account_id: str


class CustomerDepositedMoney(Event):
    amount: Decimal
    balance: Decimal


class CustomerWithdrewCash(Event):
    amount: Decimal
    balance: Decimal


class CustomerWroteCheck(Event):
    check_number: str
    amount: Decimal
    balance: Decimal


# -- aggregate ----------------------------------------------------------------
class BankAccount(Aggregate):
    """A bank account: its balance never goes below zero."""

    aggregate_type = "BankAccount"

    opened: bool = False
    account_id: str = ""
    balance: Decimal = Decimal("0")

    def handle(self, command: Command) -> list[Event]:
        match command:
            case OpenBankAccount(account_id=account_id):
                if self.opened:
                    raise UserError("bank account is already open", code="already_open")
                return [BankAccountOpened(account_id=account_id)]
            case DepositMoney(amount=amount):
                self._require_open()
                return [CustomerDepositedMoney(amount=amount, balance=self.balance + amount)]
            case WithdrawMoney(amount=amount):
                self._require_open()
                self._require_funds(amount)
                return [CustomerWithdrewCash(amount=amount, balance=self.balance - amount)]
            case WriteCheck(check_number=number, amount=amount):
                self._require_open()
                self._require_funds(amount)
                return [CustomerWroteCheck(check_number=number, amount=amount, balance=self.balance - amount)]
        raise UserError(f"BankAccount does not handle {type(command).__name__}", code="unknown_command")

    def _require_open(self) -> None:
        if not self.opened:
            raise UserError("bank account is not open", code="not_open")

    def _require_funds(self, amount: Decimal) -> None:
        if amount > self.balance:
            raise UserError(
                "funds not available",
                code="insufficient_funds",
                params={"balance": self.balance, "requested": amount},
            )

    def apply(self, event: Event) -> None:
        match event:
            case BankAccountOpened(account_id=account_id):
                self.opened = True
                self.account_id = account_id
            case CustomerDepositedMoney(balance=balance) | CustomerWithdrewCash(balance=balance):
                self.balance = balance
            case CustomerWroteCheck(balance=balance):
                self.balance = balance


# -- query --------------------------------------------------------------------
class BankAccountQuery(Query):
    """The account's balance and the checks written on it."""

    query_type = "BankAccountQuery"

    account_id: str = ""
    balance: Decimal = Decimal("0")
    written_checks: list[str] = Field(default_factory=list)

    def update(self, envelope: EventEnvelope) -> None:
        match envelope.payload:
            case BankAccountOpened(account_id=account_id):
                self.account_id = account_id
            case CustomerDepositedMoney(balance=balance) | CustomerWithdrewCash(balance=balance):
                self.balance = balance
            case CustomerWroteCheck(check_number=number, balance=balance):
                self.balance = balance
                self.written_checks.append(number)


def projections(event_store: EventStore, query_store: QueryStore) -> list[Projection]:
    """The bank's projections, for ``cqrs-lab project`` (``--projection MODULE:projections``)."""
    return [Projection("accounts", event_store, query_store, [BankAccountQuery])]
