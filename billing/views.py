"""Console pages under Billing: rate plans (list, create, edit their components) and customers
with their plan (subscribe, change plan, end).

Writes call `billing.services`, as the API does, so the console and the API refuse the same
things with the same words. Roles as the API: everyone reads; OWNER, ADMIN and BILLING_ADMIN
write. Other roles see no forms, and the server answers their POSTs with 403.
"""
from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from aforo.catalog import customer_create
from aforo.console import current_membership, memberships_of
from aforo.errors import ApiError, DomainError
from aforo.eventstore import EventStoreError
from aforo.models import Customer, Membership, Product, Role
from aforo.permissions import BILLING_ROLES
from billing import queries, services
from billing.models import ComponentKind, RatePlan, Subscription
from billing.services import KIND_LABEL, ComponentSpec

log = logging.getLogger(__name__)

SECTIONS = [("plans", "Plans", "console-billing-plans"),
            ("customers", "Customers", "console-billing-customers")]
CUSTOMERS_PER_PAGE = 50
TERMS_SHOWN = 10
EVENTS_SHOWN = 20
EVENTS_LOOKBACK = timedelta(days=30)
BLANK_ROWS = 2
TIER_ROWS = 3
MOMENT_FORMAT = "%Y-%m-%dT%H:%M"
PRICE_UNIT = {
    ComponentKind.PER_EVENT: "per event",
    ComponentKind.PER_1K_INPUT_TOKENS: "per 1K input tokens",
    ComponentKind.PER_1K_OUTPUT_TOKENS: "per 1K output tokens",
    ComponentKind.PER_1K_TOKENS: "per 1K tokens",
    ComponentKind.PER_TOOL_CALL: "per tool call",
    ComponentKind.PER_REASONING_STEP: "per reasoning step",
    ComponentKind.FLAT_FEE: "per period",
}


# --- the frame every Billing page shares ----------------------------------------------------

def _can_write(membership: Membership) -> bool:
    return Role(membership.role) in BILLING_ROLES


def _page(request: HttpRequest, section: str, template: str, context: dict[str, Any],
          status: int = 200) -> HttpResponse:
    membership = current_membership(request)
    context = {
        "membership": membership, "memberships": memberships_of(request.user),
        "billing": section, "errors": [], "can_write": _can_write(membership),
        "sections": [(key, title, name, key == section) for key, title, name in SECTIONS],
        **context,
    }
    return render(request, template, context, status=status)


def _no_tenant(request: HttpRequest) -> HttpResponse:
    return render(request, "console/cogs/no_tenant.html", {
        "membership": None, "memberships": memberships_of(request.user), "errors": []})


def _refused(request: HttpRequest, membership: Membership, section: str) -> HttpResponse:
    return _page(request, section, "console/billing/refused.html", {"errors": [
        f"Your role ({membership.role}) may view plans and subscriptions but not change them; "
        "an owner, admin or billing admin can."]}, status=403)


def billing_view(section: str, *, writers_only: bool = False) -> Callable:
    """A login-required Billing view called as `view(request, membership, ...)`: no tenant
    shows the no-tenant page; a POST (any request, with `writers_only`) from a role that may
    not write is refused with 403 before the view runs."""

    def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @functools.wraps(view)
        def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            membership = current_membership(request)
            if membership is None:
                return _no_tenant(request)
            if (writers_only or request.method == "POST") and not _can_write(membership):
                return _refused(request, membership, section)
            return view(request, membership, *args, **kwargs)

        return guarded

    return wrap


def _price(value: Decimal) -> str:
    """A price as typed: no trailing zeros, never in exponent form."""
    return format(value.normalize(), "f")


def component_summary(component) -> str:
    """One component as a sentence fragment: “$0.01 per event (prod_chat)”."""
    kind = ComponentKind(component.kind)
    scope = f" ({component.product_id})" if component.product_id else ""
    if kind == ComponentKind.MARKUP_PCT:
        return f"COGS + {_price(component.unit_price)}%{scope}"
    tiers = list(component.tiers.all())
    if tiers:
        steps = ", ".join(
            f"${_price(t.unit_price)} up to {_price(t.up_to)}" if t.up_to is not None
            else f"${_price(t.unit_price)} beyond" for t in tiers)
        unit = PRICE_UNIT[kind]
        return f"{unit[0].upper()}{unit[1:]}: {steps}{scope}"
    text = f"${_price(component.unit_price)} {PRICE_UNIT[kind]}{scope}"
    if kind == ComponentKind.FLAT_FEE and component.rating_events_per_period:
        text += f", rated over {component.rating_events_per_period:,} events"
    return text


# --- Plans ------------------------------------------------------------------------------------

@billing_view("plans")
def plans_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    plans = queries.plans_listed(membership.tenant, now=datetime.now(timezone.utc))
    return _page(request, "plans", "console/billing/plans.html", {"plans": [
        {"plan": plan, "components": [component_summary(c) for c in plan.components.all()]}
        for plan in plans]})


@dataclass
class ComponentRow:
    """One component's inputs as the form holds them (strings, as typed)."""

    kind: str = ""
    product_id: str = ""
    unit_price: str = ""
    events_per_period: str = ""
    tiers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def blank(self) -> bool:
        return not (self.kind or self.unit_price or self.events_per_period
                    or any(up or price for up, price in self.tiers))

    def tier_inputs(self) -> list[tuple[int, str, str]]:
        shown = [*self.tiers, *[("", "")] * max(1, TIER_ROWS - len(self.tiers))]
        return [(j, up, price) for j, (up, price) in enumerate(shown)]


def _rows_of(plan: RatePlan) -> list[ComponentRow]:
    return [ComponentRow(
        kind=c.kind, product_id=c.product_id, unit_price=_price(c.unit_price),
        events_per_period=str(c.rating_events_per_period or ""),
        tiers=[("" if t.up_to is None else _price(t.up_to), _price(t.unit_price))
               for t in c.tiers.all()]) for c in plan.components.all()]


def _rows_posted(post) -> list[ComponentRow]:
    """The posted rows, blank ones dropped, so “Component 2” is the second row shown again."""
    try:
        count = min(int(post.get("rows", "0")), services.MAX_COMPONENTS + BLANK_ROWS)
    except ValueError:
        count = 0
    rows = []
    for i in range(count):
        prefix = f"c-{i}-"
        tiers = []
        for j in range(services.MAX_TIERS):
            up_key, price_key = f"{prefix}tier-{j}-up_to", f"{prefix}tier-{j}-price"
            if up_key not in post and price_key not in post:
                break
            up, price = post.get(up_key, "").strip(), post.get(price_key, "").strip()
            if up or price:
                tiers.append((up, price))
        row = ComponentRow(kind=post.get(f"{prefix}kind", "").strip(),
                           product_id=post.get(f"{prefix}product", "").strip(),
                           unit_price=post.get(f"{prefix}unit_price", "").strip(),
                           events_per_period=post.get(f"{prefix}events_per_period", "").strip(),
                           tiers=tiers)
        if not row.blank:
            rows.append(row)
    return rows


def _number(text: str, what: str, field_name: str) -> Decimal:
    cleaned = text.replace("$", "").replace(",", "").replace("%", "").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ApiError(f"{what}: “{text}” is not a number.", field=field_name) from None
    if not value.is_finite():
        raise ApiError(f"{what}: “{text}” is not a number.", field=field_name)
    return value


def _specs_of(rows: list[ComponentRow]) -> list[ComponentSpec]:
    """The rows as component specs; a number that does not parse is refused like the service
    refuses a bad value: which component, which field, in words."""
    specs = []
    for i, row in enumerate(rows):
        where = f"components.{i}"
        if row.kind not in ComponentKind.values:
            raise ApiError(f"Component {i + 1}: choose what it charges for (a kind).",
                           field=f"{where}.kind")
        label = f"Component {i + 1} ({KIND_LABEL[ComponentKind(row.kind)]})"
        tiers = [(None if not up else _number(up, f"{label}, tier {j + 1} “up to”",
                                              f"{where}.tiers.{j}.upTo"),
                  _number(price or "", f"{label}, tier {j + 1} price",
                          f"{where}.tiers.{j}.unitPrice"))
                 for j, (up, price) in enumerate(row.tiers)]
        if not row.unit_price and not tiers:
            raise ApiError(f"{label}: enter a price, or volume tiers.",
                           field=f"{where}.unitPrice")
        price = _number(row.unit_price, f"{label}: the price", f"{where}.unitPrice") \
            if row.unit_price else Decimal(0)
        events = None
        if row.events_per_period:
            try:
                events = int(row.events_per_period.replace(",", ""))
            except ValueError:
                raise ApiError(f"{label}: events per period must be a whole number.",
                               field=f"{where}.ratingEventsPerPeriod") from None
        specs.append(ComponentSpec(kind=row.kind, unit_price=price, product_id=row.product_id,
                                   tiers=tiers, rating_events_per_period=events))
    return specs


def _plan_form(request: HttpRequest, membership: Membership, *, plan: RatePlan | None,
               code: str, name: str, rows: list[ComponentRow], error: ApiError | None = None,
               status: int = 200) -> HttpResponse:
    products = list(Product.objects.filter(tenant=membership.tenant)
                    .values_list("external_id", flat=True))
    for row in rows:  # a priced product the catalog lost still shows as chosen
        if row.product_id and row.product_id not in products:
            products.append(row.product_id)
    shown = [*rows, *[ComponentRow() for _ in range(BLANK_ROWS)]]
    # Which input the error is about: `components.1.tiers.0.upTo` marks row 1's first tier.
    error_row, error_input = None, ""
    if error is not None and (error.field or "").startswith("components."):
        _, index, *rest = error.field.split(".")
        error_row, error_input = (int(index) if index.isdigit() else None), ".".join(rest)
    rows_shown = []
    for i, row in enumerate(shown):
        bad = error_input if i == error_row else ""
        rows_shown.append({
            "index": i, "number": i + 1, "row": row, "invalid": bad.split(".")[0],
            "message": error.message if i == error_row else "",
            "tiers": [(j, up, price, bad == f"tiers.{j}.upTo", bad == f"tiers.{j}.unitPrice")
                      for j, up, price in row.tier_inputs()],
        })
    context = {
        "plan": plan, "code": code, "name": name, "rows": rows_shown,
        "row_count": len(shown), "kinds": [(k, KIND_LABEL[ComponentKind(k)])
                                           for k in ComponentKind.values],
        "product_choices": sorted(products),
        "error_field": error.field if error else None,
        "errors": [error.message] if error else [],
        "subscribers": [] if plan is None else list(
            queries.subscriptions_listed(membership.tenant, now=datetime.now(timezone.utc),
                                         plan_code=plan.code, status="ACTIVE")[:50]),
        "summaries": [] if plan is None else [component_summary(c)
                                              for c in plan.components.all()],
    }
    return _page(request, "plans", "console/billing/plan.html", context, status=status)


def _plan_or_404(membership: Membership, code: str) -> RatePlan:
    plan = (queries.plans_listed(membership.tenant, now=datetime.now(timezone.utc))
            .filter(code=code).first())
    if plan is None:
        raise Http404("No such plan.")
    return plan


def _plan_saved(request: HttpRequest, membership: Membership,
                plan: RatePlan | None) -> HttpResponse:
    code = plan.code if plan else request.POST.get("code", "").strip()
    name = request.POST.get("name", "").strip()
    rows = _rows_posted(request.POST)
    if request.POST.get("action") == "add_row":  # one more blank row, nothing saved
        return _plan_form(request, membership, plan=plan, code=code, name=name,
                          rows=[*rows, ComponentRow()])
    try:
        specs = _specs_of(rows)
        if plan is None:
            plan = services.rate_plan_create(tenant=membership.tenant, code=code, name=name,
                                             components=specs)
            messages.success(request, f"Plan “{plan}” created.")
        else:
            services.rate_plan_update(plan=plan, name=name, components=specs)
            messages.success(request, f"Plan “{plan}” saved. Events ingested from now on are "
                                      "rated by these prices; events already ingested keep "
                                      "theirs until the period's invoice settles them.")
    except DomainError as exc:
        return _plan_form(request, membership, plan=plan, code=code, name=name, rows=rows,
                          error=exc, status=exc.status)
    return redirect("console-billing-plan", code=plan.code)


@billing_view("plans", writers_only=True)
def plan_new(request: HttpRequest, membership: Membership) -> HttpResponse:
    if request.method == "POST":
        return _plan_saved(request, membership, None)
    return _plan_form(request, membership, plan=None, code="", name="", rows=[])


@billing_view("plans")
def plan_page(request: HttpRequest, membership: Membership, code: str) -> HttpResponse:
    plan = _plan_or_404(membership, code)
    if request.method == "POST":
        return _plan_saved(request, membership, plan)
    return _plan_form(request, membership, plan=plan, code=plan.code, name=plan.name,
                      rows=_rows_of(plan))


@require_POST
@billing_view("plans")
def plan_delete(request: HttpRequest, membership: Membership, code: str) -> HttpResponse:
    plan = _plan_or_404(membership, code)
    try:
        services.rate_plan_delete(plan=plan)
    except DomainError as exc:
        messages.error(request, f"Plan “{plan}” not deleted: {exc.message}")
        return redirect("console-billing-plan", code=plan.code)
    messages.success(request, f"Plan “{plan}” deleted.")
    return redirect("console-billing-plans")


# --- Customers and their plan -----------------------------------------------------------------

@billing_view("customers")
def customers_page(request: HttpRequest, membership: Membership) -> HttpResponse:
    tenant = membership.tenant
    search = request.GET.get("q", "").strip()
    found = Customer.objects.filter(tenant=tenant)
    if search:
        found = found.filter(Q(external_id__icontains=search) | Q(name__icontains=search))
    total = found.count()
    pages = max(1, math.ceil(total / CUSTOMERS_PER_PAGE))
    try:
        page = min(max(int(request.GET.get("page", "0")), 0), pages - 1)
    except ValueError:
        page = 0
    shown = list(found[page * CUSTOMERS_PER_PAGE:(page + 1) * CUSTOMERS_PER_PAGE])
    current = queries.subscriptions_in_force(tenant, customer_ids=[c.external_id for c in shown],
                                             at=datetime.now(timezone.utc))
    keep = f"q={search}&" if search else ""
    return _page(request, "customers", "console/billing/customers.html", {
        "customers": [(c, current.get(c.external_id)) for c in shown], "total": total,
        "search": search, "page": page, "pages": pages,
        "prev_link": f"?{keep}page={page - 1}" if page > 0 else None,
        "next_link": f"?{keep}page={page + 1}" if page + 1 < pages else None,
    })


@require_POST
@billing_view("customers")
def customer_new(request: HttpRequest, membership: Membership) -> HttpResponse:
    external_id = request.POST.get("customer_id", "").strip()
    name = request.POST.get("name", "").strip()
    if not external_id:
        messages.error(request, "Customer not added: enter the id your events will carry "
                                "as customerId.")
        return redirect("console-billing-customers")
    try:
        customer = customer_create(tenant=membership.tenant, external_id=external_id,
                                   name=name)
    except DomainError as exc:  # the id is taken
        messages.error(request, f"Customer not added: {exc.message}")
        return redirect("console-billing-customers")
    except ValidationError as exc:  # from full_clean: too long, and the like
        messages.error(request, f"Customer not added: {'; '.join(exc.messages)}")
        return redirect("console-billing-customers")
    messages.success(request, f"Customer “{customer}” added; now choose its plan.")
    return redirect("console-billing-customer", customer_id=customer.external_id)


def _zone(membership: Membership) -> str:
    return membership.tenant.time_zone


def _moment(text: str, time_zone: str, what: str, field_name: str) -> datetime:
    """A datetime-local value in the tenant's time zone; empty means now."""
    text = text.strip()
    if not text:
        return datetime.now(timezone.utc)
    try:
        local = datetime.strptime(text[:16], MOMENT_FORMAT)
    except ValueError:
        raise ApiError(f"{what}: “{text}” is not a date and time like 2026-12-01T09:30.",
                       field=field_name) from None
    return local.replace(tzinfo=ZoneInfo(time_zone)).astimezone(timezone.utc)


def _customer_or_404(membership: Membership, customer_id: str) -> Customer:
    customer = Customer.objects.filter(tenant=membership.tenant,
                                       external_id=customer_id).first()
    if customer is None:
        raise Http404("No such customer.")
    return customer


def _customer_action(request: HttpRequest, membership: Membership,
                     customer: Customer) -> HttpResponse:
    tenant, zone = membership.tenant, _zone(membership)
    action = request.POST.get("action", "")
    now = datetime.now(timezone.utc)
    current = queries.subscriptions_in_force(tenant, customer_ids=[customer.external_id],
                                             at=now).get(customer.external_id)

    def chosen_plan() -> RatePlan:
        plan = RatePlan.objects.filter(tenant=tenant, code=request.POST.get("plan", "")).first()
        if plan is None:
            raise ApiError("Choose a plan.", field="planCode")
        return plan

    try:
        if action == "subscribe":
            plan = chosen_plan()
            services.subscription_create(
                tenant=tenant, customer=customer, plan=plan,
                starts_at=_moment(request.POST.get("starts_at", ""), zone, "Start", "startsAt"))
            messages.success(request, f"{customer} is on plan “{plan}”. Its events are rated "
                                      "by it from the start on.")
        elif action in ("change", "end") and current is None:
            raise ApiError(f"{customer} is on no plan right now.", field="subscription")
        elif action == "change":
            plan = chosen_plan()
            services.subscription_change_plan(
                subscription=current, plan=plan,
                at=_moment(request.POST.get("at", ""), zone, "Change from", "at"))
            messages.success(request, f"{customer} moves from “{current.plan}” to “{plan}”.")
        elif action == "end":
            services.subscription_end(subscription=current, at=_moment(
                request.POST.get("at", ""), zone, "End at", "endsAt"))
            messages.success(request, f"{customer}'s subscription to “{current.plan}” ends; "
                                      "events from then on are not rated by a plan.")
        elif action == "cancel":
            scheduled = Subscription.objects.filter(
                tenant=tenant, customer=customer, pk=request.POST.get("subscription") or 0
            ).select_related("plan", "tenant").first()
            if scheduled is None:
                raise ApiError("No such subscription.", field="subscription")
            services.subscription_delete(subscription=scheduled, now=now)
            messages.success(request, f"The scheduled subscription to “{scheduled.plan}” is "
                                      "cancelled.")
        else:
            raise ApiError("Unknown action.", field="action")
    except DomainError as exc:
        messages.error(request, f"Not saved: {exc.message}")
    return redirect("console-billing-customer", customer_id=customer.external_id)


@billing_view("customers")
def customer_page(request: HttpRequest, membership: Membership,
                  customer_id: str) -> HttpResponse:
    customer = _customer_or_404(membership, customer_id)
    if request.method == "POST":
        return _customer_action(request, membership, customer)
    tenant, now, zone = membership.tenant, datetime.now(timezone.utc), _zone(membership)
    terms = list(queries.subscriptions_listed(tenant, now=now,
                                              customer_id=customer.external_id)[:TERMS_SHOWN])
    current = next((t for t in terms if queries.subscription_status(t, now) == "ACTIVE"), None)
    errors: list[str] = []
    history, events = [], []
    try:
        for term in terms:
            started = term.starts_at <= now
            usage = queries.rated_usage(tenant.slug, customer_id=customer.external_id,
                                        start=term.starts_at, end=term.ends_at) \
                if started else None
            history.append({"term": term, "status": queries.subscription_status(term, now),
                            "usage": usage, "rated": usage and _price(usage["rated_revenue_usd"])})
        since = max(now - EVENTS_LOOKBACK, current.starts_at) if current else \
            now - EVENTS_LOOKBACK
        events = [{**row, "rated": _price(row["event_rated"])} for row in queries.rated_events(
            tenant.slug, customer_id=customer.external_id, since=since, limit=EVENTS_SHOWN)]
    except EventStoreError as exc:
        log.warning("console: customer usage unavailable: %s", exc)
        errors.append(f"The event store is unavailable right now, so usage and rated revenue "
                      f"cannot be shown. {exc}")
        history = [{"term": t, "status": queries.subscription_status(t, now), "usage": None}
                   for t in terms]
    return _page(request, "customers", "console/billing/customer.html", {
        "customer": customer, "current": current, "history": history, "events": events,
        "errors": errors, "time_zone": zone,
        "plans": list(RatePlan.objects.filter(tenant=tenant)),
        "transactions_link": reverse("console-cogs-transactions") + "?"
        + urlencode({"customerId": customer.external_id, "period": "30d"}),
    })
