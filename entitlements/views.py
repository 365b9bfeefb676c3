"""Console tab Entitlements & Credits: per customer the entitlements with a burn-down bar and
projected use, the wallets with their balance and latest transactions (each debit linked to its
event in the ledger), and forms for an entitlement, a wallet and a top-up."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from aforo.console import console_form, current_membership, posted_decimal, tab_page
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


def _back(request: HttpRequest) -> HttpResponse:
    return redirect(reverse("console-entitlements"))


def _manager(request: HttpRequest) -> Tenant | None:
    if not _can_manage(request):
        messages.error(request, "Your role may view entitlements and wallets but not change "
                                "them.")
        return None
    return current_membership(request).tenant


@console_form("Entitlement not saved", tenant_of=_manager, back=_back)
def entitlement_save(request: HttpRequest, tenant: Tenant) -> str:
    services.entitlement_create(
        tenant=tenant, customer_id=request.POST.get("customer_id", "").strip(),
        feature=request.POST.get("feature", ""),
        limit=posted_decimal(request, "limit", "The limit", max_digits=38),
        period=request.POST.get("period", "MONTHLY"),
        product_id=request.POST.get("product_id", "").strip(),
        model=request.POST.get("model", "").strip(),
        warn_at_pct=posted_decimal(request, "warn_at_pct", "The warning percentage", "80"),
        overage=request.POST.get("overage", "BLOCK"),
        grace_pct=posted_decimal(request, "grace_pct", "The grace percentage", "0"),
        downgrade_model=request.POST.get("downgrade_model", "").strip())
    return "Entitlement saved."


@console_form("Wallet not saved", tenant_of=_manager, back=_back)
def wallet_save(request: HttpRequest, tenant: Tenant) -> str:
    rate = posted_decimal(request, "credits_per_unit", "Credits per unit", optional=True)
    burn_rates = [{"feature": request.POST.get("burn_feature", "TOKENS"),
                   "creditsPerUnit": str(rate)}] if rate is not None else []
    priority = posted_decimal(request, "priority", "The priority", "1")
    if priority != priority.to_integral_value():
        raise DomainError("The priority must be a whole number.", field="priority")
    wallet, warnings = services.wallet_create(
        tenant=tenant, customer_id=request.POST.get("customer_id", "").strip(),
        name=request.POST.get("name", "").strip() or "Prepaid",
        credit_value_usd=posted_decimal(request, "credit_value_usd", "The credit value"),
        priority=int(priority), burn_rates=burn_rates,
        low_balance_credits=posted_decimal(request, "low_balance_credits", "The low balance",
                                           optional=True, max_digits=38))
    for warning in warnings:
        messages.warning(request, warning["message"])
    return f"Wallet “{wallet.name}” saved."


@console_form("Top-up not added", tenant_of=_manager, back=_back)
def top_up_save(request: HttpRequest, tenant: Tenant, wallet_id: int) -> str:
    wallet = Wallet.objects.filter(tenant=tenant, pk=wallet_id).first()
    if wallet is None:
        raise DomainError("No such wallet.", field="wallet")
    raw_expiry = request.POST.get("expires_at", "").strip()
    expires_at = parse_datetime(raw_expiry) if raw_expiry else None
    if raw_expiry and expires_at is None:
        raise DomainError("The expiry is not a date and time.", field="expires_at")
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=timezone.utc)
    _top_up, created = services.top_up_create(
        wallet=wallet,
        paid_credits=posted_decimal(request, "paid_credits", "Paid credits", "0",
                                    max_digits=38),
        granted_credits=posted_decimal(request, "granted_credits", "Granted credits", "0",
                                       max_digits=38),
        expires_at=expires_at,
        idempotency_key=request.POST.get("idempotency_key", "") or uuid.uuid4().hex)
    return "Top-up added." if created else "That top-up was already added; nothing changed."
