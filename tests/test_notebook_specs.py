"""run_specs / SpecReport, and the spec card a SpecResult renders as."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from cqrs_lab import QueryTester, SpecResult, TestFramework
from cqrs_lab._render import FAILED, NEUTRAL, PASSED
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountOpened,
    BankAccountQuery,
    CustomerDepositedMoney,
    DepositMoney,
    OpenBankAccount,
    WithdrawMoney,
)
from cqrs_lab.notebook import SpecReport, run_specs

OPENED = BankAccountOpened(account_id="A-1")
DEPOSITED = CustomerDepositedMoney(amount=Decimal("10.00"), balance=Decimal("10.00"))


def deposit_on_an_open_account() -> SpecResult:
    return (
        TestFramework(BankAccount, "deposit")
        .given([OPENED])
        .when(DepositMoney(amount=Decimal("10.00")))
        .then_expect_events([DEPOSITED])
    )


def wrong_balance() -> SpecResult:
    return (
        TestFramework(BankAccount, "wrong balance")
        .given([OPENED])
        .when(DepositMoney(amount=Decimal("10.00")))
        .then_expect_events([CustomerDepositedMoney(amount=Decimal("10.00"), balance=Decimal("99.00"))])
    )


def plain_assert_fails() -> None:
    assert 1 + 1 == 3, "arithmetic is broken"


def raises_a_bug() -> None:
    raise KeyError("oops")


def report() -> SpecReport:
    return run_specs(
        [
            deposit_on_an_open_account,
            wrong_balance,
            lambda: TestFramework(BankAccount, "overdraft")
            .given([OPENED])
            .when(WithdrawMoney(amount=Decimal("5.00")))
            .then_expect_error("funds not available"),
            plain_assert_fails,
            raises_a_bug,
            QueryTester(BankAccountQuery, "view").given_no_previous_state().when(OPENED, DEPOSITED)
            .check(BankAccountQuery(account_id="A-1", balance=Decimal("10.00"))),
        ],
        title="Bank account",
    )


def test_every_spec_runs_and_failures_are_collected_not_raised() -> None:
    result = report()
    assert [(o.title, o.status) for o in result.outcomes] == [
        ("deposit", "passed"),
        ("wrong balance", "failed"),
        ("overdraft", "passed"),
        ("plain assert fails", "failed"),
        ("raises a bug", "error"),
        ("view", "passed"),
    ]
    assert (result.passed, result.failed, result.ok) == (3, 3, False)


def test_failed_then_keeps_its_given_when_then_data() -> None:
    failed = report().outcomes[1]
    assert failed.result is not None
    assert failed.result.given == [OPENED]
    assert failed.result.when == DepositMoney(amount=Decimal("10.00"))
    assert failed.result.actual == [DEPOSITED]
    assert failed.message.startswith("events differ")


def test_text_report_is_deterministic_and_lists_each_spec() -> None:
    assert str(report()) == "\n".join([
        "Bank account: 6 specs, 3 passed, 3 failed",
        "  PASSED deposit",
        "  FAILED wrong balance: events differ:",
        "  PASSED overdraft",
        "  FAILED plain assert fails: arithmetic is broken",
        "  ERROR  raises a bug: KeyError: 'oops'",
        "  PASSED view",
    ])
    assert repr(report()) == "SpecReport('Bank account', passed=3, failed=3)"


def test_html_report_has_a_summary_row_per_spec_and_cards_for_failures() -> None:
    html = report()._repr_html_()
    assert html == report()._repr_html_()
    summary = html.split("</table>")[0]
    assert summary.count("<tr>") == 1 + 6  # header, one row per spec
    assert "3 passed" in html and "3 failed" in html
    assert html.count("class='cqrs-lab-spec'") == 1  # a card for the failed then_expect_events
    assert "arithmetic is broken" in html and "KeyError" in html


def test_raise_for_failures_fails_a_ci_run_only_when_something_failed() -> None:
    assert run_specs([deposit_on_an_open_account]).raise_for_failures().ok
    with pytest.raises(AssertionError, match="FAILED wrong balance"):
        report().raise_for_failures()


def test_card_shows_given_when_then_and_marks_the_differing_row() -> None:
    spec = TestFramework(BankAccount, "card").given([OPENED]).when(DepositMoney(amount=Decimal("10.00")))
    wrong = CustomerDepositedMoney(amount=Decimal("10.00"), balance=Decimal("99.00"))
    html = spec.check_events([wrong])._repr_html_()
    for part in ("<b>given</b>", "<b>when</b>", "<b>then</b>", "failed", "expected", "actual"):
        assert part in html
    diff = html.split("class='cqrs-lab-diff'")[1]
    assert diff.count("&#x2260;") == 1
    assert "99.00" in diff and "balance=Decimal(&#x27;10.00&#x27;)" in diff


def test_card_of_a_rejected_command_shows_the_rejection() -> None:
    spec = TestFramework(BankAccount).given([OPENED]).when(OpenBankAccount(account_id="A-1"))
    html = spec.check_events([OPENED])._repr_html_()
    assert "rejected: UserError(&#x27;bank account is already open&#x27;" in html
    passed = spec.check_error("bank account is already open")._repr_html_()
    assert "passed" in passed and "cqrs-lab-diff" not in passed


def _badge_colour(html: str, text: str) -> str:
    match = re.search(rf"<span style='background:(#[0-9a-f]+);[^>]*>{text}</span>", html)
    assert match, text
    return match.group(1)


def test_summary_badges_are_red_only_for_failures_and_green_only_for_passes() -> None:
    mixed = report()._repr_html_()
    assert _badge_colour(mixed, "3 passed") == PASSED.fill and _badge_colour(mixed, "3 failed") == FAILED.fill
    all_pass = run_specs([deposit_on_an_open_account])._repr_html_()
    assert _badge_colour(all_pass, "1 passed") == PASSED.fill
    assert _badge_colour(all_pass, "0 failed") == NEUTRAL.fill
    all_fail = run_specs([wrong_balance])._repr_html_()
    assert _badge_colour(all_fail, "0 passed") == NEUTRAL.fill
    assert _badge_colour(all_fail, "1 failed") == FAILED.fill


def test_a_wrong_error_message_says_what_differs_in_the_summary() -> None:
    outcome = run_specs([
        lambda: TestFramework(BankAccount, "wrong message").given([OPENED])
        .when(WithdrawMoney(amount=Decimal("5.00"))).then_expect_error("no money")
    ]).outcomes[0]
    first_line = outcome.message.splitlines()[0]
    assert first_line == "error message differs: expected 'no money', actual 'funds not available'"
    assert first_line in str(run_specs([lambda: outcome.result]))
