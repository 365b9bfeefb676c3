"""DRF authentication: a bearer API token, or the console's session, plus X-Tenant-Id.

Authentication answers who is calling (401 when a token is absent or wrong). Which tenant and
role the call acts as is resolved here too and checked by aforo.permissions (403).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from django.utils import timezone
from rest_framework import authentication, exceptions

from aforo.models import ApiToken, Membership, Role, Tenant

TENANT_HEADER = "HTTP_X_TENANT_ID"


@dataclass(frozen=True)
class TenantAccess:
    """What a request may act as: a tenant (None when no valid X-Tenant-Id) and its role."""

    tenant: Tenant | None
    role: Role | None
    token: ApiToken | None = None


# Per-process memory of recent lookups, so a hot endpoint (the guard's decision) does not pay
# two database queries per call. A revoked token stops working within AUTH_MEMORY_S.
AUTH_MEMORY_S = 5.0
_recent: dict[tuple[str, str], tuple[float, object]] = {}


def _remembered(kind: str, key: str, load):
    now = time.monotonic()
    held = _recent.get((kind, key))
    if held is not None and now - held[0] < AUTH_MEMORY_S:
        return held[1]
    value = load()
    if len(_recent) > 10_000:
        _recent.clear()
    _recent[(kind, key)] = (now, value)
    return value


def token_read_at(token_hash: str) -> float | None:
    """When this process last read the token from the database (monotonic), if it holds it."""
    held = _recent.get(("token", token_hash))
    return held[0] if held is not None else None


def forget_token(token_hash: str) -> None:
    """Drop a token from this process's memory (its revocation takes effect at once here;
    other processes forget it within AUTH_MEMORY_S, and their doors within the refresher's
    token round, aforo.refresher)."""
    from aforo.refresher import token_drop

    _recent.pop(("token", token_hash), None)
    token_drop(token_hash)


def _member_role(user_id: int, tenant_id: int) -> Role | None:
    role = _remembered("member", f"{user_id}:{tenant_id}", lambda: (
        Membership.objects.filter(user_id=user_id, tenant_id=tenant_id)
        .values_list("role", flat=True).first()))
    return Role(role) if role else None


def token_refusal(token: ApiToken, now) -> str | None:
    """Why a stored token no longer works, or None: expired, its user deactivated, or its
    user no longer holding a role that may hold this token in the tenant."""
    if token.expires_at is not None and token.expires_at <= now:
        return "This API token has expired; issue a new one."
    if token.user_id is not None:
        if not token.user.is_active:
            return "The user this token belongs to is deactivated."
        held = _member_role(token.user_id, token.tenant_id)
        if held is None or Role(token.role) not in issuable_roles(held):
            return "The user this token belongs to no longer holds its role in the tenant."
    return None


def issuable_roles(role: Role) -> frozenset[Role]:
    """The roles a holder of `role` may issue tokens for (and so may hold tokens of)."""
    if role == Role.OWNER:
        return frozenset(Role)
    if role == Role.ADMIN:
        return frozenset(Role) - {Role.OWNER}
    return frozenset({role})


def _tenant_from_header(request) -> Tenant | None:
    slug = request.META.get(TENANT_HEADER, "").strip()
    if not slug:
        return None
    return _remembered("tenant", slug, lambda: Tenant.objects.filter(slug=slug).first())


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <token>'.")
        token_hash = ApiToken.hash_token(raw.strip())
        token = _remembered("token", token_hash, lambda: (
            ApiToken.objects.select_related("tenant", "user")
            .filter(token_hash=token_hash, revoked_at__isnull=True).first()))
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        now = timezone.now()
        refusal = token_refusal(token, now)
        if refusal:
            raise exceptions.AuthenticationFailed(refusal)
        tenant = _tenant_from_header(request)
        role = Role(token.role) if tenant is not None and tenant.pk == token.tenant_id else None
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            token.last_used_at = now
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return (token.user, TenantAccess(tenant=tenant, role=role, token=token))

    def authenticate_header(self, request) -> str:
        return self.keyword


class TenantSessionAuthentication(authentication.SessionAuthentication):
    """The console's logged-in user, acting with their membership role in X-Tenant-Id."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        tenant = _tenant_from_header(request)
        role = None
        if tenant is not None:
            membership = Membership.objects.filter(tenant=tenant, user=user).first()
            role = Role(membership.role) if membership else None
        return (user, TenantAccess(tenant=tenant, role=role))


def authorize_token(request, permission_class) -> TenantAccess:
    """Bearer-token auth and a role check for plain (non-DRF) views, raising DRF's exceptions.

    The ingest endpoint is an async Django view (so concurrent requests can share one insert);
    it authenticates exactly as the DRF views do.
    """
    authenticator = BearerTokenAuthentication()
    result = authenticator.authenticate(request)
    if result is None:
        raise exceptions.NotAuthenticated()
    request.auth = result[1]
    permission_class().has_permission(request, None)
    return result[1]
