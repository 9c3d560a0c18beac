"""Settlement periods by hand (ISO weeks across a year's end, months), the statement's CSV rows, a
negative amount kept a number in a spreadsheet-safe CSV, and the statement's events
(marketplace.statements; docs/money.md, D45)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketplace import imports, statements
from marketplace.errors import InvalidInput, NotFound
from marketplace.events import event_for


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "kind", "period", "start", "end"),
    [
        # Monday 7 December 2026 is the first day of ISO week 50.
        ("2026-12-07T00:00:00", "weekly", "2026-W50", "2026-12-07", "2026-12-14"),
        ("2026-12-06T23:59:59", "weekly", "2026-W49", "2026-11-30", "2026-12-07"),
        # 1 January 2026 is a Thursday: ISO week 1 of 2026 starts on Monday 29 December 2025.
        ("2026-01-01T12:00:00", "weekly", "2026-W01", "2025-12-29", "2026-01-05"),
        # 2026 has 53 ISO weeks (it starts on a Thursday): 31 December is in week 53.
        ("2026-12-31T23:59:59", "weekly", "2026-W53", "2026-12-28", "2027-01-04"),
        ("2026-12-31T23:59:59", "monthly", "2026-12", "2026-12-01", "2027-01-01"),
        ("2026-02-28T08:00:00", "monthly", "2026-02", "2026-02-01", "2026-03-01"),
    ],
)
def test_a_moment_falls_in_one_period_and_its_id_names_it_back(moment, kind, period, start, end):
    found = statements.period_of(at(moment), kind)
    assert (found.id, found.start, found.end) == (period, at(start), at(end))
    assert statements.period_named(period) == found


def test_the_period_due_is_the_one_that_closed_before_and_a_rerun_is_the_same():
    monday = at("2026-12-07T00:00:00")
    assert statements.last_closed(monday, "weekly").id == "2026-W49"
    assert statements.last_closed(monday - timedelta(milliseconds=1), "weekly").id == "2026-W48"
    assert statements.last_closed(at("2027-01-01T00:00:00"), "monthly").id == "2026-12"


@pytest.mark.parametrize("bad", ["2026-W54", "2026-W00", "2026-13", "2026-00", "2026-W1", "26-12", "x"])
def test_a_malformed_period_is_a_400_naming_it(bad):
    with pytest.raises(InvalidInput) as refused:
        statements.period_named(bad)
    assert [f.field for f in refused.value.fields] == ["period"]


def test_a_week_53_of_a_year_with_52_is_no_period():
    with pytest.raises(NotFound, match="no week 2025-W53"):
        statements.period_named("2025-W53")


def test_the_csv_has_the_opening_balance_each_entry_the_closing_balance_and_the_payable():
    statement = {
        "periodStart": "2026-11-30T00:00:00.000Z", "periodEnd": "2026-12-07T00:00:00.000Z",
        "openingBalance": [{"amount": "10.00", "currency": "EUR"}],
        "closingBalance": [{"amount": "149.38", "currency": "EUR"}],
        "payable": [{"amount": "149.38", "currency": "EUR"}],
    }  # fmt: skip
    entries = [
        {"at": "2026-12-01T10:00:00.000Z", "type": "SALE", "entryId": "so1-v5-sale", "supplierOrderId": "so1",
         "amount": {"amount": "152.60", "currency": "EUR"}},
        {"at": "2026-12-01T10:00:00.000Z", "type": "COMMISSION", "entryId": "so1-v5-commission",
         "supplierOrderId": "so1", "amount": {"amount": "-13.22", "currency": "EUR"}},
    ]  # fmt: skip
    rows = statements.csv_rows(statement, entries)
    assert rows == [
        list(statements.CSV_HEADER),
        ["2026-11-30T00:00:00.000Z", "OPENING_BALANCE", "", "", "", "10.00", "EUR"],
        ["2026-12-01T10:00:00.000Z", "SALE", "so1-v5-sale", "so1", "", "152.60", "EUR"],
        ["2026-12-01T10:00:00.000Z", "COMMISSION", "so1-v5-commission", "so1", "", "-13.22", "EUR"],
        ["2026-12-07T00:00:00.000Z", "CLOSING_BALANCE", "", "", "", "149.38", "EUR"],
        ["2026-12-07T00:00:00.000Z", "PAYABLE", "", "", "", "149.38", "EUR"],
    ]
    # OWASP's quote is for formulas: a negative amount stays a number, "-1+2" or "-A1" do not.
    assert [imports.spreadsheet_safe(c) for c in ("-13.22", "-5", "-1+2", "-A1", "=1", "+1")] == [
        "-13.22", "-5", "'-1+2", "'-A1", "'=1", "'+1"]  # fmt: skip


def test_a_statement_is_announced_when_written_and_when_paid_and_not_otherwise():
    ready = {"entity": "STATEMENT", "tenantId": "t1", "supplierId": "s1", "statementId": "2026-W49.s1",
             "period": "2026-W49", "status": "READY", "version": 1, "createdAt": "2026-12-08T01:00:00.000Z",
             "payable": [{"amount": "5.00", "currency": "EUR"}]}  # fmt: skip
    written = event_for(None, ready)
    assert written is not None
    assert (written["type"], written["id"], written["attributes"]["supplier_id"]) == (
        "statement.ready", "statement-2026-W49.s1-v1", "s1")  # fmt: skip
    paid = {
        **ready,
        "status": "PAID",
        "version": 2,
        "reference": "SEPA-1",
        "paidAt": "2026-12-09T09:00:00.000Z",
    }
    announced = event_for(ready, paid)
    assert announced is not None
    assert (announced["type"], announced["body"]["reference"], announced["body"]["at"]) == (
        "statement.paid", "SEPA-1", "2026-12-09T09:00:00.000Z")  # fmt: skip
    assert event_for(paid, {**paid, "version": 3}) is None  # no status change: no event


def test_marketplace_settle_names_a_bad_period_and_a_missing_stack(tmp_path, monkeypatch, capsys):
    """`marketplace settle` (the local stand-in for the hourly schedule, docs/money.md step 7): a
    period that is none and a state folder with no stack are usage errors naming what is wrong."""
    from marketplace_local import cli

    monkeypatch.setenv("MARKETPLACE_STATE_DIR", str(tmp_path))
    assert cli.main(["settle", "--period", "2026-W54"]) == 2
    assert (
        "--period 2026-W54 is not a period: an ISO week (2026-W49) or a month (2026-12)"
        in capsys.readouterr().err
    )
    assert cli.main(["settle", "--period", "2026-W49"]) == 2
    assert "no local stack is running" in capsys.readouterr().err
