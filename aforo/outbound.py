"""The one door for HTTP requests to addresses that users give us (Slack, webhooks, PagerDuty,
exports): public addresses only, the resolved address pinned, no redirects, bounded in time
and size, and signed when the destination has a secret.

`post()` resolves the host once, refuses the request unless every address it resolves to is a
public unicast address (or the host is one the operator allowed), connects to that very address,
sends the body and reads at most `MAX_RESPONSE_BYTES` of the answer. It raises an
`OutboundError` whose `history` is what alert history may record: a status class ("HTTP 5xx",
"no response", "refused: not a public address"), never the remote server's own words, so a
destination cannot be used to read what an internal service answers.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

from django.conf import settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 5.0
TOTAL_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
MAX_URL_LENGTH = 2000
USER_AGENT = "Aforo-Webhooks/1"
SIGNATURE_HEADER = "X-Aforo-Signature"
DELIVERY_HEADER = "X-Aforo-Delivery"
REPLAY_WINDOW_S = 300  # receivers refuse a signature whose t is further than this from now

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class OutboundError(Exception):
    """A request that did not land; `history` is the status class alert history records."""

    def __init__(self, message: str, *, history: str) -> None:
        super().__init__(message)
        self.history = history


class DestinationRefused(OutboundError):
    """Refused before any connection: not an allowed URL, or not a public address."""

    def __init__(self, message: str) -> None:
        super().__init__(message, history="refused: not a public address or not an allowed URL")


class DeliveryFailed(OutboundError):
    """Sent (or tried) but not accepted: no response, a non-2xx status, a too-large answer."""

    status: int | None = None  # the HTTP status, where there was one


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower-cased, IDNA-encoded, without brackets
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    @property
    def history(self) -> str:
        return status_class(self.status)


def status_class(status: int) -> str:
    return f"HTTP {status // 100}xx"


# --- which addresses and URLs are allowed ---------------------------------------------------

def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64): each is checked
    too, so `::ffff:127.0.0.1` or `64:ff9b::a00:1` is as internal as what it wraps."""
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64 or address in _NAT64_LOCAL:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def address_refusal(address: Address) -> str | None:
    """Why an address may not be a destination (loopback, private, ...), or None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "link-local (scoped)"
        for inner in _embedded_ipv4(address):
            reason = address_refusal(inner)
            if reason:
                return f"{reason} (inside an IPv6 address)"
        if address.is_site_local:
            return "site-local"
    checks = (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
              ("link-local", address.is_link_local), ("multicast", address.is_multicast),
              ("private", address.is_private), ("reserved", address.is_reserved),
              ("not globally routable", not address.is_global))
    return next((name for name, hit in checks if hit), None)


def _allowed_hosts() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names, networks = set(), []
    for entry in getattr(settings, "AFORO_OUTBOUND_ALLOWED_HOSTS", []):
        entry = entry.strip().lower().strip("[]")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry)
    return names, networks


def target_of(url: str) -> Target:
    """The parsed URL of a destination; DestinationRefused names what is wrong with it."""
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname or ""
    except ValueError as exc:
        raise DestinationRefused(f"The URL cannot be parsed: {exc}.") from None
    schemes = ("https", "http") if settings.AFORO_ALLOW_HTTP_WEBHOOKS else ("https",)
    if parts.scheme not in schemes:
        raise DestinationRefused(
            "The URL must be https (AFORO_ALLOW_HTTP_WEBHOOKS=true admits http for local "
            "development).")
    if not host:
        raise DestinationRefused("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("The URL must not carry a user name or password.")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise DestinationRefused("The URL's host is not a valid name.") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=parts.scheme, host=host.lower(),
                  port=port or (443 if parts.scheme == "https" else 80), path=path)


def _resolve(host: str, port: int) -> list[str]:
    """Every address the host resolves to (literal addresses in any spelling included)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [info[4][0] for info in infos]


def pinned_address(target: Target) -> str:
    """The address to connect to: resolved once, and only if every address is allowed.

    :TRICKY: DNS rebinding. A name can resolve to a public address when checked and to
    127.0.0.1 a moment later, when a client library resolves it again to connect. So the name
    is resolved exactly once, every address it gave is checked (one internal address among
    public ones refuses the lot), and the connection goes to the checked address itself; TLS
    still verifies the certificate against the host name (SNI), so pinning weakens nothing.
    """
    names, networks = _allowed_hosts()
    try:
        resolved = _resolve(target.host, target.port)
    except (OSError, UnicodeError) as exc:
        raise DeliveryFailed(f"Cannot resolve {target.host}: {exc}.",
                             history="no response") from None
    if not resolved:
        raise DeliveryFailed(f"{target.host} resolves to no address.", history="no response")
    addresses = []
    for raw in resolved:
        if "%" in raw:  # an IPv6 address with a zone: link-local by construction
            _refuse(target, raw, "link-local (scoped)")
        addresses.append(ipaddress.ip_address(raw))
    if target.host in names:
        return str(addresses[0])
    for address in addresses:
        if any(address in network for network in networks):
            continue
        reason = address_refusal(address)
        if reason:
            _refuse(target, str(address), reason)
    return str(addresses[0])


def _refuse(target: Target, address: str, reason: str) -> NoReturn:
    raise DestinationRefused(
        f"{target.host} resolves to {address}, a {reason} address; Aforo sends only to public "
        "addresses. An operator can allow an internal host by name with "
        "AFORO_OUTBOUND_ALLOWED_HOSTS.")


# --- the request ----------------------------------------------------------------------------

def _connect(address: tuple[str, int], timeout: float) -> socket.socket:
    """Open the TCP connection (to an address literal: no name is resolved here)."""
    return socket.create_connection(address, timeout=timeout)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, address: str) -> None:
        super().__init__(target.host, target.port, timeout=CONNECT_TIMEOUT_S)
        self._address = address

    def connect(self) -> None:
        self.sock = _connect((self._address, self.port), CONNECT_TIMEOUT_S)
        self.sock.settimeout(READ_TIMEOUT_S)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, address: str) -> None:
        super().__init__(target.host, target.port, timeout=CONNECT_TIMEOUT_S,
                         context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = _connect((self._address, self.port), CONNECT_TIMEOUT_S)
        sock.settimeout(READ_TIMEOUT_S)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _read_capped(response: http.client.HTTPResponse, deadline: float,
                 limit: int = MAX_RESPONSE_BYTES) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise DeliveryFailed("The response took too long.", history="no response")
        chunk = response.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise DeliveryFailed(f"The response is over {limit} bytes.",
                                 history="response too large")


def post(url: str, body: bytes, headers: Mapping[str, str] | None = None, *,
         signing_secret: str = "", delivery_id: str = "") -> Answer:
    """POST `body` to `url`; returns the answer when its status is 2xx, raises otherwise.

    With a signing secret, the request carries `X-Aforo-Signature: t=<unix>,v1=<hex>` over
    "<t>.<body>"; with a delivery id, `X-Aforo-Delivery` (receivers deduplicate on it).
    """
    target = target_of(url)
    address = pinned_address(target)
    sent = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
            **dict(headers or {})}
    if signing_secret:
        sent[SIGNATURE_HEADER] = signature(signing_secret, int(time.time()), body)
    if delivery_id:
        sent[DELIVERY_HEADER] = delivery_id
    return _exchange("POST", target, address, sent, body, timeout_s=TOTAL_TIMEOUT_S,
                     max_bytes=MAX_RESPONSE_BYTES)


FETCH_MAX_BYTES = 32 * 1024 * 1024  # a provider's page of cost buckets
FETCH_TOTAL_TIMEOUT_S = 30.0


def get(url: str, headers: Mapping[str, str] | None = None, *,
        max_bytes: int = FETCH_MAX_BYTES) -> Answer:
    """GET `url` (a provider API a user configured, such as a cost source's); the same
    address checks and pinning as post(). The answer when 2xx; otherwise DeliveryFailed, whose
    `status` is the HTTP status (None when there was no response), so callers can retry 429
    and 5xx. Headers (credentials) are never logged."""
    target = target_of(url)
    address = pinned_address(target)
    return _exchange("GET", target, address, {
        "User-Agent": USER_AGENT, "Accept": "application/json", **dict(headers or {})}, None,
        timeout_s=FETCH_TOTAL_TIMEOUT_S, max_bytes=max_bytes)


def _exchange(method: str, target: Target, address: str, headers: Mapping[str, str],
              body: bytes | None, *, timeout_s: float, max_bytes: int) -> Answer:
    """One request over a connection pinned to `address`, within `timeout_s` in all: the answer
    when 2xx, else DeliveryFailed with the HTTP status (None without a response). Redirects are
    not followed: a 3xx is a failure like any other non-2xx. Only the error's type is logged,
    never the headers (credentials)."""
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = kind(target, address)
    deadline = time.monotonic() + timeout_s
    try:
        connection.putrequest(method, target.path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", target.host_header)
        for name, value in headers.items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        answer = Answer(status=response.status,
                        body=_read_capped(response, deadline, max_bytes))
    except OutboundError:
        raise
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        log.warning("outbound %s to %s (%s) failed: %s", method, target.host, address,
                    type(exc).__name__)
        failed = DeliveryFailed(f"No response from {target.host}: {type(exc).__name__}.",
                                history="no response")
        failed.status = None
        raise failed from None
    finally:
        connection.close()
    if not 200 <= answer.status < 300:
        failed = DeliveryFailed(f"{target.host} answered {answer.status}.",
                                history=answer.history)
        failed.status = answer.status
        raise failed
    return answer


def check_url(url: str) -> Target:
    """Check a destination URL when it is saved, before any delivery: the form of the URL,
    and, for an address written in the URL itself, that it is public. Names are resolved only
    when sending (they may change), where `post()` checks them again."""
    target = target_of(url)
    names, _networks = _allowed_hosts()
    if target.host in names:
        return target
    if target.host == "localhost" or target.host.endswith((".localhost", ".local",
                                                           ".internal")):
        raise DestinationRefused(f"{target.host} is not a public host name.")
    try:
        literal = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        reason = address_refusal(literal)
        if reason and not any(literal in n for n in _allowed_hosts()[1]):
            raise DestinationRefused(f"{target.host} is a {reason} address; Aforo sends only "
                                     "to public addresses.")
    return target


# --- signatures -----------------------------------------------------------------------------

def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def signature_valid(secret: str, header: str, body: bytes, *, now: float | None = None,
                    tolerance_s: int = REPLAY_WINDOW_S) -> bool:
    """What a receiver checks: a v1 HMAC that matches, with t within the replay window."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
