"""An event's cost, exactly as API.md computes it, from LiteLLM-imported and manual prices."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command

from aforo import eventstore
from ingestion import prices
from ingestion.models import GatewayFeeRule, InfraCostRule
from ingestion.services import events_ingest_dicts

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "litellm"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
START = NOW - timedelta(days=30)


def _cost(row) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return (row["ai_cogs_usd"], row["infra_cogs_usd"], row["fee_cogs_usd"],
            row["unclassified_cogs_usd"])


@pytest.fixture
def litellm_subset(tenant):
    if not REFERENCE.exists():
        pytest.skip("../shared/reference/litellm is absent")
    document = prices.litellm_parse((REFERENCE / "subset_common_models.json").read_bytes())
    return prices.litellm_import(tenant=tenant, document=document, effective_from=START)


def _usage_event(event_id, provider, model, **extra):
    return {"eventId": event_id, "occurredAt": NOW.isoformat(), "customerId": "c1",
            "productId": "p1", "provider": provider, "model": model, "inputTokens": 10_000,
            "cachedInputTokens": 4_000, "outputTokens": 3_000, "reasoningTokens": 1_200, **extra}


def test_litellm_priced_event_matches_a_hand_calculation(store, tenant, litellm_subset):
    assert litellm_subset.imported >= 20
    report = events_ingest_dicts(tenant=tenant, now=NOW, events=[
        # o3: input $2/M, cache read $0.50/M, output $8/M, no reasoning price -> output price
        _usage_event("o3", "OpenAI", "o3"),
        # gemini-2.5-flash via the "Google" alias: 0.30 / 0.03 / 2.50, reasoning 2.50 per M
        _usage_event("flash", "Google", "gemini-2.5-flash"),
    ])
    rows = {r["event_id"]: r for r in report.rows}
    # 6,000 x 2 + 4,000 x 0.5 + 1,800 x 8 + 1,200 x 8 = 38,000 per M
    assert _cost(rows["o3"]) == (Decimal("0.038"), 0, 0, 0)
    # 6,000 x 0.3 + 4,000 x 0.03 + 1,800 x 2.5 + 1,200 x 2.5 = 9,420 per M
    assert _cost(rows["flash"]) == (Decimal("0.00942"), 0, 0, 0)
    stored = eventstore.tenant_query(
        tenant.slug, "SELECT event_id, ai_cogs_usd FROM ledger WHERE tenant_id = %(tenant_id)s "
        "ORDER BY event_id")
    assert [(r["event_id"], r["ai_cogs_usd"]) for r in stored] == [
        ("flash", Decimal("0.00942")), ("o3", Decimal("0.038"))]


def test_import_prices_command_reads_the_full_litellm_file(store, tenant, capsys):
    if not REFERENCE.exists():
        pytest.skip("../shared/reference/litellm is absent")
    call_command("import_prices", str(REFERENCE / "model_prices_and_context_window.json"),
                 "--effective-from", START.date().isoformat(), "--tenant", tenant.slug)
    out = capsys.readouterr().out
    imported = int(out.split()[1])
    assert imported > 2000
    from ingestion.models import ModelPrice

    gpt4o = ModelPrice.objects.get(tenant=tenant, provider="openai", model="gpt-4o")
    assert (gpt4o.input_per_1m, gpt4o.cached_input_per_1m, gpt4o.output_per_1m) == (
        Decimal("2.5"), Decimal("1.25"), Decimal("10"))
    azure = ModelPrice.objects.get(tenant=tenant, provider="azure", model="gpt-4o")
    assert azure.input_per_1m > 0
    # importing the same date again replaces, never duplicates
    call_command("import_prices", str(REFERENCE / "model_prices_and_context_window.json"),
                 "--effective-from", START.date().isoformat(), "--tenant", tenant.slug)
    assert ModelPrice.objects.filter(tenant=tenant).count() == imported


def test_manual_prices_rules_and_effective_dates(store, tenant):
    early, late = NOW - timedelta(days=10), NOW - timedelta(days=2)
    prices.model_price_create(tenant=tenant, provider="Acme", model="m1", effective_from=early,
                              input_per_1m=Decimal("1"), output_per_1m=Decimal("4"),
                              cached_input_per_1m=Decimal("0.1"),
                              reasoning_per_1m=Decimal("6"), per_call=Decimal("0.001"))
    prices.model_price_create(tenant=tenant, provider="Acme", model="m1", effective_from=late,
                              input_per_1m=Decimal("2"), output_per_1m=Decimal("8"))
    prices.rule_create(kind=InfraCostRule, tenant=tenant, product_id="p1", effective_from=early,
                       per_event_usd=Decimal("0.0005"), per_1k_tokens_usd=Decimal("0.0001"))
    prices.rule_create(kind=GatewayFeeRule, tenant=tenant, source_type="GATEWAY",
                       effective_from=early, per_call_usd=Decimal("0.0002"),
                       pct_of_ai_cost=Decimal("3"))
    report = events_ingest_dicts(tenant=tenant, now=NOW, events=[
        _usage_event("old", "acme", "m1", occurredAt=(early + timedelta(days=1)).isoformat(),
                     sourceType="GATEWAY"),
        _usage_event("new", "Acme", "m1", occurredAt=(late + timedelta(hours=1)).isoformat(),
                     sourceType="SDK"),
    ])
    rows = {r["event_id"]: r for r in report.rows}
    # old: 6,000 x 1 + 4,000 x 0.1 + 1,800 x 4 + 1,200 x 6 = 20,800 per M = 0.0208, + 0.001
    ai_old = Decimal("0.0218")
    infra = Decimal("0.0005") + Decimal("13") * Decimal("0.0001")  # 13K tokens
    assert _cost(rows["old"]) == (ai_old, infra, Decimal("0.0002") + ai_old * 3 / 100, 0)
    # new: no cached/reasoning price -> input/output: 6,000x2 + 4,000x2 + 3,000x8 = 44,000
    assert _cost(rows["new"]) == (Decimal("0.044"), infra, 0, 0)


def test_carried_costs_are_kept_and_only_a_total_is_unclassified(store, tenant):
    report = events_ingest_dicts(tenant=tenant, now=NOW, events=[
        {"eventId": "total_only", "cogsUsd": "0.05", "model": "m", "provider": "x"},
        {"eventId": "parts", "aiCogsUsd": "0.02", "infraCogsUsd": "0.01"},
        {"eventId": "both", "cogsUsd": "0.05", "aiCogsUsd": "0.02", "feeCogsUsd": "0.01"},
    ])
    rows = {r["event_id"]: r for r in report.rows}
    assert _cost(rows["total_only"]) == (0, 0, 0, Decimal("0.05"))
    assert _cost(rows["parts"]) == (Decimal("0.02"), Decimal("0.01"), 0, 0)
    assert _cost(rows["both"]) == (Decimal("0.02"), 0, Decimal("0.01"), Decimal("0.02"))
    assert {r["cost_source"] for r in rows.values()} == {"CARRIED"}


def test_unpriced_events_are_counted_then_repriced_once(store, tenant):
    events = [_usage_event(f"u{i}", "NewCo", "brand-new-model") for i in range(3)]
    report = events_ingest_dicts(tenant=tenant, now=NOW, events=events)
    assert [r.status for r in report.results] == ["accepted"] * 3
    from ingestion.queries import unpriced_models

    assert [(r["provider"], r["model"], r["events"]) for r in unpriced_models(tenant.slug)] == [
        ("NewCo", "brand-new-model", 3)]
    prices.model_price_create(tenant=tenant, provider="newco", model="brand-new-model",
                              effective_from=START, input_per_1m=Decimal("1"),
                              output_per_1m=Decimal("2"))
    from ingestion.services import events_reprice

    window = {"start": NOW - timedelta(days=1), "end": NOW + timedelta(days=1)}
    first = events_reprice(tenant=tenant, **window)
    assert (first.events_examined, first.events_corrected, first.now_priced) == (3, 3, 3)
    # 10,000 x 1 + 3,000 x 2 = 16,000 per M each
    assert first.ai_delta_usd == Decimal("0.048")
    again = events_reprice(tenant=tenant, **window)
    assert (again.events_examined, again.events_corrected) == (3, 0)
    assert unpriced_models(tenant.slug) == []
    totals = eventstore.tenant_query(
        tenant.slug, "SELECT sum(ai_cogs_usd) AS ai, sum(event_count) AS events, count() AS n "
        "FROM ledger WHERE tenant_id = %(tenant_id)s")[0]
    assert (totals["ai"], totals["events"], totals["n"]) == (Decimal("0.048"), 3, 6)


def test_reprice_api_validates_and_reports(store, tenant):
    from tests.conftest import api_client

    client = api_client(tenant, "BILLING_ADMIN")
    bad = client.post("/api/v1/rate-cards/reprice", {"from": "2026-02-01", "to": "2026-01-01"},
                      format="json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "to"
    assert client.post("/api/v1/rate-cards/reprice", {"from": "nope", "to": "2026-01-01"},
                       format="json").json()["error"]["field"] == "from"
    ok = client.post("/api/v1/rate-cards/reprice", {"from": START.date().isoformat(),
                                                    "to": NOW.date().isoformat()}, format="json")
    assert ok.status_code == 200 and ok.json()["eventsCorrected"] == 0
    viewer = api_client(tenant, "VIEWER")
    assert viewer.post("/api/v1/rate-cards/reprice", {}, format="json").status_code == 403


def test_rate_card_api_crud_and_upload(tenant):
    from tests.conftest import api_client

    client = api_client(tenant, "ADMIN")
    created = client.post("/api/v1/rate-cards/model-prices", {
        "provider": "OpenAI", "model": "gpt-x", "effectiveFrom": START.isoformat(),
        "inputPer1M": "1.5", "outputPer1M": 6}, format="json")
    assert created.status_code == 201, created.json()
    price_id = created.json()["id"]
    assert created.json()["inputPer1M"] == 1.5 and created.json()["scope"] == "TENANT"
    dup = client.post("/api/v1/rate-cards/model-prices", {
        "provider": "OpenAI", "model": "gpt-x", "effectiveFrom": START.isoformat(),
        "inputPer1M": "1", "outputPer1M": 1}, format="json")
    assert dup.status_code == 409
    neg = client.post("/api/v1/rate-cards/model-prices", {
        "provider": "OpenAI", "model": "y", "effectiveFrom": START.isoformat(),
        "inputPer1M": "-1", "outputPer1M": 1}, format="json")
    assert neg.status_code == 400 and neg.json()["error"]["field"] == "inputPer1M"
    patched = client.patch(f"/api/v1/rate-cards/model-prices/{price_id}",
                           {"outputPer1M": "7.25"}, format="json")
    assert patched.json()["outputPer1M"] == 7.25
    listed = client.get("/api/v1/rate-cards/model-prices?model=gpt-x").json()
    assert listed["totalElements"] == 1
    upload = client.post(f"/api/v1/rate-cards/model-prices/import?effectiveFrom="
                         f"{START.date().isoformat()}",
                         json.dumps({"m-one": {"litellm_provider": "acme",
                                               "input_cost_per_token": 1e-06,
                                               "output_cost_per_token": 2e-06},
                                     "img": {"litellm_provider": "acme",
                                             "output_cost_per_image": 0.04},
                                     "sample_spec": {}}),
                         content_type="application/json")
    assert upload.status_code == 201 and upload.json()["imported"] == 1
    assert upload.json()["skipped"] == 1
    assert client.delete(f"/api/v1/rate-cards/model-prices/{price_id}").status_code == 204
    rule = client.post("/api/v1/rate-cards/fee-rules", {
        "sourceType": "GATEWAY", "effectiveFrom": START.isoformat(), "pctOfAiCost": "2.5"},
        format="json")
    assert rule.status_code == 201 and rule.json()["pctOfAiCost"] == 2.5
    assert api_client(tenant, "DEVELOPER").post(
        "/api/v1/rate-cards/infra-rules", {"effectiveFrom": START.isoformat()},
        format="json").status_code == 403


def test_cache_writes_are_priced_at_the_cache_write_price(store, tenant, litellm_subset):
    """Anthropic's reference responses, as the SDK sends them: 13 uncached input tokens plus
    2,803 written to (or read from) the prompt cache, 30 output tokens."""
    report = events_ingest_dicts(tenant=tenant, now=NOW, events=[
        {"eventId": "write", "occurredAt": NOW.isoformat(), "provider": "anthropic",
         "model": "claude-sonnet-4-5", "inputTokens": 2816, "cacheWriteInputTokens": 2803,
         "outputTokens": 30},
        {"eventId": "read", "occurredAt": NOW.isoformat(), "provider": "anthropic",
         "model": "claude-sonnet-4-5", "inputTokens": 2816, "cachedInputTokens": 2803,
         "outputTokens": 30}])
    rows = {r["event_id"]: r for r in report.rows}
    # LiteLLM: input $3/M, cache write $3.75/M, cache read $0.30/M, output $15/M
    # 13 x 3 + 2,803 x 3.75 + 30 x 15 = 11,000.25 per M
    assert rows["write"]["ai_cogs_usd"] == Decimal("0.01100025")
    assert rows["write"]["cache_write_input_tokens"] == 2803
    # 13 x 3 + 2,803 x 0.30 + 30 x 15 = 1,329.9 per M
    assert rows["read"]["ai_cogs_usd"] == Decimal("0.0013299")


def test_without_a_cache_write_price_writes_cost_the_input_price_and_reprice(store, tenant):
    event = {"eventId": "w1", "occurredAt": NOW.isoformat(), "provider": "Acme",
             "model": "m-cache", "inputTokens": 1000, "cacheWriteInputTokens": 600,
             "outputTokens": 100}
    prices.model_price_create(tenant=tenant, provider="Acme", model="m-cache",
                              effective_from=START, input_per_1m=Decimal(2),
                              output_per_1m=Decimal(10))
    [row] = events_ingest_dicts(tenant=tenant, now=NOW, events=[event]).rows
    assert row["ai_cogs_usd"] == Decimal("0.003")  # 1,000 x 2 + 100 x 10 per M
    # a newer price with a cache-write rate: repricing corrects the event by the difference
    prices.model_price_create(tenant=tenant, provider="Acme", model="m-cache",
                              effective_from=START + timedelta(days=1),
                              input_per_1m=Decimal(2), output_per_1m=Decimal(10),
                              cache_write_input_per_1m=Decimal("2.5"))
    from ingestion.services import events_reprice

    done = events_reprice(tenant=tenant, start=START, end=NOW + timedelta(seconds=1), now=NOW)
    # 400 x 2 + 600 x 2.5 + 100 x 10 = 3,300 per M: 0.0003 more
    assert (done.events_corrected, done.ai_delta_usd) == (1, Decimal("0.0003"))
