"""Attribution on both event-store backends: exact allocation, units, reversals, idempotence."""
from __future__ import annotations

from decimal import Decimal

from billing.attribution import attribution_run
from billing.models import AttributionRunStatus
from billing.queries import revenue_status
from billing.services import invoice_void
from tests.factories import event, ingest, invoice, revenue_by_event, revenue_entries


def test_invoice_line_is_attributed_equally_per_event_to_the_cent(store, tenant):
    ingest(tenant, [event(f"e{i}") for i in range(3)])
    invoice(tenant, lines=[("l1", "prod_x", "10.00", "EVENTS")])
    run = attribution_run(tenant=tenant)
    got = revenue_by_event(tenant)
    assert sum(got.values()) == Decimal("10.00")
    assert sorted(got.values()) == [Decimal("3.333333333"), Decimal("3.333333333"),
                                    Decimal("3.333333334")]
    assert run.status == AttributionRunStatus.SUCCEEDED
    assert (run.lines, run.lines_matched, run.events) == (1, 1, 3)
    assert run.attributed_usd == Decimal("10.00") and run.unattributed_usd == 0
    assert run.entries_written == 3


def test_revenue_entries_carry_the_events_dimensions(store, tenant):
    ingest(tenant, [event("e1", at="2026-10-05T08:30:00Z", toolName="search", sessionId="s1",
                          agent="researcher")])
    invoice(tenant)
    attribution_run(tenant=tenant)
    [entry] = revenue_entries(tenant)
    assert entry["agent"] == "researcher"  # revenue per agent groups with the event's cost
    assert entry["event_id"] == "e1" and entry["entry_kind"] == "ORIGINAL"
    assert entry["occurred_at"].isoformat() == "2026-10-05T08:30:00+00:00"
    assert (entry["customer_id"], entry["product_id"], entry["model"], entry["tool_name"],
            entry["session_id"]) == ("cust_a", "prod_x", "claude-sonnet-4-6", "search", "s1")
    assert (entry["invoice_id"], entry["invoice_line_id"]) == ("inv_1", "l1")
    assert entry["event_count"] == 0 and entry["revenue_usd"] == Decimal("10")


def test_only_the_customers_events_of_that_product_and_period_count(store, tenant):
    ingest(tenant, [
        event("in1"), event("in2", at="2026-10-31T23:59:59Z"),
        event("before", at="2026-09-30T23:59:59Z"), event("at_end", at="2026-11-01T00:00:00Z"),
        event("other_customer", customer="cust_b"), event("other_product", product="prod_y"),
    ])
    invoice(tenant, lines=[("l1", "prod_x", "1.00", "FLAT")])
    attribution_run(tenant=tenant)
    assert revenue_by_event(tenant) == {"in1": Decimal("0.5"), "in2": Decimal("0.5")}


def test_token_units_weigh_by_their_tokens(store, tenant):
    ingest(tenant, [
        event("a", inputTokens=100, outputTokens=300, toolCalls=1, reasoningSteps=0),
        event("b", inputTokens=300, outputTokens=100, toolCalls=3, reasoningSteps=5),
    ])
    invoice(tenant, lines=[("in", "prod_x", "4.00", "INPUT_TOKENS"),
                           ("out", "prod_x", "8.00", "OUTPUT_TOKENS"),
                           ("tok", "prod_x", "2.00", "TOKENS"),
                           ("tools", "prod_x", "1.00", "TOOL_CALLS"),
                           ("steps", "prod_x", "7.00", "REASONING_STEPS")])
    attribution_run(tenant=tenant)
    by_line: dict[tuple[str, str], Decimal] = {}
    for entry in revenue_entries(tenant):
        by_line[(entry["invoice_line_id"], entry["event_id"])] = entry["revenue_usd"]
    assert by_line[("in", "a")] == Decimal("1") and by_line[("in", "b")] == Decimal("3")
    assert by_line[("out", "a")] == Decimal("6") and by_line[("out", "b")] == Decimal("2")
    assert by_line[("tok", "a")] == Decimal("1") and by_line[("tok", "b")] == Decimal("1")
    assert by_line[("tools", "a")] == Decimal("0.25")
    assert by_line[("tools", "b")] == Decimal("0.75")
    assert ("steps", "a") not in by_line and by_line[("steps", "b")] == Decimal("7")


def test_a_line_whose_events_have_none_of_its_unit_is_shared_equally(store, tenant):
    ingest(tenant, [event("a"), event("b")])
    invoice(tenant, lines=[("tools", "prod_x", "1.00", "TOOL_CALLS")])
    attribution_run(tenant=tenant)
    assert revenue_by_event(tenant) == {"a": Decimal("0.5"), "b": Decimal("0.5")}


def test_a_line_without_events_is_reported_unattributed(store, tenant):
    ingest(tenant, [event("a")])
    invoice(tenant, lines=[("l1", "prod_x", "5.00", "EVENTS"),
                           ("l2", "prod_nothing", "2.50", "FLAT")])
    run = attribution_run(tenant=tenant)
    assert (run.lines, run.lines_matched, run.lines_unattributed) == (2, 1, 1)
    assert run.attributed_usd == Decimal("5.00")
    assert run.unattributed_usd == Decimal("2.50")
    assert run.unattributed_lines == [{"invoiceId": "inv_1", "lineId": "l2",
                                       "productId": "prod_nothing", "amountUsd": "2.500000000"}]
    assert revenue_by_event(tenant) == {"a": Decimal("5")}


def test_a_line_for_every_product_spreads_over_all_the_customers_events(store, tenant):
    ingest(tenant, [event("a", product="p1"), event("b", product="p2"),
                    event("c", customer="cust_b")])
    invoice(tenant, lines=[("platform", "", "49.00", "FLAT")])
    attribution_run(tenant=tenant)
    assert revenue_by_event(tenant) == {"a": Decimal("24.5"), "b": Decimal("24.5")}


def test_a_second_run_changes_nothing(store, tenant):
    ingest(tenant, [event(f"e{i}", inputTokens=i * 7 + 1) for i in range(7)])
    invoice(tenant, lines=[("l1", "prod_x", "10.00", "INPUT_TOKENS"),
                           ("l2", "prod_x", "0.05", "EVENTS")])
    first = attribution_run(tenant=tenant)
    before = revenue_entries(tenant)
    second = attribution_run(tenant=tenant)
    assert second.entries_written == 0
    assert revenue_entries(tenant) == before
    assert (second.lines_matched, second.events, second.attributed_usd) == (
        first.lines_matched, first.events, first.attributed_usd)


def test_voiding_reverses_the_attribution(store, tenant):
    ingest(tenant, [event("a"), event("b")])
    inv = invoice(tenant, lines=[("l1", "prod_x", "3.00", "EVENTS")])
    attribution_run(tenant=tenant)
    invoice_void(invoice=inv)
    entries = revenue_entries(tenant)
    assert sorted(e["entry_kind"] for e in entries) == ["ORIGINAL", "ORIGINAL",
                                                        "REVERSAL", "REVERSAL"]
    assert revenue_by_event(tenant) == {}
    assert revenue_status(tenant.slug, ["a", "b"]) == {"a": "SETTLING", "b": "SETTLING"}
    assert attribution_run(tenant=tenant).entries_written == 0


def test_nightly_window_skips_old_invoices_but_not_voided_ones(store, tenant):
    from datetime import datetime, timezone

    ingest(tenant, [event("a")])
    inv = invoice(tenant, lines=[("l1", "prod_x", "3.00", "EVENTS")])
    later = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert attribution_run(tenant=tenant, changed_since=later).lines == 0
    assert attribution_run(tenant=tenant).lines == 1
    inv.status = "VOID"
    inv.voided_at = later
    inv.save()
    attribution_run(tenant=tenant, changed_since=later)
    assert revenue_by_event(tenant) == {}


def test_reimporting_a_changed_invoice_reverses_and_reattributes(store, tenant):
    ingest(tenant, [event("a"), event("b")])
    invoice(tenant, lines=[("l1", "prod_x", "3.00", "EVENTS")])
    attribution_run(tenant=tenant)
    second = invoice(tenant, lines=[("l1", "prod_x", "5.00", "EVENTS")])
    assert second.version == 2
    assert revenue_by_event(tenant) == {"a": Decimal("2.5"), "b": Decimal("2.5")}
    kinds = [e["entry_kind"] for e in revenue_entries(tenant)]
    assert kinds.count("REVERSAL") == 2 and kinds.count("ORIGINAL") == 4
    # importing the same content again is a no-op
    assert invoice(tenant, lines=[("l1", "prod_x", "5.00", "EVENTS")]).pk == second.pk
    assert attribution_run(tenant=tenant).entries_written == 0


def test_late_events_move_revenue_without_changing_the_total(store, tenant):
    ingest(tenant, [event("a")])
    invoice(tenant, lines=[("l1", "prod_x", "1.00", "EVENTS")])
    attribution_run(tenant=tenant)
    ingest(tenant, [event("late")])
    attribution_run(tenant=tenant)
    assert revenue_by_event(tenant) == {"a": Decimal("0.5"), "late": Decimal("0.5")}


def test_negative_lines_allocate_exactly_too(store, tenant):
    ingest(tenant, [event(f"e{i}") for i in range(3)])
    invoice(tenant, lines=[("credit", "prod_x", "-1.00", "EVENTS")])
    attribution_run(tenant=tenant)
    got = revenue_by_event(tenant)
    assert sum(got.values()) == Decimal("-1.00")
    assert sorted(got.values()) == [Decimal("-0.333333334"), Decimal("-0.333333333"),
                                    Decimal("-0.333333333")]


def test_tenants_never_see_each_others_revenue(store, tenant, other_tenant):
    ingest(tenant, [event("a")])
    ingest(other_tenant, [event("a"), event("b")])
    invoice(other_tenant, lines=[("l1", "prod_x", "8.00", "EVENTS")])
    invoice(tenant, lines=[("l1", "prod_x", "1.00", "EVENTS")])
    attribution_run(tenant=tenant)
    assert revenue_by_event(tenant) == {"a": Decimal("1")}
    assert revenue_by_event(other_tenant) == {}
    attribution_run(tenant=other_tenant)
    assert revenue_by_event(other_tenant) == {"a": Decimal("4"), "b": Decimal("4")}
    assert revenue_by_event(tenant) == {"a": Decimal("1")}
