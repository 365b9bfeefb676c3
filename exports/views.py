"""The Exports console tab: download the period's ledger or aggregates, and manage the export
schedules (create, run now, delete) with their run history. Thin: the services do the work."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from aforo.console import PageError, console_period, current_membership, tab_page
from aforo.errors import DomainError
from aforo.models import Role
from aforo.permissions import BILLING_ROLES
from exports import files, services
from exports.models import DestinationKind, ExportRun, ExportSchedule
from exports.queries import AGGREGATE_DIMENSIONS
from exports.streaming import streamed
from notifications.destinations import destination_masked

RUNS_SHOWN = 20


def _can_manage(request) -> bool:
    membership = current_membership(request)
    return membership is not None and Role(membership.role) in BILLING_ROLES


def _exports(request, tenant, chosen) -> dict:
    can_manage = _can_manage(request)
    schedules = []
    for schedule in ExportSchedule.objects.filter(tenant=tenant):
        shown = schedule.destination  # a DSN's password is stored masked
        schedules.append({"schedule": schedule, "last": schedule.runs.first(),
                          "destination": shown if can_manage else destination_masked(shown)})
    return {
        "schedules": schedules,
        "runs": ExportRun.objects.filter(tenant=tenant).select_related("schedule")[:RUNS_SHOWN],
        "kinds": DestinationKind.values, "can_manage": can_manage,
        "dimensions": list(AGGREGATE_DIMENSIONS),
        "new_secret": request.session.pop("export_secret", None),
    }


exports_tab = tab_page("exports", _exports)


def _back(request) -> HttpResponse:
    query = request.POST.get("return_query", "")
    return redirect(reverse("console-exports") + (f"?{query}" if query else ""))


@login_required
@require_POST
def schedule_save(request: HttpRequest) -> HttpResponse:
    membership = current_membership(request)
    if membership is None or not _can_manage(request):
        messages.error(request, "Your role may view exports but not schedule them.")
        return _back(request)

    def number(name: str, default: int) -> int:
        raw = request.POST.get(name, "").strip()
        try:
            return int(raw) if raw else default
        except ValueError:
            raise DomainError(f"{name.replace('_', ' ').capitalize()} must be a whole number.",
                              field=name) from None

    try:
        created = services.export_schedule_create(
            tenant=membership.tenant, name=request.POST.get("name", "").strip(),
            kind=request.POST.get("kind", ""),
            destination=request.POST.get("destination", "").strip(),
            table_name=request.POST.get("table_name", "").strip(),
            interval_minutes=number("interval_minutes", 60),
            lag_seconds=number("lag_seconds", 120),
            chunk_rows=number("chunk_rows", 0) or None)
    except DomainError as exc:
        messages.error(request, exc.message)
        return _back(request)
    if created.signing_secret:
        # Shown once, on the page the redirect leads to.
        request.session["export_secret"] = {"name": created.schedule.name,
                                            "secret": created.signing_secret}
    messages.success(request, f"Export schedule “{created.schedule.name}” created.")
    return _back(request)


@login_required
@require_POST
def schedule_action(request: HttpRequest, schedule_id: int, action: str) -> HttpResponse:
    if action not in ("run", "delete"):
        return HttpResponse(status=404)
    membership = current_membership(request)
    if membership is None or not _can_manage(request):
        messages.error(request, "Your role may view exports but not change them.")
        return _back(request)
    schedule = get_object_or_404(ExportSchedule, tenant=membership.tenant, pk=schedule_id)
    try:
        if action == "delete":
            services.export_schedule_delete(schedule=schedule)
            messages.success(request, f"Export schedule “{schedule.name}” deleted.")
        else:
            run = services.export_run(schedule=schedule, trigger=ExportRun.Trigger.CONSOLE)
            text = (f"Run of “{schedule.name}”: {run.state.lower()}, "
                    f"{run.rows_delivered} entries.")
            (messages.success if run.state == "SUCCEEDED" else messages.error)(
                request, f"{text} {run.error}".strip())
    except DomainError as exc:
        messages.error(request, exc.message)
    return _back(request)


@login_required
def download(request: HttpRequest, what: str) -> HttpResponse:
    """The period's ledger (billing roles) or aggregates (every role) as a file."""
    membership = current_membership(request)
    if membership is None or what not in ("ledger", "aggregates"):
        return HttpResponse(status=404)
    if what == "ledger" and not _can_manage(request):
        return HttpResponse("Your role may not export the raw ledger.", status=403,
                            content_type="text/plain")
    try:
        params = request.GET.copy()
        chosen = console_period(QueryDict(params.urlencode()), membership.tenant.time_zone)
        fmt = files.export_format(request.GET.get("format"))
        gzip = request.GET.get("gzip") == "true"
        if what == "ledger":
            export = files.ledger_file(tenant=membership.tenant, period=chosen.period,
                                       fmt=fmt, gzip=gzip)
        else:
            export = files.aggregates_file(tenant=membership.tenant, period=chosen.period,
                                           fmt=fmt, by=request.GET.get("by", ""),
                                           grain=request.GET.get("grain", "day"), gzip=gzip)
    except (DomainError, PageError) as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain")
    return streamed(request, export)
