"""Reads: entitlements with their usage, wallets with their balances, transactions, in the
API's shape (the console renders the same dicts)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aforo.models import Tenant
from aforo.money import from_nanos, pct
from entitlements.config import credit_config
from entitlements.ledger import wallet_entries, wallet_sums
from entitlements.models import Entitlement, TopUp, Wallet
from entitlements.state import wallet_balances
from entitlements.usage import FOREVER, usages


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def entitlements_json(tenant: Tenant, entitlements: list[Entitlement],
                      now: datetime) -> list[dict[str, Any]]:
    config = credit_config(tenant)
    wanted = {e.pk for e in entitlements}
    rules = [r for rs in config.entitlements.values() for r in rs if r.id in wanted]
    by_id = {u.rule.id: u for u in usages(tenant.slug, tenant.time_zone, rules, now)}
    out = []
    for e in entitlements:
        u = by_id.get(e.pk)
        out.append({
            "id": e.pk, "customerId": e.customer_id, "feature": e.feature,
            "productId": e.product_id or None, "model": e.model or None, "period": e.period,
            "limit": e.limit, "warnAtPct": pct(e.warn_at_pct), "overage": e.overage,
            "gracePct": pct(e.grace_pct), "downgradeModel": e.downgrade_model or None,
            "usage": u.usage if u else Decimal(0),
            "remaining": u.remaining if u else e.limit,
            "overageUsage": u.overage if u else Decimal(0),
            "usedPct": pct(u.used_pct) if u and u.used_pct is not None else None,
            "periodStart": _iso(u.period_start) if u else None,
            "periodEnd": _iso(u.period_end) if u and u.period_end < FOREVER else None,
            "projectedUsage": u.projected if u else Decimal(0),
            "status": u.status if u else "OK",
        })
    return out


def wallets_json(tenant: Tenant, wallets: list[Wallet], now: datetime) -> list[dict[str, Any]]:
    config = credit_config(tenant)
    wanted = {w.pk for w in wallets}
    rules = [r for rs in config.wallets.values() for r in rs if r.id in wanted]
    balances = wallet_balances(tenant.slug, rules, now) if rules else {}
    sums = wallet_sums(tenant.slug, [w.ledger_id for w in wallets])
    out = []
    for w in wallets:
        b = balances.get(w.ledger_id)
        s = sums.get(w.ledger_id)
        expired = sum(b.expired.values()) if b else 0
        out.append({
            "id": w.pk, "customerId": w.customer_id, "name": w.name,
            "creditValueUsd": w.credit_value_usd, "priority": w.priority,
            "burnRates": [{"feature": r["feature"], "productId": r.get("productId"),
                           "model": r.get("model"),
                           "creditsPerUnit": Decimal(r["creditsPerUnit"])}
                          for r in w.burn_rates],
            "recurringTopUps": [{**r, "credits": Decimal(r["credits"]),
                                 "thresholdCredits": Decimal(r["thresholdCredits"])
                                 if r.get("thresholdCredits") is not None else None}
                                for r in w.recurring_top_ups],
            "lowBalanceCredits": w.low_balance_credits,
            "balanceCredits": from_nanos(b.balance) if b else Decimal(0),
            "consumedCredits": from_nanos(b.consumed) if b else Decimal(0),
            "grantedCredits": from_nanos(b.granted) if b else Decimal(0),
            "paidCredits": from_nanos(b.paid) if b else Decimal(0),
            "expiredCredits": from_nanos(expired),
            "lastEventAt": _iso(s.last_debit_at) if s else None,
        })
    return out


def event_url(customer_id: str, occurred_at: datetime, time_zone: str) -> str:
    """Where the console shows an event in the ledger: the Transactions tab for its customer
    on its day (the row carries `data-event-id`)."""
    day = occurred_at.astimezone(ZoneInfo(time_zone)).date().isoformat()
    return "/console/cogs/transactions/?" + urlencode(
        {"customerId": customer_id, "from": day, "to": day})


def wallet_transactions(wallet: Wallet, *, offset: int, limit: int,
                        ) -> tuple[int, list[dict[str, Any]]]:
    total, rows = wallet_entries(wallet.tenant.slug, wallet.ledger_id, offset=offset,
                                 limit=limit)
    return total, [{
        "entryId": r["entry_id"], "entryType": r["entry_type"],
        "credits": from_nanos(r["credits_nano"]), "eventId": r["event_id"] or None,
        "eventUrl": event_url(wallet.customer_id, r["occurred_at"], wallet.tenant.time_zone)
        if r["event_id"] else None,
        "occurredAt": _iso(r["occurred_at"]), "recordedAt": _iso(r["recorded_at"]),
    } for r in rows]


def top_up_json(top_up: TopUp, created: bool) -> dict[str, Any]:
    return {"id": top_up.pk, "paidCredits": top_up.paid_credits,
            "grantedCredits": top_up.granted_credits, "expiresAt": _iso(top_up.expires_at),
            "idempotencyKey": top_up.idempotency_key, "source": top_up.source,
            "recordedAt": _iso(top_up.recorded_at), "created": created}
