"""flow_diagram: commands -> aggregate -> events -> queries as Mermaid."""

from __future__ import annotations

from cqrs_lab import (
    CqrsFramework,
    MemoryEventStore,
    MemoryQueryStore,
    QueryProcessor,
)
from cqrs_lab._render import EVENT
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountQuery,
    CustomerWroteCheck,
    WithdrawMoney,
)
from cqrs_lab.notebook import flow_diagram
from tests.domain_fixtures import small_bank


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
    markdown = diagram._repr_markdown_()
    assert markdown.startswith("```mermaid\nflowchart LR\n") and markdown.endswith("\n```")
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
    assert markdown == again._repr_markdown_()


def test_flow_diagram_of_an_empty_store_still_shows_the_aggregate_and_queries() -> None:
    processor = QueryProcessor(BankAccountQuery, MemoryQueryStore())
    empty = CqrsFramework(BankAccount, MemoryEventStore(), [processor])
    diagram = flow_diagram(empty)
    assert (diagram.commands, diagram.events, diagram.queries) == ((), (), ("BankAccountQuery",))
    assert "A -.-> Q0" in diagram.mermaid
    assert repr(diagram) == "FlowDiagram(BankAccount: 0 command(s), 0 event(s), 1 query(ies))"
