"""Writes: entitlements, wallets, top-ups (manual, recurring by interval or threshold), grant
expiry, and the alerts entitlements and wallets fire."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from aforo.errors import DomainError
from aforo.models import Tenant
from aforo.money import from_nanos, to_nanos
from budgets.services import source_alerts_fire
from entitlements.burn import expected_at_ingest, feature_units
from entitlements.config import (
    CreditConfig,
    EntitlementRule,
    credit_config,
    credit_config_changed,
    lots_of,
)
from entitlements.ledger import credit_entries_append, credit_entry
from entitlements.models import FEATURES, Entitlement, TopUp, Wallet
from entitlements.state import credits_publish, wallet_balances, wallet_left
from entitlements.usage import HUNDRED
from ingestion.models import ModelPrice

log = logging.getLogger(__name__)
ZERO = Decimal(0)
INTERVALS = {"DAILY": timedelta(days=1), "WEEKLY": timedelta(days=7),
             "MONTHLY": timedelta(days=30)}
EXPIRY_DELAY = timedelta(seconds=5)  # a batch stamped before a grant's second may still land


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _changed(tenant: Tenant, customer_ids: set[str]) -> None:
    credit_config_changed(tenant)
    credits_publish(tenant, customer_ids)


# --- entitlements ---------------------------------------------------------------------------

def _check_entitlement(values: dict[str, Any]) -> None:
    if not values.get("customer_id"):
        raise DomainError("An entitlement belongs to a customer.", field="customer_id")
    if values.get("feature") not in FEATURES:
        raise DomainError(f"feature must be one of {', '.join(FEATURES)}.", field="feature")
    if values.get("limit") is None or values["limit"] < 0:
        raise DomainError("The limit must be zero or more.", field="limit")
    if not ZERO <= values.get("warn_at_pct", Decimal(80)) <= HUNDRED:
        raise DomainError("warnAtPct is a percentage from 0 to 100.", field="warn_at_pct")
    if values.get("grace_pct", ZERO) < 0:
        raise DomainError("gracePct must be zero or more.", field="grace_pct")


FIELDS = ("customer_id", "feature", "product_id", "model", "period", "limit", "warn_at_pct",
          "overage", "grace_pct", "downgrade_model")


def entitlement_create(*, tenant: Tenant, customer_id: str, feature: str, limit: Decimal,
                       period: str = "MONTHLY", product_id: str = "", model: str = "",
                       warn_at_pct: Decimal = Decimal(80), overage: str = "BLOCK",
                       grace_pct: Decimal = ZERO, downgrade_model: str = "") -> Entitlement:
    values = dict(customer_id=customer_id, feature=feature, limit=limit, period=period,
                  product_id=product_id or "", model=model or "", warn_at_pct=warn_at_pct,
                  overage=overage, grace_pct=grace_pct, downgrade_model=downgrade_model or "")
    _check_entitlement(values)
    entitlement = Entitlement.objects.create(tenant=tenant, **values)
    _changed(tenant, {customer_id})
    return entitlement


def entitlement_update(*, entitlement: Entitlement, **changes: Any) -> Entitlement:
    old_customer = entitlement.customer_id
    values = {f: getattr(entitlement, f) for f in FIELDS}
    values.update({k: (v if v is not None else "") for k, v in changes.items()})
    _check_entitlement(values)
    for key, value in values.items():
        setattr(entitlement, key, value)
    entitlement.save()
    _changed(entitlement.tenant, {old_customer, entitlement.customer_id})
    return entitlement


def entitlement_delete(*, entitlement: Entitlement) -> None:
    tenant, customer = entitlement.tenant, entitlement.customer_id
    entitlement.delete()
    _changed(tenant, {customer})


# --- wallets --------------------------------------------------------------------------------

def _priced(tenant: Tenant, model: str) -> bool:
    return ModelPrice.objects.filter(Q(tenant=tenant) | Q(tenant__isnull=True),
                                     model=model).exists()


def _check_wallet(tenant: Tenant, values: dict[str, Any]) -> list[dict[str, str]]:
    """Refuse what cannot work; return warnings for what is accepted but looks wrong."""
    if not values.get("customer_id"):
        raise DomainError("A wallet belongs to a customer.", field="customer_id")
    if values.get("credit_value_usd") is None or values["credit_value_usd"] <= 0:
        raise DomainError("creditValueUsd must be more than zero.", field="credit_value_usd")
    if values.get("priority", 1) < 1:
        raise DomainError("priority starts at 1 (first).", field="priority")
    warnings = []
    for i, rate in enumerate(values.get("burn_rates") or []):
        if rate.get("feature") not in FEATURES:
            raise DomainError(f"feature must be one of {', '.join(FEATURES)}.",
                              field=f"burnRates.{i}.feature")
        try:
            per_unit = Decimal(str(rate.get("creditsPerUnit")))
        except Exception:
            per_unit = Decimal(-1)
        if not per_unit.is_finite() or per_unit < 0:
            raise DomainError("creditsPerUnit must be a number, zero or more.",
                              field=f"burnRates.{i}.creditsPerUnit")
        rate["creditsPerUnit"] = str(per_unit)
        if rate.get("model") and not _priced(tenant, rate["model"]):
            warnings.append({"field": f"burnRates.{i}.model",
                             "message": f"No price for model {rate['model']!r} on the rate "
                                        "card; the rate is kept."})
    for i, rule in enumerate(values.get("recurring_top_ups") or []):
        if rule.get("trigger") not in ("INTERVAL", "THRESHOLD"):
            raise DomainError("trigger is INTERVAL or THRESHOLD.",
                              field=f"recurringTopUps.{i}.trigger")
        if rule.get("method", "FIXED") not in ("FIXED", "TARGET"):
            raise DomainError("method is FIXED or TARGET.", field=f"recurringTopUps.{i}.method")
        if rule["trigger"] == "INTERVAL" and rule.get("interval") not in INTERVALS:
            raise DomainError(f"interval is one of {', '.join(INTERVALS)}.",
                              field=f"recurringTopUps.{i}.interval")
        if rule["trigger"] == "THRESHOLD" and rule.get("thresholdCredits") is None:
            raise DomainError("A THRESHOLD top-up needs thresholdCredits.",
                              field=f"recurringTopUps.{i}.thresholdCredits")
        try:
            credits = Decimal(str(rule.get("credits")))
        except Exception:
            credits = Decimal(-1)
        if not credits.is_finite() or credits <= 0:
            raise DomainError("credits must be more than zero.",
                              field=f"recurringTopUps.{i}.credits")
        rule["credits"] = str(credits)
        rule.setdefault("method", "FIXED")
        if rule.get("thresholdCredits") is not None:
            rule["thresholdCredits"] = str(Decimal(str(rule["thresholdCredits"])))
    return warnings


WALLET_FIELDS = ("customer_id", "name", "credit_value_usd", "priority", "burn_rates",
                 "recurring_top_ups", "low_balance_credits")


def wallet_create(*, tenant: Tenant, customer_id: str, name: str, credit_value_usd: Decimal,
                  priority: int = 1, burn_rates: list | None = None,
                  recurring_top_ups: list | None = None,
                  low_balance_credits: Decimal | None = None,
                  ) -> tuple[Wallet, list[dict[str, str]]]:
    values = dict(customer_id=customer_id, name=name, credit_value_usd=credit_value_usd,
                  priority=priority, burn_rates=list(burn_rates or []),
                  recurring_top_ups=list(recurring_top_ups or []),
                  low_balance_credits=low_balance_credits)
    warnings = _check_wallet(tenant, values)
    wallet = Wallet.objects.create(tenant=tenant, **values)
    _changed(tenant, {customer_id})
    return wallet, warnings


def wallet_update(*, wallet: Wallet, **changes: Any) -> tuple[Wallet, list[dict[str, str]]]:
    old_customer = wallet.customer_id
    values = {f: getattr(wallet, f) for f in WALLET_FIELDS}
    values.update(changes)
    warnings = _check_wallet(wallet.tenant, values)
    for key, value in values.items():
        setattr(wallet, key, value)
    wallet.save()
    _changed(wallet.tenant, {old_customer, wallet.customer_id})
    return wallet, warnings


def wallet_delete(*, wallet: Wallet) -> None:
    tenant, customer = wallet.tenant, wallet.customer_id
    wallet.delete()
    _changed(tenant, {customer})


# --- top-ups --------------------------------------------------------------------------------

def top_up_create(*, wallet: Wallet, paid_credits: Decimal = ZERO,
                  granted_credits: Decimal = ZERO, expires_at: datetime | None = None,
                  idempotency_key: str, source: str = "MANUAL",
                  now: datetime | None = None, publish: bool = True) -> tuple[TopUp, bool]:
    """Add a lot of credits; (the top-up, whether it is new). The same idempotency key again
    returns the first top-up and writes nothing."""
    now = (now or _now()).replace(microsecond=0)
    if paid_credits < 0:
        raise DomainError("paidCredits must be zero or more.", field="paid_credits")
    if granted_credits < 0:
        raise DomainError("grantedCredits must be zero or more.", field="granted_credits")
    if not paid_credits and not granted_credits:
        raise DomainError("A top-up adds paid or granted credits.", field="paid_credits")
    if expires_at is not None and expires_at <= now:
        raise DomainError("expiresAt must be in the future.", field="expires_at")
    if not idempotency_key:
        raise DomainError("A top-up needs an idempotencyKey.", field="idempotency_key")
    existing = TopUp.objects.filter(wallet=wallet, idempotency_key=idempotency_key).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            top_up = TopUp.objects.create(
                tenant=wallet.tenant, wallet=wallet, paid_credits=paid_credits,
                granted_credits=granted_credits, expires_at=expires_at,
                idempotency_key=idempotency_key, source=source, recorded_at=now)
            # inside the transaction: a failed write to the credit ledger keeps no top-up
            credit_entries_append([credit_entry(
                tenant_id=wallet.tenant.slug, wallet_id=wallet.ledger_id,
                entry_id=lot.lot_id, entry_type="GRANT" if lot.lot_id.endswith("g") else "TOPUP",
                credits_nano=lot.amount, recorded_at=now, customer_id=wallet.customer_id,
                lot_id=lot.lot_id) for lot in lots_of(top_up)])
    except IntegrityError:  # the same key at the same moment elsewhere: that one counts
        return TopUp.objects.get(wallet=wallet, idempotency_key=idempotency_key), False
    if publish:
        _changed(wallet.tenant, {wallet.customer_id})
    return top_up, True


def _recurring_credits(rule: dict[str, Any], balance: Decimal) -> Decimal:
    credits = Decimal(rule["credits"])
    if rule.get("method") == "TARGET":  # top up to `credits`
        return max(ZERO, credits - balance)
    return credits


def thresholds_top_up(*, tenant: Tenant, config: CreditConfig, states: dict[str, dict],
                      now: datetime) -> int:
    """Top up every wallet under one of its THRESHOLD rules, once per crossing: the key is the
    rule and the wallet's last top-up in the snapshot the balance was computed from, so
    evaluators that race on the same snapshot all try the same key and the unique index keeps
    one; a later snapshot holds the new top-up, and its balance is over the threshold."""
    made = 0
    for customer, state in states.items():
        for rule_wallet in config.wallets.get(customer, ()):
            balance = from_nanos(state["w"].get(rule_wallet.ledger_id, 0))
            wallet = None
            for i, rule in enumerate(rule_wallet.recurring_top_ups):
                if rule.get("trigger") != "THRESHOLD":
                    continue
                if balance >= Decimal(rule["thresholdCredits"]):
                    continue
                wallet = wallet or Wallet.objects.get(pk=rule_wallet.id)
                last = max((int(lot.lot_id[1:-1]) for lot in rule_wallet.lots), default=0)
                made += _threshold_fire(wallet, i, rule, balance, now, after=last)
    return made


def _threshold_fire(wallet: Wallet, index: int, rule: dict, balance: Decimal,
                    now: datetime, *, after: int) -> int:
    credits = _recurring_credits(rule, balance)
    if credits <= 0:
        return 0
    key = f"threshold:{index}:after:{after}"
    _top_up, new = top_up_create(wallet=wallet, paid_credits=credits, idempotency_key=key,
                                 source="THRESHOLD", now=now, publish=False)
    if new:
        credit_config_changed(wallet.tenant)
    return int(new)


def intervals_top_up(*, now: datetime | None = None) -> int:
    """INTERVAL rules: one top-up per wallet, rule and interval (the key names the interval)."""
    now = now or _now()
    made = 0
    for wallet in Wallet.objects.select_related("tenant").exclude(recurring_top_ups=[]):
        for i, rule in enumerate(wallet.recurring_top_ups):
            if rule.get("trigger") != "INTERVAL":
                continue
            length = INTERVALS[rule["interval"]]
            epoch = datetime(2000, 1, 1, tzinfo=timezone.utc)
            n = int((now - epoch) / length)
            balance = wallet_balance(wallet, now=now)
            credits = _recurring_credits(rule, balance)
            if credits > 0:
                _t, new = top_up_create(wallet=wallet, paid_credits=credits,
                                        idempotency_key=f"interval:{i}:{n}", source="INTERVAL",
                                        now=now)
                made += int(new)
    return made


def wallet_balance(wallet: Wallet, *, now: datetime | None = None) -> Decimal:
    config = credit_config(wallet.tenant)
    rules = [w for w in config.wallets.get(wallet.customer_id, ()) if w.id == wallet.pk]
    if not rules:
        return ZERO
    return from_nanos(wallet_balances(wallet.tenant.slug, rules, now or _now())[
        wallet.ledger_id].balance)


def expiries_write(*, now: datetime | None = None, tenant: Tenant | None = None) -> int:
    """Write an EXPIRY entry, at its grant's second, for what is left of each expired grant."""
    now = now or _now()
    due = TopUp.objects.select_related("wallet", "tenant").filter(
        expiry_written=False, expires_at__lte=now - EXPIRY_DELAY, granted_credits__gt=0)
    if tenant is not None:
        due = due.filter(tenant=tenant)
    written = 0
    for top_up in due:
        wallet = top_up.wallet
        config = credit_config(top_up.tenant)
        rules = [w for w in config.wallets.get(wallet.customer_id, ()) if w.id == wallet.pk]
        if not rules:
            continue
        balance = wallet_balances(top_up.tenant.slug, rules, now)[wallet.ledger_id]
        left = balance.expired.get(f"t{top_up.pk}g", 0)
        if left > 0:
            credit_entries_append([credit_entry(
                tenant_id=top_up.tenant.slug, wallet_id=wallet.ledger_id,
                entry_id=f"t{top_up.pk}g#expiry", entry_type="EXPIRY", credits_nano=-left,
                recorded_at=top_up.expires_at, customer_id=wallet.customer_id,
                lot_id=f"t{top_up.pk}g")])
        TopUp.objects.filter(pk=top_up.pk).update(expiry_written=True)
        _changed(top_up.tenant, {wallet.customer_id})
        written += 1
    return written


def credits_refresh(*, tenant: Tenant | None = None) -> int:
    """Publish every customer with an entitlement or a wallet (the mirror's periodic refresh:
    periods roll over, a cold cache fills)."""
    tenants = [tenant] if tenant else list(Tenant.objects.filter(
        pk__in=set(Entitlement.objects.values_list("tenant_id", flat=True))
        | set(Wallet.objects.values_list("tenant_id", flat=True))))
    count = 0
    for t in tenants:
        config = credit_config(t)
        customers = set(config.entitlements) | set(config.wallets)
        if customers:
            credits_publish(t, customers, config=config)
            count += len(customers)
    return count


# --- alerts ---------------------------------------------------------------------------------

LEVEL_TITLES = {"WARNING": "at its warning level", "EXCEEDED": "at 100% of its limit",
                "PROJECTED_120": "projected at 120% of its limit"}


SOURCE_EVENTS_MAX = 20  # event ids an alert names: the crossing one first, then the batch's


def _named(crossing: str | None, ids: list[str]) -> list[str]:
    """The ids an alert names: the crossing event first (the batch's last when none is known
    to have crossed), then the others, capped."""
    crossing = crossing or (ids[-1] if ids else None)
    if crossing is None:
        return []
    return [crossing, *[i for i in ids if i != crossing]][:SOURCE_EVENTS_MAX]


def _entitlement_events(rule: EntitlementRule, rows: list[dict[str, Any]], usage: Decimal,
                        at_usage: Decimal, start: float, end: float) -> list[str]:
    """The batch's events that count toward the entitlement, the one at which its usage
    reached `at_usage` first: the usage before the batch is `usage` less theirs, and the events
    add up in the batch's order."""
    counted = [r for r in rows if r["customer_id"] == rule.customer_id
               and (not rule.product_id or r["product_id"] == rule.product_id)
               and (not rule.model or r["model"] == rule.model)
               and start <= r["occurred_at"].timestamp() < end]
    units = [feature_units(r, rule.feature, expected_at_ingest(r, {})) for r in counted]
    running, crossing = usage - sum(units, ZERO), None
    for row, used in zip(counted, units, strict=True):
        running += used
        if running >= at_usage:
            crossing = row["event_id"]
            break
    return _named(crossing, [r["event_id"] for r in counted])


def _wallet_events(wallet_id: str, rows: list[dict[str, Any]], balance: int,
                   crossed) -> list[str]:
    """The batch's events that debited the wallet, the one whose debit crossed the mark first
    (the balance before the batch is the balance after plus the batch's debits)."""
    debits = [(r["event_id"], n) for r in rows
              for w, n in zip(r.get("credit_wallet_ids") or (), r.get("credit_debits_nano") or (),
                              strict=True) if w == wallet_id]
    running, crossing = balance + sum(n for _e, n in debits), None
    for event_id, nano in debits:
        running -= nano
        if crossed(running):
            crossing = event_id
            break
    return _named(crossing, [e for e, _n in debits])


def credit_alerts_fire(*, tenant: Tenant, config: CreditConfig, before: dict[str, dict],
                       states: dict[str, dict], now: datetime,
                       rows: list[dict[str, Any]] = ()) -> int:
    """Fire, through the ENTITLEMENT and WALLET alert rules, each level newly reached: once per
    entitlement, level and period; a wallet under its low-balance mark or at zero. Each alert
    names the events of the batch (`rows`) that crossed, the crossing one first."""
    fired = 0
    for customer, state in states.items():
        seen = {tuple(x[:3]) for x in before.get(customer, {}).get("lv", [])}
        rules = {r.id: r for r in config.entitlements.get(customer, ())}
        for ent_id, level, period_start, at_usage, period_end in state["lv"]:
            if (ent_id, level, period_start) in seen or ent_id not in rules:
                continue
            rule = rules[ent_id]
            as_json = next(e[7] for e in state["e"] if e[0] == ent_id)
            start = datetime.fromtimestamp(period_start, timezone.utc)
            usage = Decimal(str(as_json["usage"]))
            events = _entitlement_events(rule, list(rows), usage, at_usage, period_start,
                                         period_end)
            fired += len(source_alerts_fire(
                tenant=tenant, source="ENTITLEMENT",
                key=f"entitlement:{ent_id}:{level}:{start:%Y%m%d}",
                title=f"{customer} {rule.feature} entitlement {LEVEL_TITLES[level]} "
                      f"({as_json['usage']} of {as_json['limit']})"
                      + (f", crossed by event {events[0]}" if events else ""),
                value=usage, threshold=rule.limit, start=start, end=now,
                customer_id=customer, product_id=rule.product_id, now=now,
                source_event_ids=events))
        old_w = before.get(customer, {}).get("w", {})
        for wallet in config.wallets.get(customer, ()):
            balance = state["w"].get(wallet.ledger_id)
            if balance is None:
                continue
            marks = [("ZERO", 0)]
            if wallet.low_balance_credits is not None:
                marks.append(("LOW", to_nanos(wallet.low_balance_credits)))
            for name, mark in marks:
                was = old_w.get(wallet.ledger_id)
                crossed = ((lambda b, m=mark: b <= m) if name == "ZERO"
                           else (lambda b, m=mark: b < m))
                was_over = was is None or not crossed(was)
                if crossed(balance) and was_over:
                    events = _wallet_events(wallet.ledger_id, list(rows), balance, crossed)
                    fired += len(source_alerts_fire(
                        tenant=tenant, source="WALLET",
                        key=f"wallet:{wallet.id}:{name}:{int(now.timestamp())}",
                        title=f"{customer} wallet {wallet.name}: "
                              f"{'no credits left' if name == 'ZERO' else 'balance is low'} "
                              f"({from_nanos(balance)} credits)"
                              + (f", crossed by event {events[0]}" if events else ""),
                        value=from_nanos(balance), threshold=from_nanos(mark), start=now,
                        end=now, customer_id=customer, product_id="", now=now,
                        source_event_ids=events))
    return fired


def customer_credit_left(tenant: Tenant, customer_id: str) -> Decimal:
    """What the decision path holds as the customer's credits across wallets (tests, console)."""
    state = credits_publish(tenant, {customer_id})[customer_id]
    return from_nanos(wallet_left(state, _now().timestamp()))
