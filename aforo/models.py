"""Tenancy (tenants, memberships, API tokens) and the catalog (customers, products)."""
from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models


class Role(models.TextChoices):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    BILLING_ADMIN = "BILLING_ADMIN"
    DEVELOPER = "DEVELOPER"
    VIEWER = "VIEWER"


class Tenant(models.Model):
    """A customer organisation of Aforo; every row and ledger entry belongs to one."""

    slug = models.CharField(
        max_length=64, unique=True,
        validators=[RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", "lowercase letters, digits, - and _")],
        help_text="The id API callers send in X-Tenant-Id.",
    )
    name = models.CharField(max_length=200)
    time_zone = models.CharField(
        max_length=64, default="UTC",
        help_text="IANA name; periods, budgets and daily series follow this zone's calendar days.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    """A user's role in a tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="one_role_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} as {self.role}"


class ApiToken(models.Model):
    """A bearer token for one tenant and role; only its SHA-256 is stored."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_tokens")
    role = models.CharField(max_length=20, choices=Role.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=12, help_text="The first characters, to recognise it.")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True,
                                      help_text="Empty: the token does not expire.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.tenant}, {self.role})"

    @staticmethod
    def hash_token(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()


class TenantScoped(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True


class CustomerTier(models.TextChoices):
    FREE = "FREE"
    PRO = "PRO"
    ENTERPRISE = "ENTERPRISE"


class CatalogEntry(TenantScoped):
    """A customer or a product: the tenant's own id for it, unique in the tenant, and a name."""

    external_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        constraints = [models.UniqueConstraint(fields=["tenant", "external_id"],
                                               name="%(class)s_external_id_per_tenant")]
        ordering = ["external_id"]

    def __str__(self) -> str:
        return self.name or self.external_id


class Customer(CatalogEntry):
    tier = models.CharField(max_length=20, choices=CustomerTier.choices, default=CustomerTier.FREE)


class ProductType(models.TextChoices):
    API_WITH_AI = "API_WITH_AI"
    AI_AGENT = "AI_AGENT"
    AI_FEATURE = "AI_FEATURE"
    API = "API"
    SAAS = "SAAS"
    OTHER = "OTHER"


class Product(CatalogEntry):
    product_type = models.CharField(max_length=20, choices=ProductType.choices,
                                    default=ProductType.OTHER)
