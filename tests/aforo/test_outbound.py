"""The outbound client refuses internal addresses before connecting, pins what it resolved,
follows no redirect, and bounds time and size; alert history records only a status class."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from aforo import outbound
from aforo.errors import DomainError
from budgets import services
from notifications.models import Delivery
from notifications.services import deliveries_send_due
from tests.factories import ingest

# Literal addresses, in every spelling the resolver accepts, and names that resolve to them.
INTERNAL_HOSTS = [
    "127.0.0.1", "127.1", "127.0.1", "0x7f000001", "2130706433", "017700000001", "0177.0.0.1",
    "0x7f.0.0.1", "127.000.000.001", "127.255.255.254", "localhost", "0", "0.0.0.0",
    "10.0.0.1", "10.255.255.254", "172.16.0.1", "172.31.255.255", "192.168.0.1",
    "192.168.1.254", "169.254.169.254", "169.254.0.1", "100.64.0.1", "198.18.0.1",
    "192.0.0.1", "192.0.2.1", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "[::1]", "[0:0:0:0:0:0:0:1]", "[::]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
    "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]", "[64:ff9b::7f00:1]", "[64:ff9b::a9fe:a9fe]",
    "[2002:7f00:1::1]", "[2002:a00:1::1]", "[fe80::1]", "[fc00::1]", "[fd12:3456::1]",
    "[ff02::1]", "[2001:db8::1]", "[fec0::1]", "[::127.0.0.1]",
    # names whose DNS answers are internal (answered by the stand-in resolver below)
    "metadata.example.com", "rebind.example.com", "mixed.example.com",
]
STAND_IN_DNS = {"metadata.example.com": ["169.254.169.254"],
                "rebind.example.com": ["10.1.2.3"],
                "mixed.example.com": ["93.184.216.34", "192.168.0.10"]}


@pytest.fixture
def connections(monkeypatch):
    """Every TCP connection the client opens, recorded (and refused, so nothing leaves)."""
    opened = []

    def refuse_to_connect(address, timeout):
        opened.append(address)
        raise ConnectionRefusedError("the test allows no connection here")

    monkeypatch.setattr(outbound, "_connect", refuse_to_connect)
    return opened


@pytest.fixture
def stand_in_dns(monkeypatch):
    """DNS for names we cannot register: each name in STAND_IN_DNS answers its addresses."""
    real = outbound._resolve
    asked = []

    def resolve(host, port):
        asked.append(host)
        return STAND_IN_DNS[host] if host in STAND_IN_DNS else real(host, port)

    monkeypatch.setattr(outbound, "_resolve", resolve)
    return asked


def test_fifty_internal_destinations_are_refused_before_any_connection(connections,
                                                                       stand_in_dns,
                                                                       settings):
    settings.AFORO_ALLOW_HTTP_WEBHOOKS = True
    urls = [f"{scheme}://{host}:{port}/hook" for host in INTERNAL_HOSTS
            for scheme, port in (("https", 443),)]
    urls += ["http://127.0.0.1:8080/", "http://[::1]:6379/", "https://localhost/admin"]
    assert len(urls) >= 50
    for url in urls:
        with pytest.raises(outbound.DestinationRefused) as refused:
            outbound.post(url, b"{}")
        assert "AFORO_OUTBOUND_ALLOWED_HOSTS" in str(refused.value), url
        assert refused.value.history.startswith("refused")
    assert connections == []


def test_a_redirect_to_an_internal_address_is_not_followed(http_sink, settings):
    http_sink.redirect_to = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(outbound.DeliveryFailed) as failed:
        outbound.post(http_sink.url, b"{}")
    assert failed.value.history == "HTTP 3xx"
    assert len(http_sink.requests) == 1  # the one request; nothing went to the Location


def test_every_redirecting_destination_stays_undelivered(http_sink, monkeypatch):
    targets = ["http://127.0.0.1:6379/", "http://10.0.0.1/", "http://[::1]/",
               "https://metadata.example.com/", "http://0x7f000001/"]
    opened = []
    real_connect = outbound._connect

    def record(address, timeout):
        opened.append(address)
        return real_connect(address, timeout)

    monkeypatch.setattr(outbound, "_connect", record)
    for target in targets:
        http_sink.redirect_to = target
        with pytest.raises(outbound.DeliveryFailed):
            outbound.post(http_sink.url, b"{}")
    sink_port = int(http_sink.url.split(":")[2].split("/")[0])
    assert opened == [("127.0.0.1", sink_port)] * len(targets)


def test_the_resolved_address_is_pinned_for_the_connection(http_sink, settings, monkeypatch):
    """Resolved once: a second answer (DNS rebinding to another address) is never used."""
    port = int(http_sink.url.split(":")[2].split("/")[0])
    settings.AFORO_OUTBOUND_ALLOWED_HOSTS = ["sink.example.com"]
    answers = [["127.0.0.1"], ["10.9.9.9"]]
    monkeypatch.setattr(outbound, "_resolve", lambda host, p: answers.pop(0))
    answer = outbound.post(f"http://sink.example.com:{port}/pinned", b'{"a": 1}')
    assert answer.history == "HTTP 2xx"
    assert answers == [["10.9.9.9"]]  # asked once
    (request,) = http_sink.requests
    assert request["headers"]["Host"] == f"sink.example.com:{port}"
    assert request["json"] == {"a": 1}


def test_allowed_hosts_admit_an_internal_network_by_name_or_range(http_sink, settings):
    settings.AFORO_OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(outbound.DestinationRefused):
        outbound.post(http_sink.url, b"{}")
    settings.AFORO_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.0/8"]
    assert outbound.post(http_sink.url, b"{}").status == 200


def test_an_answer_over_the_size_cap_fails(http_sink):
    http_sink.answer_bytes = outbound.MAX_RESPONSE_BYTES + 10
    with pytest.raises(outbound.DeliveryFailed) as failed:
        outbound.post(http_sink.url, b"{}")
    assert failed.value.history == "response too large"


def test_a_silent_server_times_out(settings, monkeypatch):
    settings.AFORO_ALLOW_HTTP_WEBHOOKS = True
    settings.AFORO_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    monkeypatch.setattr(outbound, "READ_TIMEOUT_S", 0.3)
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(outbound.DeliveryFailed) as failed:
            outbound.post(f"http://127.0.0.1:{silent.getsockname()[1]}/", b"{}")
    assert failed.value.history == "no response"


@pytest.mark.parametrize("url", ["http://example.com/", "ftp://example.com/",
                                 "https://user:pw@example.com/", "https:///nohost",
                                 "https://" + "a" * 2100 + ".com/"])
def test_urls_that_are_not_plain_https_are_refused(url, connections):
    with pytest.raises(outbound.DestinationRefused):
        outbound.post(url, b"{}")
    assert connections == []


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.0.0.1", "169.254.169.254",
                                  "localhost", "[::ffff:127.0.0.1]", "api.internal"])
def test_saving_a_destination_refuses_internal_literals_at_once(tenant, host):
    with pytest.raises(DomainError) as refused:
        services.alert_rule_create(tenant=tenant, name="r", metric="COST", comparison="GT",
                                   threshold=Decimal(1), channel="WEBHOOK",
                                   destination=f"https://{host}/hook")
    assert refused.value.field == "destination"


@pytest.mark.django_db
def test_a_rule_whose_host_resolves_inside_records_only_the_refusal(store, tenant,
                                                                    connections, stand_in_dns):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ingest(tenant, [{"eventId": "e1", "occurredAt": now - timedelta(minutes=5),
                     "customerId": "c", "productId": "p", "cogsUsd": "5"}], now=now)
    rule = services.alert_rule_create(
        tenant=tenant, name="hook", metric="COST", comparison="GT", threshold=Decimal(1),
        window="1h", channel="WEBHOOK", destination="https://metadata.example.com/hook")
    services.alerts_evaluate(now=now, tenant=tenant)
    deliveries_send_due(now=now)
    delivery = Delivery.objects.get(alert__rule=rule)
    assert delivery.last_error == "refused: not a public address or not an allowed URL"
    assert [a.detail for a in delivery.log.all()] == [delivery.last_error]
    assert connections == []
    assert "metadata.example.com" in stand_in_dns


def test_signatures_verify_within_the_replay_window_only():
    body = b'{"deliveryId": "dlv_1"}'
    header = outbound.signature("s3cret", 1_700_000_000, body)
    assert outbound.signature_valid("s3cret", header, body, now=1_700_000_000 + 299)
    assert not outbound.signature_valid("s3cret", header, body, now=1_700_000_000 + 301)
    assert not outbound.signature_valid("other", header, body, now=1_700_000_000)
    assert not outbound.signature_valid("s3cret", header, body + b" ", now=1_700_000_000)
