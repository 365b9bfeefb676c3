"""Billing writes: plans and subscriptions, invoices imported, generated, finalized and voided."""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q

from aforo.catalog import catalog_register
from aforo.errors import Conflict, DomainError
from aforo.eventstore import EventStoreError
from aforo.models import Customer, Tenant
from billing.models import (
    ComponentKind,
    Invoice,
    InvoiceLine,
    InvoiceSource,
    InvoiceStatus,
    PriceComponent,
    PriceTier,
    RatePlan,
    Subscription,
    Unit,
)
from billing.rating import plans_changed

log = logging.getLogger(__name__)
CENT = Decimal("0.01")


# --- plans and subscriptions ----------------------------------------------------------------
#
# Every write here ends with `plans_changed(tenant)`, so ingest's in-memory plan book reloads and
# the next event is rated by what the database now says. Events already in the ledger keep the
# rated revenue they were given (the ledger is append-only); the period's invoice settles them.

PLAN_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_COMPONENTS = 50
MAX_TIERS = 20
_RATE_PLACES, _RATE_LIMIT = 12, Decimal("1e12")
_UP_TO_PLACES = 6
_TIERED_KINDS = frozenset(ComponentKind) - {ComponentKind.FLAT_FEE, ComponentKind.MARKUP_PCT}
KIND_LABEL = {
    ComponentKind.PER_EVENT: "Per event",
    ComponentKind.PER_1K_INPUT_TOKENS: "Per 1K input tokens",
    ComponentKind.PER_1K_OUTPUT_TOKENS: "Per 1K output tokens",
    ComponentKind.PER_1K_TOKENS: "Per 1K tokens",
    ComponentKind.PER_TOOL_CALL: "Per tool call",
    ComponentKind.PER_REASONING_STEP: "Per reasoning step",
    ComponentKind.FLAT_FEE: "Flat fee per period",
    ComponentKind.MARKUP_PCT: "Markup on COGS (%)",
}
_UNSET: Any = object()


@dataclass(frozen=True)
class ComponentSpec:
    kind: ComponentKind | str
    unit_price: Decimal = Decimal(0)
    product_id: str = ""
    tiers: Sequence[tuple[Decimal | None, Decimal]] = ()
    rating_events_per_period: int | None = None


def _check_rate(value: Decimal, what: str, field: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise DomainError(f"{what} must be a number.", field=field)
    if value < 0:
        raise DomainError(f"{what} must not be negative.", field=field)
    if value.as_tuple().exponent < -_RATE_PLACES:
        raise DomainError(f"{what} has more than {_RATE_PLACES} decimals.", field=field)
    if value >= _RATE_LIMIT:
        raise DomainError(f"{what} is too large.", field=field)


def _check_tiers(spec: ComponentSpec, label: str, field: str) -> None:
    if len(spec.tiers) > MAX_TIERS:
        raise DomainError(f"{label}: at most {MAX_TIERS} volume tiers.", field=f"{field}.tiers")
    previous: Decimal | None = None
    for j, (up_to, price) in enumerate(spec.tiers):
        where = f"{field}.tiers.{j}"
        tier = f"{label}, tier {j + 1}"
        _check_rate(price, f"{tier}: the unit price", f"{where}.unitPrice")
        if up_to is None:
            if j != len(spec.tiers) - 1:
                raise DomainError(f"{tier}: only the last tier may have no upper limit.",
                               field=f"{where}.upTo")
            continue
        if not isinstance(up_to, Decimal) or not up_to.is_finite() or up_to <= 0:
            raise DomainError(f"{tier}: “up to” must be a number above 0.", field=f"{where}.upTo")
        if up_to.as_tuple().exponent < -_UP_TO_PLACES:
            raise DomainError(f"{tier}: “up to” has more than {_UP_TO_PLACES} decimals.",
                           field=f"{where}.upTo")
        if up_to >= _RATE_LIMIT:
            raise DomainError(f"{tier}: “up to” is too large.", field=f"{where}.upTo")
        if previous is not None and up_to <= previous:
            raise DomainError(f"{tier}: “up to” must be above the previous tier's ({previous}).",
                           field=f"{where}.upTo")
        previous = up_to


def components_check(*, components: Sequence[ComponentSpec]) -> None:
    """Refuse a component list that would price nonsense, naming the component and field.

    Messages count components from 1 as a person reads the form; fields index from 0 as the
    JSON body does (`components.1.unitPrice` is “Component 2”).
    """
    if len(components) > MAX_COMPONENTS:
        raise DomainError(f"A plan has at most {MAX_COMPONENTS} components.", field="components")
    seen: dict[tuple[str, str], int] = {}
    for i, spec in enumerate(components):
        field = f"components.{i}"
        if spec.kind not in ComponentKind.values:
            raise DomainError(f"Component {i + 1}: choose a kind "
                           f"({', '.join(ComponentKind.values)}).", field=f"{field}.kind")
        kind = ComponentKind(spec.kind)
        label = f"Component {i + 1} ({KIND_LABEL[kind]})"
        if len(spec.product_id) > 200:
            raise DomainError(f"{label}: a product id is at most 200 characters.",
                           field=f"{field}.productId")
        key = (kind.value, spec.product_id)
        if key in seen:
            scope = f"product {spec.product_id}" if spec.product_id else "every product"
            raise DomainError(f"{label}: component {seen[key] + 1} already prices "
                           f"{KIND_LABEL[kind].lower()} for {scope}; change that one instead.",
                           field=f"{field}.kind")
        seen[key] = i
        what = "the percentage" if kind == ComponentKind.MARKUP_PCT else "the unit price"
        _check_rate(spec.unit_price, f"{label}: {what}", f"{field}.unitPrice")
        if spec.tiers:
            if kind not in _TIERED_KINDS:
                raise DomainError(f"{label}: volume tiers apply to usage prices only, not to a "
                               "flat fee or a markup.", field=f"{field}.tiers")
            _check_tiers(spec, label, field)
        if spec.rating_events_per_period is not None:
            if kind != ComponentKind.FLAT_FEE:
                raise DomainError(f"{label}: events per period applies to a flat fee only.",
                               field=f"{field}.ratingEventsPerPeriod")
            if (isinstance(spec.rating_events_per_period, bool)
                    or not isinstance(spec.rating_events_per_period, int)
                    or not 1 <= spec.rating_events_per_period <= 2**31 - 1):
                raise DomainError(f"{label}: events per period must be a whole number of 1 or "
                               "more.", field=f"{field}.ratingEventsPerPeriod")


def _register_products(tenant: Tenant, components: Sequence[ComponentSpec]) -> None:
    """A product priced before its first event joins the catalog, as invoice lines do."""
    catalog_register(tenant=tenant, customer_ids=set(),
                     products={c.product_id: "" for c in components if c.product_id})


def _component_write(component: PriceComponent, spec: ComponentSpec) -> None:
    component.unit_price = spec.unit_price
    component.rating_events_per_period = spec.rating_events_per_period
    component.save()
    component.tiers.all().delete()
    PriceTier.objects.bulk_create([PriceTier(component=component, up_to=up_to, unit_price=price)
                                   for up_to, price in spec.tiers])


def rate_plan_create(*, tenant: Tenant, code: str, name: str = "",
                     components: Sequence[ComponentSpec] = ()) -> RatePlan:
    if not PLAN_CODE.fullmatch(code or ""):
        raise DomainError("The code must be 1–100 letters, digits, dots, dashes or underscores, "
                       "starting with a letter or digit.", field="code")
    if len(name) > 200:
        raise DomainError("The name is at most 200 characters.", field="name")
    components_check(components=components)
    with transaction.atomic():
        if RatePlan.objects.filter(tenant=tenant, code=code).exists():
            raise Conflict(f"A plan with the code {code!r} exists.", field="code")
        plan = RatePlan.objects.create(tenant=tenant, code=code, name=name)
        _register_products(tenant, components)
        for spec in components:
            _component_write(PriceComponent(plan=plan, kind=ComponentKind(spec.kind),
                                            product_id=spec.product_id), spec)
    plans_changed(tenant)
    return plan


def rate_plan_update(*, plan: RatePlan, name: str | None = None,
                     components: Sequence[ComponentSpec] | None = None) -> RatePlan:
    """Rename a plan and/or replace its components (the list given is the whole new list).

    A component of the same kind and product as one the plan holds is updated in place, so it
    keeps its id (generated invoice lines are named after it); the others are added or removed.
    Ingest rates by the new prices from the next event on; see docs/billing.md for what this
    does to events already ingested.
    """
    if name is not None and len(name) > 200:
        raise DomainError("The name is at most 200 characters.", field="name")
    if components is not None:
        components_check(components=components)
    with transaction.atomic():
        if name is not None:
            plan.name = name
            plan.save(update_fields=["name"])
        if components is not None:
            _register_products(plan.tenant, components)
            held = {(c.kind, c.product_id): c for c in plan.components.all()}
            for spec in components:
                key = (ComponentKind(spec.kind).value, spec.product_id)
                component = held.pop(key, None) or PriceComponent(
                    plan=plan, kind=ComponentKind(spec.kind), product_id=spec.product_id)
                _component_write(component, spec)
            PriceComponent.objects.filter(pk__in=[c.pk for c in held.values()]).delete()
    plans_changed(plan.tenant)
    return plan


def rate_plan_delete(*, plan: RatePlan) -> None:
    """Delete a plan no customer has ever been on; refuse (409) one with subscriptions, whose
    invoices of past periods are generated from it."""
    subscriptions = plan.subscriptions.count()
    if subscriptions:
        raise Conflict(
            f"Plan {plan.code!r} has {subscriptions} subscription"
            f"{'s' if subscriptions != 1 else ''} (ended ones included), and past invoices are "
            "generated from it, so it cannot be deleted. Move its customers to another plan "
            "and keep it, or delete subscriptions that have not started yet.",
            code="plan_in_use")
    tenant = plan.tenant
    plan.delete()
    plans_changed(tenant)


def _fmt_moment(at: datetime | None) -> str:
    return "open-ended" if at is None else f"{at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


def _check_no_overlap(*, customer: Customer, starts_at: datetime, ends_at: datetime | None,
                      excluding: int | None = None) -> None:
    """A customer is on one plan at a time: refuse a term that overlaps another (409).

    The caller holds the customer's row lock, so two concurrent writes cannot both pass.
    """
    others = Subscription.objects.filter(customer=customer).select_related("plan")
    if excluding is not None:
        others = others.exclude(pk=excluding)
    if ends_at is not None:
        others = others.filter(starts_at__lt=ends_at)
    clash = (others.filter(Q(ends_at__isnull=True) | Q(ends_at__gt=starts_at))
             .order_by("starts_at").first())
    if clash is not None:
        raise Conflict(
            f"Customer {customer.external_id!r} is already on plan {clash.plan.code!r} from "
            f"{_fmt_moment(clash.starts_at)} until {_fmt_moment(clash.ends_at)} (subscription "
            f"{clash.pk}). A customer is on one plan at a time: end that subscription or "
            "change its plan instead.", field="startsAt", code="subscription_overlap")


def _whole_second(at: datetime | None) -> datetime | None:
    # :TRICKY: the ledger keeps occurred_at in whole seconds (DateTime('UTC')) and ingest rates
    # an event by that second, so a term starting at 12:00:00.4 would not rate an event of
    # 12:00:00.9. Terms start and end on whole seconds too.
    return None if at is None else at.replace(microsecond=0)


def _check_term(starts_at: datetime, ends_at: datetime | None) -> None:
    if ends_at is not None and ends_at <= starts_at:
        raise DomainError("The end must be after the start.", field="endsAt")


def subscription_term_check(*, customer: Customer, starts_at: datetime,
                            ends_at: datetime | None, excluding: int | None = None) -> None:
    """The checks a subscription's term passes (end after start, no overlap), for forms that
    save outside these services (the admin); the services run them under the row lock."""
    starts_at, ends_at = _whole_second(starts_at), _whole_second(ends_at)
    _check_term(starts_at, ends_at)
    _check_no_overlap(customer=customer, starts_at=starts_at, ends_at=ends_at,
                      excluding=excluding)


def _locked(customer: Customer) -> Customer:
    return Customer.objects.select_for_update().get(pk=customer.pk)


def subscription_create(*, tenant: Tenant, customer: Customer, plan: RatePlan,
                        starts_at: datetime, ends_at: datetime | None = None) -> Subscription:
    """Put a customer on a plan from `starts_at` until `ends_at` (exclusive; None: open-ended)."""
    if plan.tenant_id != tenant.pk or customer.tenant_id != tenant.pk:
        raise DomainError("Plan and customer must belong to the tenant.")
    starts_at, ends_at = _whole_second(starts_at), _whole_second(ends_at)
    _check_term(starts_at, ends_at)
    with transaction.atomic():
        _check_no_overlap(customer=_locked(customer), starts_at=starts_at, ends_at=ends_at)
        subscription = Subscription.objects.create(tenant=tenant, customer=customer, plan=plan,
                                                   starts_at=starts_at, ends_at=ends_at)
    plans_changed(tenant)
    return subscription


def subscription_update(*, subscription: Subscription, plan: RatePlan | None = None,
                        starts_at: datetime | None = None,
                        ends_at: datetime | None = _UNSET) -> Subscription:
    """Change a subscription's plan or term (`ends_at=None` makes it open-ended again)."""
    if plan is not None and plan.tenant_id != subscription.tenant_id:
        raise DomainError("The plan must belong to the tenant.", field="planCode")
    new_start = _whole_second(starts_at) if starts_at is not None else subscription.starts_at
    new_end = subscription.ends_at if ends_at is _UNSET else _whole_second(ends_at)
    _check_term(new_start, new_end)
    with transaction.atomic():
        _check_no_overlap(customer=_locked(subscription.customer), starts_at=new_start,
                          ends_at=new_end, excluding=subscription.pk)
        if plan is not None:
            subscription.plan = plan
        subscription.starts_at, subscription.ends_at = new_start, new_end
        subscription.save(update_fields=["plan", "starts_at", "ends_at"])
    plans_changed(subscription.tenant)
    return subscription


def subscription_end(*, subscription: Subscription, at: datetime) -> Subscription:
    """End a subscription at `at` (events from then on rate zero unless another plan starts)."""
    at = _whole_second(at)
    if at <= subscription.starts_at:
        raise Conflict(f"The subscription starts {_fmt_moment(subscription.starts_at)}; it can "
                       "only end after that. Delete it instead if it should never start.",
                       field="endsAt", code="invalid_state")
    if subscription.ends_at is not None and subscription.ends_at <= at:
        raise Conflict(f"The subscription already ends {_fmt_moment(subscription.ends_at)}; "
                       "update its endsAt to move the end later.",
                       field="endsAt", code="invalid_state")
    return subscription_update(subscription=subscription, ends_at=at)


def subscription_change_plan(*, subscription: Subscription, plan: RatePlan,
                             at: datetime) -> Subscription:
    """Move a customer to another plan from `at`: this subscription ends at `at` and a new one
    on `plan` starts there, keeping the old term's end. One transaction, so no event falls in a
    gap between the two."""
    if plan.tenant_id != subscription.tenant_id:
        raise DomainError("The plan must belong to the tenant.", field="planCode")
    if plan.pk == subscription.plan_id:
        raise DomainError(f"The customer is already on plan {plan.code!r}.", field="planCode")
    at = _whole_second(at)
    in_force = subscription.starts_at < at and (subscription.ends_at is None
                                                or at < subscription.ends_at)
    if not in_force:
        raise Conflict(f"The subscription is not in force at {_fmt_moment(at)} (it runs from "
                       f"{_fmt_moment(subscription.starts_at)} until "
                       f"{_fmt_moment(subscription.ends_at)}); change the plan of one that is, "
                       "or edit this one's plan directly.", field="at", code="invalid_state")
    with transaction.atomic():
        _locked(subscription.customer)
        old_end = subscription.ends_at
        subscription.ends_at = at
        subscription.save(update_fields=["ends_at"])
        successor = Subscription.objects.create(
            tenant=subscription.tenant, customer=subscription.customer, plan=plan,
            starts_at=at, ends_at=old_end)
    plans_changed(subscription.tenant)
    return successor


def subscription_delete(*, subscription: Subscription, now: datetime) -> None:
    """Delete a subscription that has not started (a mistake undone); one that has started is
    history that invoices are made from: end it instead (409)."""
    if subscription.starts_at <= now:
        raise Conflict("The subscription has started, and invoices are made from it; end it "
                       "instead of deleting it.", code="invalid_state")
    tenant = subscription.tenant
    subscription.delete()
    plans_changed(tenant)


# --- invoices -------------------------------------------------------------------------------

@dataclass(frozen=True)
class LineSpec:
    line_id: str
    product_id: str
    amount_usd: Decimal
    unit: Unit | str
    description: str = ""
    quantity: Decimal | None = None


def _same_content(invoice: Invoice, customer_id: str, period_start: datetime,
                  period_end: datetime, lines: Sequence[LineSpec]) -> bool:
    held = {(ln.line_id, ln.product_id, ln.amount_usd, ln.unit) for ln in invoice.lines.all()}
    wanted = {(ln.line_id, ln.product_id, Decimal(ln.amount_usd), str(Unit(ln.unit)))
              for ln in lines}
    return (invoice.customer_id == customer_id and invoice.period_start == period_start
            and invoice.period_end == period_end and held == wanted)


def _validate(period_start: datetime, period_end: datetime, lines: Sequence[LineSpec]) -> None:
    if period_end <= period_start:
        raise DomainError("periodEnd must be after periodStart.", field="periodEnd")
    seen = set()
    for i, line in enumerate(lines):
        if line.line_id in seen:
            raise DomainError(f"lineId {line.line_id!r} appears twice.", field=f"lines.{i}.lineId")
        seen.add(line.line_id)
        if Decimal(line.amount_usd).as_tuple().exponent < -9:
            raise DomainError("amountUsd has more than 9 decimals.", field=f"lines.{i}.amountUsd")
        if abs(Decimal(line.amount_usd)) >= Decimal("1e9"):
            raise DomainError("amountUsd is too large.", field=f"lines.{i}.amountUsd")


def _reattribute(tenant: Tenant, invoice_id: str, trigger: str) -> None:
    """Reverse (and redo) an invoice's attribution at once; the nightly run heals a miss."""
    from billing.attribution import attribution_run

    try:
        attribution_run(tenant=tenant, trigger=trigger, invoice_ids=[invoice_id])
    except (DomainError, EventStoreError):
        log.warning("re-attribution of %s deferred to the next run", invoice_id, exc_info=True)


def invoice_import(*, tenant: Tenant, invoice_id: str, customer_id: str,
                   period_start: datetime, period_end: datetime, lines: Sequence[LineSpec],
                   source: InvoiceSource | str = InvoiceSource.API,
                   status: InvoiceStatus | str = InvoiceStatus.FINALIZED) -> Invoice:
    """Store an invoice (finalized unless told otherwise); re-importing one that changed voids
    the earlier version and re-attributes it at once. An identical re-import changes nothing.
    """
    _validate(period_start, period_end, lines)
    current = (Invoice.objects.filter(tenant=tenant, invoice_id=invoice_id)
               .order_by("-version").first())
    if current is not None and current.status == InvoiceStatus(status) and _same_content(
            current, customer_id, period_start, period_end, lines):
        return current
    now = datetime.now(timezone.utc)
    status = InvoiceStatus(status)
    with transaction.atomic():
        if current is not None and current.status == InvoiceStatus.DRAFT:
            current.lines.all().delete()
            invoice = current
            invoice.customer_id, invoice.status = customer_id, status
            invoice.period_start, invoice.period_end = period_start, period_end
        else:
            invoice = Invoice(tenant=tenant, invoice_id=invoice_id, customer_id=customer_id,
                              version=(current.version + 1) if current else 1,
                              period_start=period_start, period_end=period_end,
                              status=status, source=InvoiceSource(source))
        invoice.total_usd = sum((Decimal(ln.amount_usd) for ln in lines), Decimal(0))
        invoice.finalized_at = now if status == InvoiceStatus.FINALIZED else None
        invoice.save()
        InvoiceLine.objects.bulk_create([
            InvoiceLine(invoice=invoice, line_id=ln.line_id, product_id=ln.product_id,
                        amount_usd=Decimal(ln.amount_usd), unit=Unit(ln.unit),
                        description=ln.description[:500], quantity=ln.quantity)
            for ln in lines])
        superseded = current is not None and current.pk != invoice.pk
        if superseded and current.status != InvoiceStatus.VOID:
            current.status, current.voided_at = InvoiceStatus.VOID, now
            current.superseded_by = invoice
            current.save(update_fields=["status", "voided_at", "superseded_by"])
        catalog_register(tenant=tenant, customer_ids={customer_id},
                         products={ln.product_id: "" for ln in lines if ln.product_id})
    if superseded:
        _reattribute(tenant, invoice_id, "REIMPORT")
    return invoice


def invoice_finalize(*, invoice: Invoice) -> Invoice:
    if invoice.status != InvoiceStatus.DRAFT:
        raise Conflict(f"Only a DRAFT invoice can be finalized; this one is {invoice.status}.",
                       code="invalid_state")
    invoice.status, invoice.finalized_at = InvoiceStatus.FINALIZED, datetime.now(timezone.utc)
    invoice.save(update_fields=["status", "finalized_at"])
    return invoice


def invoice_void(*, invoice: Invoice) -> Invoice:
    """Void an invoice and reverse its attribution at once (the next run would otherwise)."""
    if invoice.status == InvoiceStatus.VOID:
        return invoice
    was_finalized = invoice.status == InvoiceStatus.FINALIZED
    invoice.status, invoice.voided_at = InvoiceStatus.VOID, datetime.now(timezone.utc)
    invoice.save(update_fields=["status", "voided_at"])
    if was_finalized:
        _reattribute(invoice.tenant, invoice.invoice_id, "VOID")
    return invoice


def cents_to_usd(cents: int | str) -> Decimal:
    """Stripe's integer cents as exact dollars."""
    if isinstance(cents, bool) or not isinstance(cents, (int, str)):
        raise DomainError("Stripe amounts must be integer cents.")
    return (Decimal(cents) / 100).quantize(CENT)


def money_round(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)
