"""timeline: lanes of EventStorming stickies as SVG."""

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
from cqrs_lab._render import COMMAND, EVENT, VIEW
from cqrs_lab.examples.bank_account import (
    BankAccount,
    DepositMoney,
    OpenBankAccount,
)
from cqrs_lab.notebook import timeline
from cqrs_lab.notebook.timeline import DEFAULT_WIDTH
from tests.domain_fixtures import small_bank


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
