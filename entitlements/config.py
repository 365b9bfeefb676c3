"""A tenant's entitlements, wallets and lots as small frozen values, built once per process and
rebuilt when any of them changes anywhere (a version counter in the cache)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from aforo.models import Tenant
from aforo.money import to_nanos
from aforo.shared_cache import VersionedMemo


@dataclass(frozen=True)
class EntitlementRule:
    id: int
    customer_id: str
    feature: str
    product_id: str
    model: str
    period: str
    limit: Decimal
    warn_at_pct: Decimal
    overage: str
    grace_pct: Decimal
    downgrade_model: str


@dataclass(frozen=True)
class BurnRate:
    feature: str
    product_id: str
    model: str
    credits_per_unit: Decimal

    @property
    def specificity(self) -> int:
        """Model over product over any."""
        return 2 if self.model else 1 if self.product_id else 0


@dataclass(frozen=True)
class Lot:
    """Credits that count from `start` (and, granted ones with an expiry, until `end`)."""

    lot_id: str
    start: datetime
    end: datetime | None
    amount: int  # nano-credits
    expiry_written: bool = False


@dataclass(frozen=True)
class WalletRule:
    id: int
    ledger_id: str
    customer_id: str
    name: str
    priority: int
    credit_value_usd: Decimal
    burn_rates: tuple[BurnRate, ...]
    lots: tuple[Lot, ...]
    # what each batch's evaluation reads, here so it costs no database read per wallet
    recurring_top_ups: tuple[dict, ...] = ()
    low_balance_credits: Decimal | None = None


@dataclass(frozen=True)
class CreditConfig:
    entitlements: dict[str, tuple[EntitlementRule, ...]]  # by customer
    wallets: dict[str, tuple[WalletRule, ...]]            # by customer, priority order


def burn_rates_parse(raw: list[dict]) -> tuple[BurnRate, ...]:
    return tuple(BurnRate(r["feature"], r.get("productId") or "", r.get("model") or "",
                          Decimal(str(r["creditsPerUnit"]))) for r in raw or [])


def lots_of(top_up) -> list[Lot]:
    out = []
    if top_up.paid_credits:
        out.append(Lot(f"t{top_up.pk}p", top_up.recorded_at, None,
                       to_nanos(top_up.paid_credits)))
    if top_up.granted_credits:
        out.append(Lot(f"t{top_up.pk}g", top_up.recorded_at, top_up.expires_at,
                       to_nanos(top_up.granted_credits), top_up.expiry_written))
    return out


def config_build(tenant: Tenant) -> CreditConfig:
    from entitlements.models import Entitlement, TopUp, Wallet

    ents: dict[str, list[EntitlementRule]] = {}
    for e in Entitlement.objects.filter(tenant=tenant):
        ents.setdefault(e.customer_id, []).append(EntitlementRule(
            e.pk, e.customer_id, e.feature, e.product_id, e.model, e.period, e.limit,
            e.warn_at_pct, e.overage, e.grace_pct, e.downgrade_model))
    lots: dict[int, list[Lot]] = {}
    for top_up in TopUp.objects.filter(tenant=tenant):
        lots.setdefault(top_up.wallet_id, []).extend(lots_of(top_up))
    wallets: dict[str, list[WalletRule]] = {}
    for w in Wallet.objects.filter(tenant=tenant).order_by("priority", "id"):
        wallets.setdefault(w.customer_id, []).append(WalletRule(
            w.pk, w.ledger_id, w.customer_id, w.name, w.priority, w.credit_value_usd,
            burn_rates_parse(w.burn_rates), tuple(lots.get(w.pk, ())),
            tuple(w.recurring_top_ups or ()), w.low_balance_credits))
    return CreditConfig({k: tuple(v) for k, v in ents.items()},
                        {k: tuple(v) for k, v in wallets.items()})


_configs: VersionedMemo[CreditConfig] = VersionedMemo("credit-config", config_build)


def credit_config(tenant: Tenant) -> CreditConfig:
    return _configs.get(tenant)


def credit_config_changed(tenant: Tenant) -> None:
    _configs.changed(tenant.pk)
