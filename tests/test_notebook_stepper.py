"""step_through (pure) and the CommandStepper widget, driven headlessly."""

from __future__ import annotations

from decimal import Decimal

from cqrs_lab import CqrsFramework, FixedClock, MemoryEventStore, SequentialIds
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountOpened,
    CustomerDepositedMoney,
    CustomerWroteCheck,
    DepositMoney,
    OpenBankAccount,
    WithdrawMoney,
    WriteCheck,
)
from cqrs_lab.notebook import CommandStepper, step_through

COMMANDS = [
    OpenBankAccount(account_id="A-1"),
    DepositMoney(amount=Decimal("10.00")),
    WithdrawMoney(amount=Decimal("50.00")),
    WriteCheck(check_number="1001", amount=Decimal("4.00")),
]


def shown_html(stepper: CommandStepper) -> str:
    (output,) = stepper.out.outputs
    assert output["output_type"] == "display_data"
    return str(output["data"]["text/html"])


def test_each_step_records_command_events_and_states() -> None:
    steps = step_through(BankAccount, COMMANDS)
    assert [s.number for s in steps] == [1, 2, 3, 4]
    assert steps[1].command == DepositMoney(amount=Decimal("10.00"))
    assert steps[1].events == [CustomerDepositedMoney(amount=Decimal("10.00"), balance=Decimal("10.00"))]
    assert steps[1].state_before.balance == Decimal("0")
    assert steps[1].state_after.balance == Decimal("10.00")
    assert steps[1].changed_fields() == ["balance"]
    assert steps[3].events == [
        CustomerWroteCheck(check_number="1001", amount=Decimal("4.00"), balance=Decimal("6.00"))
    ]


def test_rejected_command_keeps_its_error_and_changes_nothing() -> None:
    rejected = step_through(BankAccount, COMMANDS)[2]
    assert not rejected.accepted
    assert rejected.error is not None and rejected.error.message == "funds not available"
    assert rejected.events == []
    assert rejected.state_before == rejected.state_after
    assert repr(rejected) == "Step(3, WithdrawMoney -> rejected: 'funds not available')"


def test_events_so_far_include_the_given_events() -> None:
    given = [BankAccountOpened(account_id="A-1")]
    steps = step_through(BankAccount, [DepositMoney(amount=Decimal("1.00"))] * 2, given=given)
    assert [len(s.events_so_far) for s in steps] == [2, 3]
    assert steps[0].events_so_far[0] == given[0]
    assert steps[1].state_after.balance == Decimal("2.00")


def test_steps_hold_copies_of_the_state() -> None:
    steps = step_through(BankAccount, COMMANDS)
    steps[0].state_after.balance = Decimal("999")
    assert steps[1].state_before.balance == Decimal("0")


def test_stepper_starts_at_step_zero_showing_the_given_state() -> None:
    stepper = CommandStepper(BankAccount, COMMANDS)
    assert repr(stepper) == "CommandStepper(BankAccount, step 0/4)"
    assert stepper.back_button.disabled and not stepper.next_button.disabled
    assert "step 0</b> of 4" in shown_html(stepper)
    assert "no previous events" in shown_html(stepper)


def test_next_and_back_buttons_move_one_step_and_replace_the_output() -> None:
    stepper = CommandStepper(BankAccount, COMMANDS)
    stepper.next_button.click()
    stepper.next_button.click()
    assert stepper.slider.value == 2
    assert repr(stepper) == "CommandStepper(BankAccount, step 2/4)"
    html = shown_html(stepper)
    assert "step 2 of 4" in html and "DepositMoney" in html and "CustomerDepositedMoney" in html
    stepper.back_button.click()
    assert "OpenBankAccount" in shown_html(stepper) and "DepositMoney" not in shown_html(stepper)
    assert stepper.out.outputs[0]["data"]["text/plain"] == "Step(1, OpenBankAccount -> 1 event(s))"


def test_slider_jumps_and_rejections_are_shown() -> None:
    stepper = CommandStepper(BankAccount, COMMANDS)
    stepper.slider.value = 3
    html = shown_html(stepper)
    assert "rejected" in html and "funds not available" in html
    stepper.slider.value = 4
    assert stepper.next_button.disabled
    stepper.next_button.click()
    assert stepper.step == 4


def test_play_is_linked_to_the_slider_kernel_side() -> None:
    stepper = CommandStepper(BankAccount, COMMANDS)
    stepper.play.value = 2
    assert stepper.slider.value == 2
    assert "step 2 of 4" in shown_html(stepper)
    stepper.slider.value = 1
    assert stepper.play.value == 1


def test_output_is_the_same_for_the_same_step() -> None:
    first, second = CommandStepper(BankAccount, COMMANDS), CommandStepper(BankAccount, COMMANDS)
    first.go(3)
    second.go(1)
    second.go(3)
    assert first.out.outputs == second.out.outputs


def test_framework_and_aggregate_id_give_the_stored_events() -> None:
    fw = CqrsFramework(BankAccount, MemoryEventStore(), clock=FixedClock(), ids=SequentialIds())
    fw.execute("A-1", OpenBankAccount(account_id="A-1"))
    fw.execute("A-1", DepositMoney(amount=Decimal("20.00")))
    stepper = CommandStepper(fw, [WithdrawMoney(amount=Decimal("5.00"))], aggregate_id="A-1")
    assert stepper.initial.balance == Decimal("20.00")
    stepper.go(1)
    assert stepper.current is not None and stepper.current.state_after.balance == Decimal("15.00")
    assert len(fw.events("A-1")) == 2  # nothing was committed


def test_every_button_has_a_tooltip_and_stop_goes_back_to_step_0() -> None:
    stepper = CommandStepper(BankAccount, COMMANDS)
    buttons = [stepper.back_button, stepper.next_button, stepper.play_button, stepper.stop_button,
               stepper.repeat_button]
    assert all(button.tooltip for button in buttons)
    assert stepper.play.layout.display == "none"  # the animation runs, its untitled buttons are hidden
    stepper.play_button.value = True
    stepper.play.playing = True
    stepper.go(3)
    stepper.stop_button.click()
    assert (stepper.step, stepper.play.playing, stepper.play_button.value) == (0, False, False)


def test_displayed_stepper_carries_every_step_as_static_html() -> None:
    stepper = CommandStepper(BankAccount, COMMANDS)
    stepper.go(2)  # what the live widget shows does not change the static copy
    bundle = stepper._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "application/vnd.jupyter.widget-view+json", "text/html"}
    static = bundle["text/html"]
    key = stepper._static_id
    assert static.count(f"<input type='radio' name='{key}'") == len(COMMANDS) + 1
    assert f"id='{key}-0' aria-label='step 0' checked>" in static  # it opens at step 0
    for k in range(len(COMMANDS) + 1):
        assert stepper.html(k) in static
    assert f"<label for='{key}-1' title='next command'>Next</label>" in static
    assert "<script" not in static  # navigable with CSS only
    assert CommandStepper(BankAccount, COMMANDS)._static_id != key  # two steppers on a page stay apart
