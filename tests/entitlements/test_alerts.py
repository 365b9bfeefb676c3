"""Entitlements and wallets alert through the alert rules, once per level and period."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from budgets.models import Alert
from budgets.services import alert_rule_create
from entitlements.services import SOURCE_EVENTS_MAX, entitlement_create
from notifications.models import Delivery
from notifications.services import deliveries_send_due
from tests.conftest import api_client
from tests.factories import ingest, prepaid_wallet
from tests.factories import token_events as _tokens

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _alerts(tenant, source):
    return list(Alert.objects.filter(tenant=tenant, metric=source).order_by("id"))


def test_an_entitlement_fires_at_warning_and_at_100_once_per_period(store, tenant):
    alert_rule_create(tenant=tenant, name="Quotas", channel="EMAIL",
                      destination="ops@example.com", source="ENTITLEMENT")
    entitlement_create(tenant=tenant, customer_id="cust_acme", feature="TOKENS",
                       period="NONE", limit=Decimal(10_000), warn_at_pct=Decimal(80))
    ingest(tenant, _tokens("a", 1, 5000))
    assert _alerts(tenant, "ENTITLEMENT") == []
    ingest(tenant, _tokens("b", 1, 3700))  # 87%
    warned = _alerts(tenant, "ENTITLEMENT")
    assert len(warned) == 1 and "at its warning level" in warned[0].title
    assert "cust_acme" in warned[0].title and "8700" in warned[0].title
    ingest(tenant, _tokens("c", 1, 100))  # still at warning: nothing new
    assert len(_alerts(tenant, "ENTITLEMENT")) == 1
    ingest(tenant, _tokens("d", 1, 2000))  # 108%
    titles = [a.title for a in _alerts(tenant, "ENTITLEMENT")]
    assert len(titles) == 2 and "at 100% of its limit" in titles[1]
    assert Delivery.objects.filter(alert__tenant=tenant).count() == 2


def test_projected_use_past_120_percent_fires(store, tenant):
    alert_rule_create(tenant=tenant, name="Pacing", channel="EMAIL",
                      destination="ops@example.com", source="ENTITLEMENT")
    entitlement_create(tenant=tenant, customer_id="cust_acme", feature="TOKENS",
                       period="MONTHLY", limit=Decimal(1_000_000), warn_at_pct=Decimal(99))
    # a fast start: what the month has used so far, projected to its end, is past 120%
    from entitlements.usage import entitlement_period

    start, end = entitlement_period("MONTHLY", NOW, tenant.time_zone)
    elapsed = (NOW - start) / (end - start)
    tokens = int(1_000_000 * 1.3 * elapsed) + 1
    if tokens >= 990_000 or NOW - start < timedelta(minutes=10):
        pytest.skip("too near the month's end or start for a pacing example")
    ingest(tenant, _tokens("a", 1, tokens))
    titles = [a.title for a in _alerts(tenant, "ENTITLEMENT")]
    assert any("projected at 120%" in t for t in titles)


def test_a_wallet_fires_under_its_low_mark_and_at_zero(store, tenant):
    alert_rule_create(tenant=tenant, name="Wallets", channel="EMAIL",
                      destination="ops@example.com", source="WALLET")
    prepaid_wallet(tenant, "cust_pre", credits="30", low_balance_credits=Decimal(20))
    ingest(tenant, _tokens("a", 1, 5000, customer="cust_pre"))  # 25 left
    assert _alerts(tenant, "WALLET") == []
    ingest(tenant, _tokens("b", 1, 10_000, customer="cust_pre"))  # 15 left
    low = _alerts(tenant, "WALLET")
    assert len(low) == 1 and "balance is low" in low[0].title
    ingest(tenant, _tokens("c", 1, 1000, customer="cust_pre"))  # 14: still low, no new alert
    assert len(_alerts(tenant, "WALLET")) == 1
    ingest(tenant, _tokens("d", 1, 20_000, customer="cust_pre"))  # -6
    titles = [a.title for a in _alerts(tenant, "WALLET")]
    assert len(titles) == 2 and "no credits left" in titles[1]


def _rules(tenant, source, http_sink):
    for channel, destination in (("SLACK", http_sink.url), ("EMAIL", "ops@example.com"),
                                 ("WEBHOOK", f"{http_sink.url}/signed")):
        alert_rule_create(tenant=tenant, name=f"{source} {channel}", channel=channel,
                          destination=destination, source=source)


def _delivered(http_sink, smtp_sink, needle):
    """What each channel said about the alert whose title holds `needle`."""
    deliveries_send_due(now=datetime.now(timezone.utc) + timedelta(minutes=1))
    slack = [r["json"] for r in http_sink.requests if r["path"] == "/hook"
             and needle in r["json"]["text"]]
    hooks = [r["json"] for r in http_sink.requests if r["path"] == "/hook/signed"
             and needle in r["json"]["title"]]
    mails = [m.get_payload() for m in smtp_sink if needle in " ".join(m["Subject"].split())]
    assert len(slack) == len(hooks) == len(mails) == 1, (slack, hooks, mails)
    return str(slack[0]["blocks"]), hooks[0], mails[0]


def test_entitlement_alerts_name_the_events_that_crossed(store, tenant, http_sink, smtp_sink):
    _rules(tenant, "ENTITLEMENT", http_sink)
    entitlement_create(tenant=tenant, customer_id="cust_acme", feature="TOKENS",
                       period="NONE", limit=Decimal(10_000), warn_at_pct=Decimal(80))
    ingest(tenant, _tokens("a", 5, 1000))  # 5,000
    # 1,000 tokens each: the warning (8,000) is reached at b-2, the limit at b-4
    ingest(tenant, _tokens("b", 5, 1000) + _tokens("other", 2, 1000, customer="cust_x"))
    warned, exceeded = (a for a in _alerts(tenant, "ENTITLEMENT") if "SLACK" in a.title)
    assert warned.source_event_ids == ["b-2", "b-0", "b-1", "b-3", "b-4"]
    assert exceeded.source_event_ids == ["b-4", "b-0", "b-1", "b-2", "b-3"]
    assert "crossed by event b-2" in warned.title
    slack, hook, mail = _delivered(http_sink, smtp_sink, "at its warning level")
    assert "b-2, b-0, b-1, b-3, b-4" in slack
    assert hook["sourceEventIds"] == ["b-2", "b-0", "b-1", "b-3", "b-4"]
    assert "sourceEventIds: b-2, b-0, b-1, b-3, b-4" in mail
    history = api_client(tenant).get("/api/v1/cogs/alert-history").json()["content"]
    assert {tuple(a["sourceEventIds"][:1]) for a in history} == {("b-2",), ("b-4",)}


def test_wallet_alerts_name_the_crossing_event_and_a_capped_list(store, tenant, http_sink,
                                                                 smtp_sink):
    _rules(tenant, "WALLET", http_sink)
    prepaid_wallet(tenant, "cust_pre", credits="30", low_balance_credits=Decimal(20))
    ingest(tenant, _tokens("w", 15, 1000, customer="cust_pre"))  # 1 credit each: under 20 at w-10
    (low,) = (a for a in _alerts(tenant, "WALLET") if "SLACK" in a.title)
    assert low.source_event_ids[0] == "w-10" and len(low.source_event_ids) == 15
    _slack, hook, mail = _delivered(http_sink, smtp_sink, "balance is low")
    assert hook["sourceEventIds"][0] == "w-10" and "sourceEventIds: w-10, w-0" in mail
    ingest(tenant, _tokens("z", 25, 1000, customer="cust_pre"))  # 15 left: at zero at z-14
    zero = next(a for a in _alerts(tenant, "WALLET") if "SLACK" in a.title and "no credits"
                in a.title)
    assert zero.source_event_ids[0] == "z-14"
    assert len(zero.source_event_ids) == SOURCE_EVENTS_MAX  # capped: 25 events debited it
    slack, hook, _mail = _delivered(http_sink, smtp_sink, "no credits left")
    assert "z-14" in slack and hook["sourceEventIds"] == zero.source_event_ids
