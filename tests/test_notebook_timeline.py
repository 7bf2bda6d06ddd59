"""timeline: lanes of EventStorming stickies as SVG; process managers as policies linked to
the events that triggered them and the commands they sent."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from xml.etree import ElementTree

import pytest

from cqrs_lab import (
    ConfigurationError,
    CqrsFramework,
    FixedClock,
    MemoryEventStore,
    SequentialIds,
)
from cqrs_lab._render import COMMAND, EVENT, POLICY, VIEW
from cqrs_lab.examples.bank_account import (
    BankAccount,
    DepositMoney,
    OpenBankAccount,
)
from cqrs_lab.notebook import Timeline, timeline
from cqrs_lab.notebook.timeline import DEFAULT_WIDTH
from tests.domain_fixtures import checkout_log, small_bank


def test_one_lane_per_stream_with_commands_before_their_events_in_global_order() -> None:
    picture = timeline(small_bank())
    assert [lane.name for lane in picture.lanes] == ["BankAccount/A-1", "BankAccount/B-2"]
    first, second = picture.lanes
    assert [(s.kind, s.label, s.column) for s in first.stickies] == [
        ("command", "OpenBankAccount", 0),
        ("event", "BankAccountOpened", 1),
        ("command", "DepositMoney", 4),
        ("event", "CustomerDepositedMoney", 5),
        ("view", "BankAccountQuery", 6),
    ]
    assert [(s.kind, s.column) for s in second.stickies] == [("command", 2), ("event", 3), ("view", 6)]
    assert repr(picture) == "Timeline(2 stream(s), 3 command(s), 3 event(s))"


def test_events_without_command_metadata_get_no_command_sticky() -> None:
    fw = small_bank()
    stripped = [replace(e, metadata={}) for e in fw.event_store.read_all()]
    picture = timeline(stripped)
    assert picture.count("command") == 0 and picture.count("event") == 3 and picture.count("view") == 0


def test_svg_is_well_formed_deterministic_and_uses_the_legend_colours() -> None:
    html = timeline(small_bank())._repr_html_()
    assert html == timeline(small_bank())._repr_html_()
    svg = ElementTree.fromstring(timeline(small_bank()).svg())
    fills = [r.get("fill") for r in svg.iter("{http://www.w3.org/2000/svg}rect")]
    assert fills[0] == "#ffffff"  # an explicit background: readable in dark themes too
    assert fills.count(COMMAND.fill) == 1 + 3 and fills.count(EVENT.fill) == 1 + 3
    assert fills.count(VIEW.fill) == 1 + 2
    texts = [t.get("fill") for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert None not in texts  # every text has an explicit colour
    assert not re.search(r"\sid=|[0-9a-f]{8}-[0-9a-f]{4}-4", html)  # no generated ids


def test_long_event_names_are_split_between_words() -> None:
    fw = CqrsFramework(BankAccount, MemoryEventStore(), clock=FixedClock(), ids=SequentialIds())
    fw.execute("A-1", OpenBankAccount(account_id="A-1"))
    fw.execute("A-1", DepositMoney(amount=Decimal("10.00")))
    svg = timeline(fw).svg()
    assert ">Customer</text>" in svg and ">Deposited</text>" in svg and ">Money</text>" in svg


def test_filters_and_max_events() -> None:
    fw = small_bank()
    assert [lane.name for lane in timeline(fw, aggregate_id="B-2").lanes] == ["BankAccount/B-2"]
    assert timeline(fw.event_store, after_position=1, to_position=2).count("event") == 1
    cut = timeline(fw, max_events=2)
    assert cut.truncated and cut.count("event") == 2
    assert "more events follow" in cut.svg()
    assert "no events" in timeline([]).svg()
    assert _svg_width(timeline([]).svg()) >= 8 + 90 * 3  # the whole legend shows


def many_commands(count: int) -> CqrsFramework[BankAccount]:
    fw = CqrsFramework(BankAccount, MemoryEventStore(), clock=FixedClock(), ids=SequentialIds())
    for account in ("A-1", "B-2", "C-3"):
        fw.execute(account, OpenBankAccount(account_id=account))
    for n in range(count - 3):
        fw.execute("A-1", DepositMoney(amount=Decimal(n + 1)))
    return fw


def _svg_width(svg: str) -> int:
    return int(ElementTree.fromstring(svg).get("width") or 0)


def test_a_long_timeline_wraps_to_rows_within_its_width_and_draws_every_sticky() -> None:
    picture = timeline(many_commands(12))
    assert picture.columns == 24 and picture.width == DEFAULT_WIDTH
    svg = picture.svg()
    assert _svg_width(svg) <= DEFAULT_WIDTH
    rows = picture.rows()
    assert len(rows) > 1
    assert [c for columns, _ in rows for c in columns] == list(range(24))
    drawn = ElementTree.fromstring(svg).iter("{http://www.w3.org/2000/svg}g")
    assert sum(1 for _ in drawn) == 24  # one group per sticky, none cut off
    # a row only has the lanes with stickies in it: the three openings are in the first row
    assert [lane.aggregate_id for lane in rows[0][1]] == ["A-1", "B-2", "C-3"]
    assert [lane.aggregate_id for lane in rows[-1][1]] == ["A-1"]
    assert "continued: columns" in svg


def test_width_sets_how_many_columns_fit_and_a_short_timeline_is_only_as_wide_as_it_needs() -> None:
    wide = timeline(many_commands(12), width=2400)
    assert len(wide.rows()) < len(timeline(many_commands(12)).rows())
    assert _svg_width(wide.svg()) <= 2400
    short = timeline(small_bank())
    assert len(short.rows()) == 1 and _svg_width(short.svg()) < DEFAULT_WIDTH
    assert "max-width:100%" in short.svg()  # a narrower column shrinks it instead of scrolling


def test_a_width_too_narrow_for_one_column_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="too narrow"):
        timeline(small_bank(), width=200)


SVG = "{http://www.w3.org/2000/svg}"


def test_process_managers_stand_as_policies_in_lanes_of_their_instances() -> None:
    orders, _ = checkout_log()
    picture = timeline(orders.event_store)
    assert repr(picture) == "Timeline(4 stream(s), 9 command(s), 9 event(s), 5 policy(ies))"
    processes = {lane.name: lane for lane in picture.lanes if lane.process}
    assert list(processes) == ["Checkout/O-1", "Checkout/O-2"]
    assert [(s.kind, s.label, s.detail) for s in processes["Checkout/O-1"].stickies] == [
        ("policy", "on OrderPlaced", "from @1"),  # RequestPayment, and the timeout scheduled
        ("policy", "payment-timeout", "deadline @1"),  # the deadline set on OrderPlaced @1 fired
        ("policy", "on ConfirmOrder rejected", "from @8"),  # the late payment: a refund
    ]
    assert [s.label for s in processes["Checkout/O-2"].stickies] == ["on OrderPlaced", "on PaymentReceived"]
    tips = [s.tooltip for s in processes["Checkout/O-1"].stickies]
    assert tips[1] == "policy Checkout O-1: deadline 'payment-timeout' set on OrderPlaced of Order/O-1 #1 @1"


def _column(picture: Timeline, kind: str, label: str, lane: str) -> int:
    [found] = [s.column for ln in picture.lanes if ln.name == lane for s in ln.stickies
               if (s.kind, s.label) == (kind, label)]
    return found


def test_links_go_from_the_triggering_event_to_the_policy_and_on_to_the_commands_it_sent() -> None:
    orders, _ = checkout_log()
    picture = timeline(orders.event_store)
    placed = _column(picture, "event", "OrderPlaced", "Order/O-1")
    reacted = _column(picture, "policy", "on OrderPlaced", "Checkout/O-1")
    timeout = _column(picture, "policy", "payment-timeout", "Checkout/O-1")
    refund = _column(picture, "policy", "on ConfirmOrder rejected", "Checkout/O-1")
    links = {(link.source, link.target): link.dashed for link in picture.links}
    assert links[(placed, reacted)] is False
    assert links[(reacted, _column(picture, "command", "RequestPayment", "Payment/O-1"))] is False
    assert links[(placed, timeout)] is True  # time passed: dashed
    assert links[(timeout, _column(picture, "command", "CancelOrder", "Order/O-1"))] is False
    assert links[(_column(picture, "event", "PaymentReceived", "Payment/O-1"), refund)] is False
    assert links[(refund, _column(picture, "command", "RefundPayment", "Payment/O-1"))] is False
    assert len(links) == 10  # five policies, each linked from its cause and to its one command
    # a policy stands just before the first command it sent
    assert all(target == source + 1 for source, target in links if source in (reacted, timeout, refund))


def _policy_arrows(svg: ElementTree.Element) -> list[ElementTree.Element]:
    return [p for p in svg.iter(f"{SVG}polygon") if p.get("fill") == POLICY.stroke]


def test_policies_and_their_arrows_are_drawn_under_the_stickies_in_lilac() -> None:
    orders, _ = checkout_log()
    svg = ElementTree.fromstring(timeline(orders.event_store, width=5000).svg())  # one row: every arrow
    fills = [r.get("fill") for r in svg.iter(f"{SVG}rect")]
    assert fills[0] == "#ffffff" and fills.count(POLICY.fill) == 1 + 5  # the legend's, and five policies
    assert "policy" in [t.text for t in svg.iter(f"{SVG}text")]
    assert len(_policy_arrows(svg)) == 10
    dashed = [line for line in svg.iter(f"{SVG}line") if line.get("stroke") == POLICY.stroke
              and line.get("stroke-dasharray")]
    assert len(dashed) == 1  # the deadline's
    children = list(svg)
    stickies = [i for i, child in enumerate(children) if child.tag == f"{SVG}g"]
    arrows = [i for i, child in enumerate(children) if child in _policy_arrows(svg)]
    assert max(arrows) < min(stickies)  # an arrow passing a sticky goes under it
    assert None not in [t.get("fill") for t in svg.iter(f"{SVG}text")]  # readable in dark themes


def test_a_timeline_with_policies_still_fits_its_width_and_names_causes_across_rows() -> None:
    orders, _ = checkout_log()
    picture = timeline(orders.event_store)
    svg = picture.svg()
    assert _svg_width(svg) <= DEFAULT_WIDTH and len(picture.rows()) > 1
    drawn = len(_policy_arrows(ElementTree.fromstring(svg)))
    same_row = [link for link in picture.links
                if any(link.source in cols and link.target in cols for cols, _ in picture.rows())]
    assert 0 < drawn == len(same_row) < len(picture.links)  # only arrows within a row are drawn
    assert ">from @8</text>" in svg  # a policy names its cause's position, wherever it is drawn


def test_a_policy_whose_cause_is_not_shown_names_its_process_and_has_no_incoming_arrow() -> None:
    orders, _ = checkout_log()
    picture = timeline(orders)  # orders only: the payment events that caused some commands are left out
    confirm = _column(picture, "command", "ConfirmOrder", "Order/O-2")
    [policy] = [s for lane in picture.lanes for s in lane.stickies if s.column == confirm - 1]
    assert (policy.kind, policy.label, policy.detail) == ("policy", "Checkout", "")
    assert "not in this timeline" in policy.tooltip
    assert [link.source for link in picture.links if link.target == policy.column] == []


def test_a_timeline_without_process_managers_has_no_policy_in_its_legend() -> None:
    svg = ElementTree.fromstring(timeline(small_bank()).svg())
    assert "policy" not in [t.text for t in svg.iter(f"{SVG}text")]
    assert not any(lane.process for lane in timeline(small_bank()).lanes)
