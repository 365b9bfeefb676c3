"""Console tab Entitlements & Credits: per customer the entitlements with a burn-down bar and
projected use, the wallets with their balance and latest transactions (each debit linked to its
event in the ledger), and forms for an entitlement, a wallet and a top-up."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from aforo.console import current_membership, tab_page
from aforo.errors import DomainError
from aforo.models import Role, Tenant
from aforo.permissions import MANAGE_BUDGET_ROLES
from entitlements import queries, services
from entitlements.models import FEATURES, Entitlement, Wallet

TRANSACTIONS_SHOWN = 10


def _can_manage(request: HttpRequest) -> bool:
    membership = current_membership(request)
    return membership is not None and Role(membership.role) in MANAGE_BUDGET_ROLES


def _entitlements(request: HttpRequest, tenant: Tenant, chosen) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    ents = queries.entitlements_json(tenant, list(Entitlement.objects.filter(tenant=tenant)),
                                     now)
    wallets = queries.wallets_json(tenant, list(Wallet.objects.filter(tenant=tenant)), now)
    customers: dict[str, dict[str, list]] = {}
    for e in ents:
        used = e["usedPct"] if e["usedPct"] is not None else Decimal(0)
        projected = (e["projectedUsage"] / e["limit"] * 100) if e["limit"] else Decimal(0)
        customers.setdefault(e["customerId"], {"entitlements": [], "wallets": []})[
            "entitlements"].append({**e, "bar_pct": min(Decimal(100), used),
                                    "projected_pct": min(Decimal(100), projected)})
    for w in wallets:
        wallet = Wallet.objects.get(pk=w["id"])
        _total, rows = queries.wallet_transactions(wallet, offset=0, limit=TRANSACTIONS_SHOWN)
        customers.setdefault(w["customerId"], {"entitlements": [], "wallets": []})[
            "wallets"].append({**w, "transactions": rows})
    return {"customers": sorted(customers.items()), "features": FEATURES,
            "periods": Entitlement.Period.choices, "overages": Entitlement.Overage.choices,
            "can_manage": _can_manage(request), "new_key": uuid.uuid4().hex}


entitlements = tab_page("entitlements", _entitlements)


def _back() -> HttpResponse:
    return redirect(reverse("console-entitlements"))


def _manager(request: HttpRequest) -> Tenant | None:
    if not _can_manage(request):
        messages.error(request, "Your role may view entitlements and wallets but not change "
                                "them.")
        return None
    return current_membership(request).tenant


def _decimal(request: HttpRequest, name: str, field: str, default: str | None = None):
    raw = request.POST.get(name, "").strip() or default
    if raw is None:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise DomainError(f"{field} must be a number.", field=field) from None
    if not value.is_finite():
        raise DomainError(f"{field} must be a number.", field=field)
    return value


@login_required
@require_POST
def entitlement_save(request: HttpRequest) -> HttpResponse:
    tenant = _manager(request)
    if tenant is None:
        return _back()
    try:
        services.entitlement_create(
            tenant=tenant, customer_id=request.POST.get("customer_id", "").strip(),
            feature=request.POST.get("feature", ""),
            limit=_decimal(request, "limit", "limit"),
            period=request.POST.get("period", "MONTHLY"),
            product_id=request.POST.get("product_id", "").strip(),
            model=request.POST.get("model", "").strip(),
            warn_at_pct=_decimal(request, "warn_at_pct", "warnAtPct", "80"),
            overage=request.POST.get("overage", "BLOCK"),
            grace_pct=_decimal(request, "grace_pct", "gracePct", "0"),
            downgrade_model=request.POST.get("downgrade_model", "").strip())
        messages.success(request, "Entitlement saved.")
    except DomainError as exc:
        messages.error(request, f"Entitlement not saved ({exc.field}): {exc.message}")
    return _back()


@login_required
@require_POST
def wallet_save(request: HttpRequest) -> HttpResponse:
    tenant = _manager(request)
    if tenant is None:
        return _back()
    try:
        rate = _decimal(request, "credits_per_unit", "creditsPerUnit")
        burn_rates = [{"feature": request.POST.get("burn_feature", "TOKENS"),
                       "creditsPerUnit": str(rate)}] if rate is not None else []
        wallet, warnings = services.wallet_create(
            tenant=tenant, customer_id=request.POST.get("customer_id", "").strip(),
            name=request.POST.get("name", "").strip() or "Prepaid",
            credit_value_usd=_decimal(request, "credit_value_usd", "creditValueUsd"),
            priority=int(request.POST.get("priority") or 1), burn_rates=burn_rates,
            low_balance_credits=_decimal(request, "low_balance_credits", "lowBalanceCredits"))
        messages.success(request, f"Wallet “{wallet.name}” saved.")
        for warning in warnings:
            messages.warning(request, warning["message"])
    except (DomainError, ValueError) as exc:
        messages.error(request, f"Wallet not saved: {getattr(exc, 'message', exc)}")
    return _back()


@login_required
@require_POST
def top_up_save(request: HttpRequest, wallet_id: int) -> HttpResponse:
    tenant = _manager(request)
    if tenant is None:
        return _back()
    wallet = Wallet.objects.filter(tenant=tenant, pk=wallet_id).first()
    if wallet is None:
        messages.error(request, "No such wallet.")
        return _back()
    try:
        raw_expiry = request.POST.get("expires_at", "").strip()
        expires_at = parse_datetime(raw_expiry) if raw_expiry else None
        if raw_expiry and expires_at is None:
            raise DomainError("expiresAt is not a date and time.", field="expires_at")
        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=timezone.utc)
        _top_up, created = services.top_up_create(
            wallet=wallet, paid_credits=_decimal(request, "paid_credits", "paidCredits", "0"),
            granted_credits=_decimal(request, "granted_credits", "grantedCredits", "0"),
            expires_at=expires_at,
            idempotency_key=request.POST.get("idempotency_key", "") or uuid.uuid4().hex)
        messages.success(request, "Top-up added." if created else
                         "That top-up was already added; nothing changed.")
    except DomainError as exc:
        messages.error(request, f"Top-up not added ({exc.field}): {exc.message}")
    return _back()
