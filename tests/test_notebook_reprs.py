"""Rich and plain reprs of core and notebook objects: readable, deterministic, layered."""

from __future__ import annotations

import ast
import re
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from cqrs_lab import (
    Send,
    TestFramework,
)
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountOpened,
    DepositMoney,
    OpenBankAccount,
)
from cqrs_lab.examples.checkout import Checkout, Order, Payment, PlaceOrder
from cqrs_lab.notebook import CommandStepper, ProcessStepper, flow_diagram, run_specs, step_through, timeline
from tests.domain_fixtures import checkout_log, small_bank

PACKAGE = Path(__file__).resolve().parent.parent / "cqrs_lab"
ADDRESS = re.compile(r"0x[0-9a-f]{6,}")


def test_aggregate_and_query_render_as_field_tables() -> None:
    fw = small_bank()
    html = fw.load("A-1")._repr_html_()
    assert "<b>BankAccount</b>" in html
    assert "<th style='text-align:left'>balance</th><td style='text-align:left'>10.00</td>" in html
    view = fw.dispatchers[0].load("A-1")  # type: ignore[attr-defined]
    assert "<b>BankAccountQuery</b>" in view._repr_html_() and "A-1" in view._repr_html_()


def test_stores_render_their_counts() -> None:
    fw = small_bank()
    html = fw.event_store._repr_html_()  # type: ignore[attr-defined]
    for row in (("events", 3), ("streams", 2), ("snapshots", 0), ("BankAccount streams", 2)):
        assert f"<th style='text-align:left'>{row[0]}</th><td style='text-align:left'>{row[1]}</td>" in html
    views = fw.dispatchers[0].query_store  # type: ignore[attr-defined]
    assert "BankAccountQuery views</th><td style='text-align:left'>2<" in views._repr_html_()


def test_plain_reprs_carry_no_memory_addresses_or_wall_clock_times() -> None:
    fw = small_bank()
    steps = step_through(BankAccount, [OpenBankAccount(account_id="X")])
    script = [Send(Order, "O-1", PlaceOrder(order_id="O-1", amount=Decimal("1.00"))), timedelta(hours=1)]
    process_stepper = ProcessStepper(Checkout, script, aggregates=[Payment])
    spec = (
        TestFramework(BankAccount)
        .given([BankAccountOpened(account_id="A")])
        .when(DepositMoney(amount=Decimal("1.00")))
    )
    objects = [
        fw,
        fw.event_store,
        fw.load("A-1"),
        *fw.events("A-1"),
        *steps,
        CommandStepper(BankAccount, [OpenBankAccount(account_id="X")]),
        timeline(fw),
        flow_diagram(fw),
        run_specs([spec.check_events([])]),
        process_stepper,
        *process_stepper.steps,
        *(sent for step in process_stepper.steps for sent in step.sent),
        timeline(checkout_log()[0].event_store),
        flow_diagram(checkout_log()[1]),
    ]
    texts = [repr(o) for o in objects]
    assert not [t for t in texts if ADDRESS.search(t)]
    assert texts == [repr(o) for o in objects]
    assert texts[3] == ("EventEnvelope(BankAccount/A-1#1 @1 BankAccountOpened(account_id='A-1'))")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


ENTRY_POINTS = {"notebook", "examples", "cli.py", "bench"}  # the layers that may use the kit


def test_core_never_imports_the_notebook_kit() -> None:
    core = [p for p in PACKAGE.rglob("*.py") if not ENTRY_POINTS & set(p.relative_to(PACKAGE).parts)]
    assert PACKAGE / "framework.py" in core and PACKAGE / "stores" / "memory.py" in core
    offenders = [str(p) for p in core if any(n.startswith("cqrs_lab.notebook") for n in _imports(p))]
    assert offenders == []


def test_render_helpers_use_only_the_standard_library_and_core_types() -> None:
    allowed = {"cqrs_lab.domain", "cqrs_lab.envelope", "cqrs_lab.errors", "cqrs_lab.testing", "pydantic"}
    imported = _imports(PACKAGE / "_render.py")
    foreign = {
        name
        for name in imported
        if name.split(".")[0] not in sys.stdlib_module_names and name != "__future__" and name not in allowed
    }
    assert foreign == set()
