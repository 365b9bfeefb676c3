"""The demo tenant: 90 days of AI usage across tiers, products, providers and models."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction

from aforo import catalog
from aforo.ledger.query import LedgerQuery
from aforo.models import Customer, CustomerTier, Product, Role, Tenant
from aforo.money import NANO
from aforo.tenancy import IssuedToken, api_token_create, membership_set, tenant_create

DEMO_TENANT = "demo"
DEMO_USER = "demo"
DEMO_PASSWORD = "aforo-demo"

# provider, model, $ per 1M input tokens, $ per 1M output tokens
MODELS = [
    ("Anthropic", "claude-sonnet-4-6", "3", "15"),
    ("Anthropic", "claude-haiku-4-5", "1", "5"),
    ("Anthropic", "claude-opus-4-1", "15", "75"),
    ("OpenAI", "gpt-4o", "2.5", "10"),
    ("OpenAI", "gpt-4o-mini", "0.15", "0.6"),
    ("OpenAI", "o3", "2", "8"),
    ("Google", "gemini-2.5-pro", "1.25", "10"),
    ("Google", "gemini-2.5-flash", "0.3", "2.5"),
    ("AWS Bedrock", "amazon.nova-pro-v1", "0.8", "3.2"),
    ("AWS Bedrock", "amazon.nova-lite-v1", "0.06", "0.24"),
    ("AWS Bedrock", "meta.llama3-70b-instruct", "2.65", "3.5"),
    ("OpenAI", "text-embedding-3-small", "0.02", "0.02"),
]
# product id, type, $ charged per event, the models it calls
PRODUCTS = [
    ("prod_translation", "API_WITH_AI", "0.02", [0, 1, 4]),
    ("prod_support_agent", "AI_AGENT", "0.09", [0, 2, 3, 5]),
    ("prod_summarizer", "AI_FEATURE", "0.008", [1, 4, 7]),
    ("prod_code_review", "AI_AGENT", "0.12", [0, 2, 5, 6]),
    ("prod_search", "API_WITH_AI", "0.002", [11, 9, 7]),
    ("prod_docs_qa", "AI_FEATURE", "0.015", [3, 6, 8, 10]),
    ("prod_vision", "API_WITH_AI", "0.03", [6, 3, 8]),
]
TIER_PRICE_MULTIPLIER = {"FREE": Decimal("0.6"), "PRO": Decimal("1.2"),
                         "ENTERPRISE": Decimal("2.2")}
LEGACY_MULTIPLIER = Decimal("0.12")
SOURCE_TYPES = ["GATEWAY", "SDK", "AGENT", "BATCH"]
# Two customers outside Aforo's plans: one billed in Stripe (its invoices imported every closed
# month, its current month estimated from the last one), one whose events carry their price.
STRIPE_CUSTOMER = "cust_007"
CARRIED_CUSTOMER = "cust_011"
STRIPE_MARKUP = Decimal("1.8")  # the Stripe customer pays 1.8 × its COGS, per token


@dataclass(frozen=True)
class DemoCredentials:
    tenant: Tenant
    username: str
    password: str
    token: IssuedToken


def demo_tenant_ensure(slug: str = DEMO_TENANT) -> DemoCredentials:
    """The demo tenant, its owner login and a fresh API token (old demo tokens are revoked)."""
    from django.utils import timezone as dj_timezone

    with transaction.atomic():
        tenant = Tenant.objects.filter(slug=slug).first() or tenant_create(
            slug=slug, name="Demo Co")
        user, created = get_user_model().objects.get_or_create(username=DEMO_USER)
        if created or not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            user.is_staff = True
            user.is_superuser = True
            user.save()
        membership_set(tenant=tenant, user=user, role=Role.OWNER)
        tenant.api_tokens.filter(name="demo", revoked_at__isnull=True).update(
            revoked_at=dj_timezone.now())
        token = api_token_create(tenant=tenant, role=Role.OWNER, name="demo")
    return DemoCredentials(tenant=tenant, username=DEMO_USER, password=DEMO_PASSWORD, token=token)


def demo_event_count(tenant: Tenant) -> int:
    return int(LedgerQuery(tenant.slug).measures("events").one()["events"] or 0)


def _customers(rng: random.Random, count: int) -> list[tuple[str, str, Decimal]]:
    """(customer id, tier, price multiplier); a few legacy-priced customers lose money."""
    out = []
    for i in range(count):
        tier = rng.choices(["FREE", "PRO", "ENTERPRISE"], weights=[3, 5, 2])[0]
        multiplier = TIER_PRICE_MULTIPLIER[tier]
        if i % 13 == 5:  # a legacy contract priced under cost
            multiplier = LEGACY_MULTIPLIER
        out.append((f"cust_{i:03d}", tier, multiplier))
    return out


def demo_rate_card(tenant: Tenant, *, start: datetime) -> None:
    """Prices for the demo's models, an infrastructure rule per product and a gateway fee."""
    from ingestion import prices
    from ingestion.models import GatewayFeeRule, InfraCostRule, ModelPrice

    if ModelPrice.objects.filter(tenant=tenant).exists():
        return
    for provider, model, in_price, out_price in MODELS:
        prices.model_price_create(
            tenant=tenant, provider=provider, model=model, effective_from=start,
            input_per_1m=Decimal(in_price), output_per_1m=Decimal(out_price),
            cached_input_per_1m=Decimal(in_price) / 10)
    if not InfraCostRule.objects.filter(tenant=tenant).exists():
        for pid, *_rest in PRODUCTS:
            prices.rule_create(kind=InfraCostRule, tenant=tenant, product_id=pid,
                               effective_from=start, per_event_usd=Decimal("0.0004"),
                               per_1k_tokens_usd=Decimal("0.0002"))
        prices.rule_create(kind=GatewayFeeRule, tenant=tenant, source_type="GATEWAY",
                           effective_from=start, per_call_usd=Decimal("0.0001"),
                           pct_of_ai_cost=Decimal("3"))


def demo_billing(tenant: Tenant, people, *, start: datetime) -> None:
    """A plan per tier, a legacy plan priced under cost, and everyone subscribed from `start`."""
    from billing.models import RatePlan
    from billing.services import ComponentSpec, rate_plan_create, subscription_create

    if RatePlan.objects.filter(tenant=tenant).exists():
        return
    plans = {
        "FREE": rate_plan_create(tenant=tenant, code="free", name="Free", components=[
            ComponentSpec(kind="PER_1K_TOKENS", unit_price=Decimal("0.011"))]),
        "PRO": rate_plan_create(tenant=tenant, code="pro", name="Pro", components=[
            ComponentSpec(kind="PER_EVENT", unit_price=Decimal("0.01")),
            ComponentSpec(kind="PER_1K_TOKENS", unit_price=Decimal("0.004")),
            ComponentSpec(kind="PER_TOOL_CALL", unit_price=Decimal("0.002"))]),
        "ENTERPRISE": rate_plan_create(tenant=tenant, code="enterprise", name="Enterprise",
                                       components=[
            ComponentSpec(kind="PER_EVENT", unit_price=Decimal("0.005")),
            ComponentSpec(kind="MARKUP_PCT", unit_price=Decimal("45"))]),
        "LEGACY": rate_plan_create(tenant=tenant, code="legacy-2023", name="Legacy 2023",
                                   components=[
            ComponentSpec(kind="PER_EVENT", unit_price=Decimal("0.002"))]),
    }
    customers = {c.external_id: c for c in Customer.objects.filter(tenant=tenant)}
    for cid, tier, multiplier in people:
        if cid in (STRIPE_CUSTOMER, CARRIED_CUSTOMER):
            continue
        plan = plans["LEGACY"] if multiplier == LEGACY_MULTIPLIER else plans[tier]
        subscription_create(tenant=tenant, customer=customers[cid], plan=plan, starts_at=start)


def stripe_invoice_payload(tenant: Tenant, customer_id: str, *, start: datetime,
                           end: datetime) -> dict | None:
    """The Stripe invoice (current API shape) the Stripe-billed demo customer got for a month:
    a metered line per product, priced per token at STRIPE_MARKUP × that product's COGS."""
    from billing.queries import usage_by_customer_product

    lines = []
    for row in usage_by_customer_product(tenant.slug, start=start, end=end,
                                         customer_ids=[customer_id]):
        tokens = int(row["input_tokens"]) + int(row["output_tokens"])
        cents = int((row["cogs_usd"] * STRIPE_MARKUP * 100).to_integral_value())
        if not tokens or not cents:
            continue
        lines.append({
            "id": f"il_{customer_id}_{start:%Y%m}_{row['product_id']}", "object": "line_item",
            "amount": cents, "currency": "usd", "quantity": tokens,
            "description": f"{tokens:,} × LLM tokens ({row['product_id']})",
            "metadata": {"aforo_product_id": row["product_id"], "aforo_unit": "TOKENS"},
            "period": {"start": int(start.timestamp()), "end": int(end.timestamp())},
            "pricing": {"type": "price_details", "price_details": {
                "price": "price_llm_tokens", "product": "prod_llm_tokens"}},
        })
    if not lines:
        return None
    total = sum(line["amount"] for line in lines)
    return {"id": f"in_{customer_id}_{start:%Y%m}", "object": "invoice", "status": "paid",
            "currency": "usd", "customer": f"cus_{customer_id}",
            "metadata": {"aforo_customer_id": customer_id},
            "period_start": int(start.timestamp()), "period_end": int(end.timestamp()),
            "subtotal": total, "total": total, "amount_paid": total,
            "lines": {"object": "list", "data": lines, "has_more": False}}


def demo_settle(tenant: Tenant, *, start: datetime, now: datetime,
                say: Callable[[str], None] = lambda _m: None) -> None:
    """Invoice every month closed before `now` (Aforo's plans, and the Stripe-billed customer's
    imported invoices) and attribute the revenue to its events; the current month stays
    settling: rated, carried, or estimated from the last invoice."""
    from billing.attribution import attribution_run
    from billing.invoicing import invoices_generate, month_bounds
    from billing.stripe import stripe_invoice_import

    month = start.replace(day=1, hour=0, minute=0, second=0)
    current = now.replace(day=1, hour=0, minute=0, second=0)
    while month < current:
        period_start, period_end = month_bounds(f"{month:%Y-%m}")
        invoices = invoices_generate(tenant=tenant, period_start=period_start,
                                     period_end=period_end)
        payload = stripe_invoice_payload(tenant, STRIPE_CUSTOMER, start=period_start,
                                         end=period_end)
        if payload is not None:
            stripe_invoice_import(tenant=tenant, payload=payload)
        say(f"Invoiced {month:%Y-%m}: {len(invoices)} invoices"
            f"{' and 1 imported from Stripe' if payload else ''}.")
        month = period_end
    run = attribution_run(tenant=tenant, trigger="DEMO")
    say(f"Attribution run: {run.lines_matched} invoice lines over {run.events:,} "
        "event allocations.")


def demo_guard(tenant: Tenant, *, now: datetime) -> int:
    """A tenant-wide Margin Guard policy in DRY_RUN, evaluated once for every customer, so the
    Margin Guard page shows who would be throttled or blocked; returns the scopes evaluated."""
    from margin_guard.models import GuardPolicy
    from margin_guard.services import guard_evaluate_scopes, guard_policy_create

    if not GuardPolicy.objects.filter(tenant=tenant).exists():
        guard_policy_create(
            tenant=tenant, name="Demo margin floors", scope=GuardPolicy.Scope.TENANT,
            mode=GuardPolicy.Mode.DRY_RUN, window=GuardPolicy.Window.WEEK, min_events=10,
            downgrade_map={"gpt-4o": "gpt-4o-mini", "claude-opus-4-1": "claude-sonnet-4-6",
                           "gemini-2.5-pro": "gemini-2.5-flash"},
            premium_features=["web_search", "claude-opus-4-1"])
    customers = set(Customer.objects.filter(tenant=tenant).values_list("external_id", flat=True))
    return len(guard_evaluate_scopes(tenant=tenant, scopes={(c, "") for c in customers},
                                     now=now))


STORY_CUSTOMER = "cust_northwind"


def demo_guard_story(tenant: Tenant, *, now: datetime) -> dict[str, int]:
    """The product page's story, with real figures: a FREE-tier policy in ENFORCE, and a FREE
    customer whose margin dropped to 8% six hours ago (throttled: gpt-4o calls downgraded to
    gpt-4o-mini, some rate-limited), recovered to 14%, past the floor and its buffer, an hour
    ago, and had full access restored; the impact report values the calls the throttle
    switched."""
    from margin_guard.counters import decision_count, decision_counts_flush
    from margin_guard.models import GuardPolicy
    from margin_guard.services import (
        guard_evaluate,
        guard_evaluations_wait,
        guard_policy_create,
        guard_settings_update,
    )

    if GuardPolicy.objects.filter(tenant=tenant, name="Free tier floors").exists():
        return {}
    if not Customer.objects.filter(tenant=tenant, external_id=STORY_CUSTOMER).exists():
        catalog.customer_create(tenant=tenant, external_id=STORY_CUSTOMER,
                                name="Northwind Labs", tier=CustomerTier.FREE)
    from ingestion.services import events_ingest_dicts

    dropped, switched = now - timedelta(hours=6), now - timedelta(hours=3)
    policy = guard_policy_create(
        tenant=tenant, name="Free tier floors", scope=GuardPolicy.Scope.TIER,
        tier=CustomerTier.FREE, mode=GuardPolicy.Mode.ENFORCE, alert_below_pct="12",
        throttle_below_pct="10", block_below_pct="5", recovery_buffer_pct="2",
        window=GuardPolicy.Window.DAY, min_events=10, throttle_rate_per_minute=30,
        downgrade_map={"gpt-4o": "gpt-4o-mini", "claude-opus-4-1": "claude-sonnet-4-6"},
        premium_features=["web_search", "claude-opus-4-1"], override_minutes=60)
    guard_settings_update(tenant=tenant, product_cost_usd_per_month=Decimal("499"))

    def call(n: int, at: datetime, **fields) -> dict:
        return {"eventId": f"evt_story_{n:03d}", "occurredAt": at.isoformat(),
                "customerId": STORY_CUSTOMER, "productId": "prod_support_agent",
                "productType": "AI_AGENT", "provider": "OpenAI", "sourceType": "SDK",
                "revenueUsd": "1.00", **fields}

    # 40 heavy gpt-4o calls at $0.92 each (as the gateway reports them) for $1.00: margin 8%,
    # below the 10% throttle floor
    events = [call(n, dropped - timedelta(minutes=40) + timedelta(minutes=n), model="gpt-4o",
                   aiCogsUsd="0.90", infraCogsUsd="0.02", feeCogsUsd="0")
              for n in range(40)]
    # then the throttle's downgrades: asked for gpt-4o, ran on gpt-4o-mini (rate-card priced:
    # $0.09 + $0.0372 of AI, $0.1328 of infrastructure, $0.26 a call), so the day's margin is
    # back to 14% (1 - (40 x 0.92 + 4 x 0.26) / 44), the product page's figure
    events += [call(100 + n, switched + timedelta(minutes=n), model="gpt-4o-mini",
                    requestedModel="gpt-4o", inputTokens=600_000, outputTokens=62_000)
               for n in range(4)]
    events_ingest_dicts(tenant=tenant, events=events, now=now)
    # the ingest's own evaluation (now, under this policy: nothing to change) first, so the
    # two below tell the story in order
    guard_evaluations_wait()
    throttled = guard_evaluate(tenant=tenant, customer_id=STORY_CUSTOMER,
                               product_id="prod_support_agent", now=dropped)
    for n in range(4):
        decision_count(tenant.slug, STORY_CUSTOMER, "prod_support_agent", "gpt-4o",
                       "DOWNGRADED", at=switched + timedelta(minutes=n))
    for n in range(5):
        decision_count(tenant.slug, STORY_CUSTOMER, "prod_support_agent", "gpt-4o",
                       "RATE_LIMITED", at=switched + timedelta(minutes=10 + n))
    decision_counts_flush()
    lifted = guard_evaluate(tenant=tenant, customer_id=STORY_CUSTOMER,
                            product_id="prod_support_agent", now=now - timedelta(hours=1))
    return {"policy": policy.pk,
            "throttled": int(bool(throttled and throttled.changed)),
            "lifted": int(bool(lifted and lifted.changed))}


def demo_event(rng: random.Random, n: int, people, occurred: datetime) -> dict:
    """One event as a producer sends it: most carry only usage, some their own cost."""
    cid, _tier, multiplier = people[int(rng.paretovariate(1.2)) % len(people)]
    pid, ptype, price, model_ix = PRODUCTS[rng.randrange(len(PRODUCTS))]
    provider, model, in_price, out_price = MODELS[rng.choice(model_ix)]
    input_tokens = int(rng.lognormvariate(6.5, 0.9))
    output_tokens = int(rng.lognormvariate(5.5, 1.0))
    tool_calls = rng.choice([0, 0, 0, 1, 2]) if ptype == "AI_AGENT" else 0
    event = {
        "eventId": f"evt_demo_{n:07d}", "occurredAt": occurred.isoformat(),
        "customerId": cid, "productId": pid, "productType": ptype, "provider": provider,
        "model": model, "toolName": "web_search" if tool_calls else None,
        "sourceType": rng.choice(SOURCE_TYPES), "sessionId": f"sess_{n // 7:06d}",
        "inputTokens": input_tokens, "outputTokens": output_tokens,
        "cachedInputTokens": input_tokens // 3 if rng.random() < 0.2 else 0,
        "toolCalls": tool_calls, "reasoningSteps": tool_calls,
    }
    roll = rng.random()
    if roll < 0.14:  # a gateway that reports the provider's bill, split
        ai = (Decimal(input_tokens) * Decimal(in_price)
              + Decimal(output_tokens) * Decimal(out_price)) / Decimal(1_000_000)
        event.update(aiCogsUsd=str(ai.quantize(NANO)), infraCogsUsd="0.0006",
                     feeCogsUsd="0.0002")
    elif roll < 0.20:  # a source that only knows its total
        total = (Decimal(input_tokens) * Decimal(in_price) * Decimal("1.1")
                 + Decimal(output_tokens) * Decimal(out_price)) / Decimal(1_000_000)
        event["cogsUsd"] = str(total.quantize(NANO) + Decimal("0.0008"))
    if cid == CARRIED_CUSTOMER:  # its gateway reports what it charged for the call
        event["revenueUsd"] = str((Decimal(price) * multiplier).quantize(NANO))
    return event


QUOTA_CUSTOMER, PREPAID_CUSTOMER = "cust_acme", "cust_techstart"
QUOTA_TOKENS = 100_000       # Acme's monthly token quota
QUOTA_SEEDED = 77_000        # used when the demo starts: 77%
PREPAID_CREDITS, PREPAID_LEFT = 500, 120  # TechStart's wallet, and what is left of it
TRAFFIC_TOKENS = 1_000       # each live tick: 1,000 tokens each (1% of Acme's quota, 1 credit)


def _credit_call(customer: str, n: int, at: datetime, tokens: int, prefix: str) -> dict:
    return {"eventId": f"{prefix}_{customer}_{n}", "occurredAt": at.isoformat(),
            "customerId": customer, "productId": "prod_support_agent",
            "productType": "AI_AGENT", "provider": "OpenAI", "model": "gpt-4o-mini",
            "sourceType": "SDK", "inputTokens": tokens * 4 // 5,
            "outputTokens": tokens - tokens * 4 // 5}


def demo_credits_story(tenant: Tenant, *, now: datetime) -> dict[str, int]:
    """Acme Corp on a 100,000-token monthly quota at 77% (the live demo traffic takes it past
    80%, then to 100%, where calls are throttled to gpt-4o-mini), and TechStart on a prepaid
    wallet with 120 of 500 credits left (the traffic takes it under its 100-credit mark, then
    a THRESHOLD top-up of 400 fires). Alerts go to the ENTITLEMENT and WALLET rules."""
    from budgets.services import alert_rule_create
    from entitlements.models import Entitlement
    from entitlements.services import entitlement_create, top_up_create, wallet_create
    from ingestion.services import events_ingest_dicts

    if Entitlement.objects.filter(tenant=tenant, customer_id=QUOTA_CUSTOMER).exists():
        return {}
    for cid, name in ((QUOTA_CUSTOMER, "Acme Corp"), (PREPAID_CUSTOMER, "TechStart")):
        if not Customer.objects.filter(tenant=tenant, external_id=cid).exists():
            catalog.customer_create(tenant=tenant, external_id=cid, name=name,
                                    tier=CustomerTier.PRO)
    for source in ("ENTITLEMENT", "WALLET"):
        alert_rule_create(tenant=tenant, name=f"{source.title()} guardrails", channel="EMAIL",
                          destination="billing-ops@example.com", source=source)
    entitlement = entitlement_create(
        tenant=tenant, customer_id=QUOTA_CUSTOMER, feature="TOKENS", period="MONTHLY",
        limit=Decimal(QUOTA_TOKENS), warn_at_pct=Decimal(80), overage="THROTTLE",
        downgrade_model="gpt-4o-mini")
    wallet, _warnings = wallet_create(
        tenant=tenant, customer_id=PREPAID_CUSTOMER, name="Prepaid credits",
        credit_value_usd=Decimal("0.01"), low_balance_credits=Decimal(100),
        burn_rates=[{"feature": "TOKENS", "creditsPerUnit": "0.001"}],
        recurring_top_ups=[{"trigger": "THRESHOLD", "thresholdCredits": "50",
                            "method": "FIXED", "credits": "400"}])
    top_up_create(wallet=wallet, paid_credits=Decimal(PREPAID_CREDITS),
                  idempotency_key="demo-initial", now=now - timedelta(days=1))
    # this month's usage so far: Acme at 77% of its quota, TechStart 380 credits burnt
    month_start = max(now - timedelta(minutes=50), now.replace(day=1, hour=0, minute=0,
                                                               second=0))
    acme = [_credit_call(QUOTA_CUSTOMER, n, month_start + timedelta(seconds=n * 30), 7_000,
                         "evt_quota") for n in range(QUOTA_SEEDED // 7_000)]
    burnt = (PREPAID_CREDITS - PREPAID_LEFT) * 1000
    tech = [_credit_call(PREPAID_CUSTOMER, n, now - timedelta(hours=20, minutes=-n * 5),
                         burnt // 19, "evt_prepaid") for n in range(19)]
    tech[-1]["inputTokens"] += burnt - sum(e["inputTokens"] + e["outputTokens"] for e in tech)
    events_ingest_dicts(tenant=tenant, events=acme + tech, now=now)
    return {"entitlement": entitlement.pk, "wallet": wallet.pk}


def demo_seed(tenant: Tenant, *, events: int = 210_000, days: int = 90, customers: int = 60,
              seed: int = 42, batch: int = 5000,
              progress: Callable[[int], None] = lambda _n: None,
              now: datetime | None = None) -> int:
    """Send `events` demo events over the last `days` days through the ingestion service.

    In batches of 5,000 (the service takes any size; the API caps requests at 1,000): each
    insert makes a part per materialized view and each batch one ledger look-up, so a fifth
    of them seeds ~3 times faster than 1,000-event batches (benchmarks/RESULTS.md)."""
    from ingestion.services import events_ingest_dicts

    rng = random.Random(seed)
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    start = now - timedelta(days=days)
    people = _customers(rng, customers)
    for cid, tier, _m in people:
        if not Customer.objects.filter(tenant=tenant, external_id=cid).exists():
            catalog.customer_create(tenant=tenant, external_id=cid,
                                    name=f"Customer {cid[5:]}", tier=CustomerTier(tier))
    for pid, ptype, _price, _models in PRODUCTS:
        if not Product.objects.filter(tenant=tenant, external_id=pid).exists():
            catalog.product_create(tenant=tenant, external_id=pid,
                                   name=pid[5:].replace("_", " ").title(), product_type=ptype)
    demo_rate_card(tenant, start=start - timedelta(days=1))
    demo_billing(tenant, people, start=start - timedelta(days=1))
    span = int((now - start).total_seconds())
    written = 0
    for first in range(0, events, batch):
        chunk = [demo_event(rng, n, people, start + timedelta(seconds=rng.randrange(span)))
                 for n in range(first, min(first + batch, events))]
        report = events_ingest_dicts(tenant=tenant, events=chunk, now=now)
        written += len(report.rows)
        progress(len(chunk))
    return written


def demo_traffic_send(tenant: Tenant, *, events: int = 3,
                      rng: random.Random | None = None) -> int:
    """A few demo events happening now, through the ingestion service: what a newcomer
    watches arrive in the console's live ledger while `make demo` runs."""
    import uuid

    from ingestion.services import events_ingest_dicts

    rng = rng or random.Random()
    people = _customers(random.Random(42), 60)  # the seeded demo customers
    now = datetime.now(timezone.utc).replace(microsecond=0)
    batch = []
    for _ in range(events):
        event = demo_event(rng, 0, people, now)
        event["eventId"] = f"evt_live_{uuid.uuid4().hex[:12]}"
        batch.append(event)
    # the quota and the wallet of the credits story move with every tick
    for cid in Customer.objects.filter(tenant=tenant, external_id__in=(
            QUOTA_CUSTOMER, PREPAID_CUSTOMER)).values_list("external_id", flat=True):
        batch.append(_credit_call(cid, uuid.uuid4().hex[:12], now, TRAFFIC_TOKENS, "evt_live"))
    return len(events_ingest_dicts(tenant=tenant, events=batch).rows)
