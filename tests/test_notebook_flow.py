"""flow_diagram: commands -> aggregate -> events -> queries, as SVG drawn by cqrs_lab and as Mermaid."""

from __future__ import annotations

from xml.etree import ElementTree

from cqrs_lab import (
    CqrsFramework,
    MemoryEventStore,
    MemoryQueryStore,
    QueryProcessor,
)
from cqrs_lab._render import COMMAND, EVENT, VIEW
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountQuery,
    CustomerWroteCheck,
    WithdrawMoney,
)
from cqrs_lab.notebook import flow_diagram
from tests.domain_fixtures import small_bank

SVG = "{http://www.w3.org/2000/svg}"


def test_flow_diagram_lists_what_the_store_has_seen_plus_what_is_declared() -> None:
    fw = small_bank()
    diagram = flow_diagram(fw, commands=[WithdrawMoney], events=[CustomerWroteCheck])
    assert diagram.commands == ("WithdrawMoney", "OpenBankAccount", "DepositMoney")
    assert diagram.events == ("CustomerWroteCheck", "BankAccountOpened", "CustomerDepositedMoney")
    assert diagram.queries == ("BankAccountQuery",)
    assert diagram.produces == (
        ("OpenBankAccount", "BankAccountOpened"),
        ("DepositMoney", "CustomerDepositedMoney"),
    )
    markdown = diagram.mermaid
    assert markdown.startswith("flowchart LR\n")
    for line in (
        'C0["WithdrawMoney"]',
        'A["BankAccount"]',
        "C1 --> A",
        "A --> E2",
        "events --> Q0",
        f"classDef event fill:{EVENT.fill}",
    ):
        assert line in markdown
    again = flow_diagram(fw, commands=[WithdrawMoney], events=[CustomerWroteCheck])
    assert markdown == again.mermaid
    assert diagram._repr_html_() == again._repr_html_()


def test_flow_diagram_is_an_svg_with_a_box_per_name_and_an_arrow_per_edge() -> None:
    diagram = flow_diagram(small_bank(), commands=[WithdrawMoney])
    html = diagram._repr_html_()
    assert "mermaid" not in html  # drawn by cqrs_lab: no script, no CDN, nothing to render later
    svg = ElementTree.fromstring(diagram.svg())
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    for name in ("Commands", "Events", "Queries", "WithdrawMoney", "OpenBankAccount", "BankAccount",
                 "BankAccountOpened", "CustomerDepositedMoney", "BankAccountQuery"):
        assert name in texts
    fills = [r.get("fill") for r in svg.iter(f"{SVG}rect")]
    assert fills.count(COMMAND.fill) == 3 and fills.count(EVENT.fill) == 2 and fills.count(VIEW.fill) == 1
    # 3 commands -> aggregate, aggregate -> 2 events, events -> 1 query
    assert len(list(svg.iter(f"{SVG}polygon"))) == 3 + 2 + 1
    tips = [t.text for t in svg.iter(f"{SVG}title")]
    assert "CustomerDepositedMoney, produced by DepositMoney" in tips
    assert int(svg.get("width") or 0) < 1000


def test_flow_diagram_of_an_empty_store_still_shows_the_aggregate_and_queries() -> None:
    processor = QueryProcessor(BankAccountQuery, MemoryQueryStore())
    empty = CqrsFramework(BankAccount, MemoryEventStore(), [processor])
    diagram = flow_diagram(empty)
    assert (diagram.commands, diagram.events, diagram.queries) == ((), (), ("BankAccountQuery",))
    assert "A -.-> Q0" in diagram.mermaid
    assert repr(diagram) == "FlowDiagram(BankAccount: 0 command(s), 0 event(s), 1 query(ies))"
