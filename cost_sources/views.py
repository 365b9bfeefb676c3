"""Console tab Cost sources: the active cost streams (each source's last sync, rows and
status), a file upload per source, and the reconciliation of billed with metered cost over the
period with its chart."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from aforo.console import console_form, current_membership, posted_decimal, tab_page
from aforo.errors import DomainError
from aforo.models import Role, Tenant
from aforo.periods import PeriodError, period_parse
from aforo.permissions import BILLING_ROLES
from cost_sources import allocations, figures, queries, services
from cost_sources.models import Allocation, CostImport, CostSource, Kind, Mode, Schedule
from cost_sources.polling import cost_source_poll

STATUS_CLASS = {queries.MATCHED: "ok", queries.UNDER_METERED: "warn",
                queries.OVER_METERED: "over"}
SYNC_CLASS = {CostImport.Status.SUCCEEDED: "ok", CostImport.Status.RUNNING: "warn",
              CostImport.Status.FAILED: "over"}


def _can_manage(request: HttpRequest) -> bool:
    membership = current_membership(request)
    return membership is not None and Role(membership.role) in BILLING_ROLES


def _cost_sources(request: HttpRequest, tenant: Tenant, chosen) -> dict[str, Any]:
    by = request.GET.get("by", "provider")
    if by not in queries.GROUPS:
        by = "provider"
    totals = queries.source_totals(tenant.slug)
    streams = []
    for source in CostSource.objects.filter(tenant=tenant).order_by("id"):
        last = source.imports.order_by("-id").first()
        billed, first_day, last_day = totals.get(str(source.pk), (None, None, None))
        streams.append({"source": source, "last": last, "billed": billed,
                        "first_day": first_day, "last_day": last_day,
                        "status_class": SYNC_CLASS.get(last.status, "") if last else ""})
    tolerance = services.reconciliation_settings_get(tenant=tenant).tolerance_pct
    period = chosen.period
    rows = queries.reconciliation(tenant.slug, first=period.first, last=period.last, by=by,
                                  tolerance_pct=tolerance)
    return {
        "allocations": Allocation.objects.filter(tenant=tenant).select_related("source")
        .order_by("-id")[:50],
        "allocation_by": Allocation.By.choices, "buckets": Allocation.Bucket.choices,
        "streams": streams, "kinds": Kind.choices, "modes": Mode.choices,
        "schedules": Schedule.choices, "can_manage": _can_manage(request),
        "by": by, "groups": list(queries.GROUPS), "tolerance_pct": tolerance,
        "rows": [(row, STATUS_CLASS[row.status]) for row in rows],
        "reconciliation_figure": figures.reconciliation_figure(rows) if rows else None,
    }


cost_sources = tab_page("cost_sources", _cost_sources)


def _back(request: HttpRequest) -> HttpResponse:
    query = request.POST.get("return_query", "")
    return redirect(reverse("console-cogs-cost-sources") + (f"?{query}" if query else ""))


def _manager(request: HttpRequest) -> Tenant | None:
    if not _can_manage(request):
        messages.error(request, "Your role may view cost sources but not change them.")
        return None
    return current_membership(request).tenant


@console_form("Cost source not saved", tenant_of=_manager, back=_back)
def source_new(request: HttpRequest, tenant: Tenant) -> str:
    source = services.cost_source_create(
        tenant=tenant, name=request.POST.get("name", ""), kind=request.POST.get("kind", ""),
        mode=request.POST.get("mode", "UPLOAD"),
        base_url=request.POST.get("base_url", "").strip(),
        schedule=request.POST.get("schedule", ""),
        credentials=request.POST.get("credentials", "").strip())
    return f"Cost source “{source.name}” created."


@console_form("Import failed", tenant_of=_manager, back=_back)
def source_import(request: HttpRequest, tenant: Tenant, source_id: int) -> str:
    uploaded = request.FILES.get("file")
    source = services.cost_source_get(tenant=tenant, source_id=source_id)
    if uploaded is None and source.mode == Mode.POLL:
        run = cost_source_poll(source=source)
        return (f"Polled “{source.name}”: {run.rows_imported} rows, "
                f"{run.lines_changed} lines changed.")
    if uploaded is None:
        raise DomainError("Choose a file to import.", field="file")
    if uploaded.size > settings.AFORO_COST_BACKGROUND_BYTES:
        services.cost_import_queue(source=source, stream=uploaded.file,
                                   file_name=uploaded.name or "")
        return (f"Importing {uploaded.name} into “{source.name}” in the background; its row "
                "shows the rows read so far.")
    run = services.cost_import_file(source=source, stream=uploaded.file,
                                    file_name=uploaded.name or "")
    skipped = f", {run.rows_skipped} skipped" if run.rows_skipped else ""
    return (f"Imported {run.rows_imported} rows into “{source.name}”{skipped}; "
            f"{run.lines_changed} lines changed.")


@console_form("Allocation not made", tenant_of=_manager, back=_back)
def allocation_new(request: HttpRequest, tenant: Tenant) -> str:
    """Spread a source's cost onto the period's events (the form beside the allocations)."""
    post = request.POST
    source_id = post.get("source_id", "")
    if not source_id.isdigit():
        raise DomainError("Choose a cost source.", field="source_id")
    source = services.cost_source_get(tenant=tenant, source_id=int(source_id))
    try:
        period = period_parse(post.get("from"), post.get("to"), time_zone="UTC")
    except PeriodError as exc:
        raise DomainError(exc.message, field=exc.field) from None
    products = [p.strip() for p in post.get("product_ids", "").split(",") if p.strip()]
    allocation = allocations.allocation_create(
        tenant=tenant, source=source, first=period.first, last=period.last,
        by=post.get("by", ""), bucket=post.get("bucket", ""),
        amount=posted_decimal(request, "amount_usd", "The amount", optional=True),
        product_ids=products, description=post.get("description", ""))
    return (f"Allocated ${allocation.amount_usd:,.2f} of “{source.name}” onto "
            f"{allocation.events:,} events.")


@console_form("Not reversed", tenant_of=_manager, back=_back)
def allocation_reverse(request: HttpRequest, tenant: Tenant, allocation_id: int) -> str:
    allocation = allocations.allocation_reverse(allocation=allocations.allocation_get(
        tenant=tenant, allocation_id=allocation_id))
    return (f"Allocation {allocation.pk} reversed: ${allocation.amount_usd:,.2f} taken back "
            f"off {allocation.events:,} events.")
