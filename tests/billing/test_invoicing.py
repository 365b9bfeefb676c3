"""Invoices generated from subscriptions for a closed period, and close_period."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from io import StringIO

from django.core.management import call_command

from billing.attribution import attribution_run
from billing.invoicing import invoices_generate, month_bounds
from billing.models import Invoice, InvoiceStatus
from billing.queries import revenue_status
from billing.services import ComponentSpec
from tests.factories import NOV, OCT, event, ingest, revenue_by_event, subscribe


def test_month_bounds():
    assert month_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=timezone.utc),
                                       datetime(2027, 1, 1, tzinfo=timezone.utc))


def test_a_closed_month_is_invoiced_from_the_plan_and_attributed(store, tenant):
    subscribe(tenant,
              ComponentSpec("PER_1K_INPUT_TOKENS", Decimal("0.5")),
              ComponentSpec("PER_EVENT", Decimal("0.01"), product_id="prod_x"),
              ComponentSpec("PER_TOOL_CALL", Decimal("0.1"),
                            tiers=[(Decimal(2), Decimal("0.2")), (None, Decimal("0.1"))]),
              ComponentSpec("FLAT_FEE", Decimal("49")),
              ComponentSpec("MARKUP_PCT", Decimal("100")))
    ingest(tenant, [
        event("a", inputTokens=1000, toolCalls=2, cogsUsd="0.30"),
        event("b", product="prod_y", inputTokens=3000, toolCalls=1, cogsUsd="0.10"),
        event("late", at="2026-11-02T00:00:00Z", inputTokens=99999),
    ])
    [inv] = invoices_generate(tenant=tenant, period_start=OCT, period_end=NOV)
    assert inv.status == InvoiceStatus.FINALIZED
    amounts = {(ln.unit, ln.product_id): ln.amount_usd for ln in inv.lines.all()}
    assert amounts == {
        ("INPUT_TOKENS", "prod_x"): Decimal("0.50"), ("INPUT_TOKENS", "prod_y"): Decimal("1.50"),
        ("EVENTS", "prod_x"): Decimal("0.01"),
        ("TOOL_CALLS", "prod_x"): Decimal("0.40"), ("TOOL_CALLS", "prod_y"): Decimal("0.20"),
        ("FLAT", ""): Decimal("49.00"),
        ("COGS", "prod_x"): Decimal("0.60"), ("COGS", "prod_y"): Decimal("0.20"),
    }
    assert inv.total_usd == Decimal("52.41")
    run = attribution_run(tenant=tenant)
    assert run.unattributed_usd == 0
    got = revenue_by_event(tenant)
    assert sum(got.values()) == Decimal("52.41") and "late" not in got
    assert revenue_status(tenant.slug, ["a", "late"]) == {"a": "SETTLED", "late": "SETTLING"}
    # generating again changes nothing
    [again] = invoices_generate(tenant=tenant, period_start=OCT, period_end=NOV)
    assert again.pk == inv.pk
    assert attribution_run(tenant=tenant).entries_written == 0


def test_close_period_command_and_drafts(store, tenant):
    subscribe(tenant, ComponentSpec("PER_EVENT", Decimal("1")))
    ingest(tenant, [event("a"), event("b")])
    out = StringIO()
    call_command("close_period", "--period", "2026-10", "--tenant", tenant.slug, "--draft",
                 stdout=out)
    inv = Invoice.objects.get(tenant=tenant)
    assert inv.status == InvoiceStatus.DRAFT and inv.total_usd == Decimal("2.00")
    assert attribution_run(tenant=tenant).lines == 0  # drafts are not attributed
    call_command("close_period", "--period", "2026-10", "--tenant", tenant.slug, stdout=out)
    inv.refresh_from_db()
    assert inv.status == InvoiceStatus.FINALIZED
    call_command("attribute_revenue", "--tenant", tenant.slug, stdout=out)
    assert "1/1 lines matched, 2 event allocations" in out.getvalue()
    assert revenue_by_event(tenant) == {"a": Decimal("1"), "b": Decimal("1")}


def test_the_schedule_declares_the_billing_jobs():
    from aforo.celery import app

    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {"billing.attribute_revenue_all", "billing.close_previous_month"} <= tasks
    import billing.tasks  # noqa: F401  (registers the tasks)

    assert "billing.attribute_revenue_all" in app.tasks


def test_the_nightly_task_attributes_every_tenant(store, tenant, other_tenant):
    from billing.tasks import attribute_revenue_all

    ingest(tenant, [event("a")])
    ingest(other_tenant, [event("b")])
    from tests.factories import invoice

    invoice(tenant)
    invoice(other_tenant)
    assert attribute_revenue_all.apply().get() == 2
    assert revenue_by_event(tenant) == {"a": Decimal("10")}
    assert revenue_by_event(other_tenant) == {"b": Decimal("10")}
