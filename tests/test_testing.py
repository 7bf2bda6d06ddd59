"""TestFramework and QueryTester: given/when/then, messages and result data."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from cqrs_lab import QueryTester, TestFramework, UserError
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountOpened,
    BankAccountQuery,
    CustomerDepositedMoney,
    CustomerWroteCheck,
    DepositMoney,
    OpenBankAccount,
    WithdrawMoney,
    WriteCheck,
)
from cqrs_lab.testing import side_by_side

OPENED = BankAccountOpened(account_id="A-1")


def test_then_expect_events_passes_on_exact_events() -> None:
    result = (
        TestFramework(BankAccount)
        .given([OPENED])
        .when(DepositMoney(amount=Decimal("10.00")))
        .then_expect_events([CustomerDepositedMoney(amount=Decimal("10.00"), balance=Decimal("10.00"))])
    )
    assert result.passed
    assert result.given == [OPENED]
    assert result.when == DepositMoney(amount=Decimal("10.00"))


def test_failed_expectation_shows_expected_and_actual_side_by_side_marking_first_difference() -> None:
    spec = TestFramework(BankAccount).given_no_previous_events().when(OpenBankAccount(account_id="A-1"))
    with pytest.raises(AssertionError) as info:
        spec.then_expect_events([OPENED, OPENED])
    lines = str(info.value).splitlines()
    assert "expected" in lines[1] and "actual" in lines[1]
    marked = [line for line in lines if line.startswith(">> ")]
    assert len(marked) == 1
    assert "BankAccountOpened" in marked[0] and "<nothing>" in marked[0]


def test_a_diff_too_wide_for_two_columns_goes_item_by_item_wrapped_between_words() -> None:
    spec = TestFramework(BankAccount).given([OPENED]).when(DepositMoney(amount=Decimal("10.00")))
    wrong = CustomerDepositedMoney(amount=Decimal("10.00"), balance=Decimal("99.00"))
    lines = side_by_side([OPENED, wrong], spec.events, width=70).splitlines()
    assert max(map(len, lines)) <= 70
    marked = [line for line in lines if line.startswith(">> ")]
    assert marked == [">> #1 expected: BankAccountOpened(account_id='A-1')"]
    assert lines[1].strip().startswith("actual:   CustomerDepositedMoney(")
    assert lines[2].strip() == "balance=Decimal('10.00'))"  # wrapped at a space, indented
    words = set(re.findall(r"[\w.']+", f"{[OPENED, wrong]!r} {spec.events!r}"))
    shown = set(re.findall(r"[\w.']+", "\n".join(lines)))
    assert shown - {"1", "2", "expected", "actual", "nothing"} <= words  # no word cut in two


def test_then_expect_events_fails_on_order() -> None:
    spec = TestFramework(BankAccount).given([OPENED]).when(DepositMoney(amount=Decimal("1.00")))
    spec.events = [OPENED, OPENED.model_copy(update={"account_id": "B"})]
    with pytest.raises(AssertionError):
        spec.then_expect_events([OPENED.model_copy(update={"account_id": "B"}), OPENED])
    spec.then_expect_events_matching([OPENED.model_copy(update={"account_id": "B"})])


def test_then_expect_events_matching_reports_missing_events() -> None:
    spec = TestFramework(BankAccount).given([OPENED]).when(DepositMoney(amount=Decimal("1.00")))
    with pytest.raises(AssertionError, match="1 expected event"):
        spec.then_expect_events_matching([OPENED])


def test_then_expect_error_compares_message_and_code() -> None:
    spec = TestFramework(BankAccount).given([OPENED]).when(WithdrawMoney(amount=Decimal("5.00")))
    spec.then_expect_error("funds not available")
    spec.then_expect_error("funds not available", code="insufficient_funds")
    with pytest.raises(AssertionError, match="error message differs: expected 'no money', actual 'funds not"):
        spec.then_expect_error("no money")
    with pytest.raises(AssertionError, match="error code differs"):
        spec.then_expect_error("funds not available", code="other")


def test_then_expect_error_fails_when_events_were_produced_and_vice_versa() -> None:
    ok = TestFramework(BankAccount).given_no_previous_events().when(OpenBankAccount(account_id="A"))
    with pytest.raises(AssertionError, match="produced events"):
        ok.then_expect_error("bank account is already open")
    rejected = TestFramework(BankAccount).given([OPENED]).when(OpenBankAccount(account_id="A"))
    with pytest.raises(AssertionError, match="rejected"):
        rejected.then_expect_events([])


def test_inspect_result_returns_events_or_error() -> None:
    events = TestFramework(BankAccount).given_no_previous_events().when(OpenBankAccount(account_id="A"))
    assert events.inspect_result() == [BankAccountOpened(account_id="A")]
    error = TestFramework(BankAccount).given([OPENED]).when(OpenBankAccount(account_id="A")).inspect_result()
    assert isinstance(error, UserError) and error.message == "bank account is already open"


def test_check_methods_return_failures_as_data_without_raising() -> None:
    spec = (
        TestFramework(BankAccount, title="deposit").given([OPENED]).when(DepositMoney(amount=Decimal("1.00")))
    )
    result = spec.check_events([])
    assert not result.passed
    assert result.title == "deposit"
    assert result.expected == []
    assert result.actual == [CustomerDepositedMoney(amount=Decimal("1.00"), balance=Decimal("1.00"))]
    assert "events differ" in result.message
    assert "failed" in result._repr_html_()


def test_query_tester_given_when_then() -> None:
    given = BankAccountQuery(account_id="A-1", balance=Decimal("50.00"))
    (
        QueryTester(BankAccountQuery)
        .given(given)
        .when(CustomerWroteCheck(check_number="7", amount=Decimal("20.00"), balance=Decimal("30.00")))
        .then_expect(BankAccountQuery(account_id="A-1", balance=Decimal("30.00"), written_checks=["7"]))
    )
    assert given.written_checks == []  # the given state is not mutated


def test_query_tester_failure_names_differing_fields() -> None:
    spec = QueryTester(BankAccountQuery).given_no_previous_state().when(OPENED)
    with pytest.raises(AssertionError) as info:
        spec.then_expect(BankAccountQuery(account_id="WRONG"))
    marked = [line for line in str(info.value).splitlines() if line.startswith(">> ")]
    assert marked and "account_id='WRONG'" in marked[0] and "account_id='A-1'" in marked[0]


def test_write_check_spec() -> None:
    (
        TestFramework(BankAccount)
        .given([OPENED, CustomerDepositedMoney(amount=Decimal("100.00"), balance=Decimal("100.00"))])
        .when(WriteCheck(check_number="1170", amount=Decimal("40.00")))
        .then_expect_events(
            [CustomerWroteCheck(check_number="1170", amount=Decimal("40.00"), balance=Decimal("60.00"))]
        )
    )
