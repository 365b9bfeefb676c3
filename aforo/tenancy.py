"""Tenancy services: tenants, memberships and API tokens (shown once, stored as a hash)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

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
                     name: str = "") -> IssuedToken:
    """Issue a token; with a user, the user also gets that role in the tenant."""
    role = Role(role)
    user = None
    if username:
        user, _ = get_user_model().objects.get_or_create(username=username)
        membership_set(tenant=tenant, user=user, role=role)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        tenant=tenant, role=role, user=user, name=name, prefix=raw[:12],
        token_hash=ApiToken.hash_token(raw),
    )
    return IssuedToken(token=token, raw=raw)
