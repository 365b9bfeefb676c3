"""Tenancy services: tenants, memberships and API tokens (shown once, stored as a hash)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from aforo.authentication import forget_token, issuable_roles
from aforo.errors import ApiError
from aforo.models import ApiToken, Membership, Role, Tenant

TOKEN_PREFIX = "afo_"


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    raw: str  # the only time the secret exists in clear


def tenant_create(*, slug: str, name: str = "") -> Tenant:
    tenant = Tenant(slug=slug, name=name or slug)
    tenant.full_clean()
    tenant.save()
    return tenant


def membership_set(*, tenant: Tenant, user, role: Role | str) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        tenant=tenant, user=user, defaults={"role": Role(role)}
    )
    return membership


@transaction.atomic
def api_token_create(*, tenant: Tenant, role: Role | str, username: str | None = None,
                     name: str = "", expires_at: datetime | None = None) -> IssuedToken:
    """Issue a token; with a user, the user also gets that role in the tenant."""
    role = Role(role)
    user = None
    if username:
        user, _ = get_user_model().objects.get_or_create(username=username)
        membership_set(tenant=tenant, user=user, role=role)
    return _issue(tenant=tenant, role=role, user=user, name=name, expires_at=expires_at)


def api_token_issue(*, tenant: Tenant, role: Role | str, issuer_role: Role, issuer_user=None,
                    name: str = "", expires_at: datetime | None = None) -> IssuedToken:
    """A token issued through the API: of a role the issuer may issue, bound to the issuing
    user (so it stops working when that user leaves or loses the role), optionally expiring."""
    role = Role(role)
    if role not in issuable_roles(issuer_role):
        raise ApiError(f"A {issuer_role.value} may not issue {role.value} tokens.",
                       field="role", code="forbidden", status_code=403)
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiError("expiresAt must be in the future.", field="expiresAt")
    return _issue(tenant=tenant, role=role, user=issuer_user, name=name, expires_at=expires_at)


def _issue(*, tenant: Tenant, role: Role, user, name: str,
           expires_at: datetime | None) -> IssuedToken:
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        tenant=tenant, role=role, user=user, name=name, prefix=raw[:12],
        token_hash=ApiToken.hash_token(raw), expires_at=expires_at,
    )
    return IssuedToken(token=token, raw=raw)


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a token for good; this process forgets it at once."""
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    forget_token(token.token_hash)
    return token


def tenant_create_with_owner(*, slug: str, name: str = "", owner: str = "") -> tuple[Tenant, bool]:
    """A tenant, and with `owner` that user (created if new, without a usable password) as its
    OWNER; returns the tenant and whether the user was created."""
    with transaction.atomic():
        tenant = tenant_create(slug=slug, name=name)
        created = False
        if owner:
            user, created = get_user_model().objects.get_or_create(username=owner)
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            membership_set(tenant=tenant, user=user, role=Role.OWNER)
    return tenant, created
