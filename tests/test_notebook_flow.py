"""flow_diagram: commands -> aggregate -> events -> queries, and the policies (process managers)
on either side, as SVG drawn by cqrs_lab and as Mermaid."""

from __future__ import annotations

from xml.etree import ElementTree

from cqrs_lab import (
    CqrsFramework,
    MemoryEventStore,
    MemoryQueryStore,
    QueryProcessor,
)
from cqrs_lab._render import COMMAND, EVENT, POLICY, VIEW
from cqrs_lab.examples.bank_account import (
    BankAccount,
    BankAccountQuery,
    CustomerWroteCheck,
    WithdrawMoney,
)
from cqrs_lab.notebook import flow_diagram
from tests.domain_fixtures import checkout_log, small_bank

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


def test_policies_that_send_commands_to_the_aggregate_and_those_that_answer_its_events() -> None:
    orders, payments = checkout_log()
    order_flow = flow_diagram(orders)
    assert order_flow.policies == ("Checkout on PaymentReceived", "Checkout at payment-timeout")
    assert order_flow.sends == (("Checkout on PaymentReceived", "ConfirmOrder"),  # O-2 paid in time
                                ("Checkout at payment-timeout", "CancelOrder"))
    assert order_flow.reactions == ("Checkout on OrderPlaced", "Checkout at payment-timeout")
    assert order_flow.triggers == (("OrderPlaced", "Checkout on OrderPlaced"),
                                   ("OrderPlaced", "Checkout at payment-timeout"))
    payment_flow = flow_diagram(payments)
    assert payment_flow.policies == ("Checkout on OrderPlaced", "Checkout on ConfirmOrder rejected")
    assert ("Checkout on ConfirmOrder rejected", "RefundPayment") in payment_flow.sends
    assert payment_flow.triggers == (("PaymentReceived", "Checkout on PaymentReceived"),
                                     ("PaymentReceived", "Checkout on ConfirmOrder rejected"))
    assert repr(payment_flow) == "FlowDiagram(Payment: 3 command(s), 3 event(s), 0 query(ies), 3 policy(ies))"


def test_policies_are_lilac_boxes_with_arrows_to_the_commands_and_from_the_events() -> None:
    orders, _ = checkout_log()
    diagram = flow_diagram(orders)
    svg = ElementTree.fromstring(diagram.svg())
    fills = [r.get("fill") for r in svg.iter(f"{SVG}rect")]
    assert fills.count(POLICY.fill) == 2 + 2  # two policies send here, two answer its events
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert texts.count("Policies") == 2 and texts.count("Checkout at payment-timeout") == 2
    boxes = {t.text: float(t.get("x") or 0) for t in svg.iter(f"{SVG}text")}
    # left to right: senders, commands, the aggregate, events, then the queries' column
    assert boxes["Checkout on PaymentReceived"] < boxes["ConfirmOrder"] < boxes["Order"]
    assert boxes["Order"] < boxes["OrderPlaced"] < boxes["Checkout on OrderPlaced"]
    heads = [p for p in svg.iter(f"{SVG}polygon") if p.get("fill") == POLICY.stroke]
    assert len(heads) == len(diagram.sends) + len(diagram.triggers) == 4
    tips = [t.text for t in svg.iter(f"{SVG}title")]
    assert "policy Checkout on PaymentReceived: sends ConfirmOrder to Order" in tips
    assert "policy Checkout on OrderPlaced: answers OrderPlaced of Order" in tips
    assert "OrderPlaced, produced by PlaceOrder; answered by Checkout on OrderPlaced, " \
           "Checkout at payment-timeout" in tips
    markdown = diagram.mermaid
    for line in ('subgraph senders ["Policies"]', 'P0["Checkout on PaymentReceived"]', "P0 --> C1",
                 "P1 --> C2", "E0 --> R0", "E0 --> R1", f"classDef policy fill:{POLICY.fill}"):
        assert line in markdown


def test_a_flow_without_process_managers_draws_no_policy_column() -> None:
    diagram = flow_diagram(small_bank())
    assert (diagram.policies, diagram.sends, diagram.reactions, diagram.triggers) == ((), (), (), ())
    assert POLICY.fill not in diagram.svg() and "Policies" not in diagram.mermaid
