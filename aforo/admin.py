"""Admin for tenancy and the catalog; every list shows and filters by tenant."""
from django.contrib import admin

from aforo.models import ApiToken, Customer, Membership, Product, Tenant


class TenantScopedAdmin(admin.ModelAdmin):
    """Tenant-aware admin: the tenant is always shown, filterable, and selected with its rows."""

    list_filter = ("tenant",)
    list_select_related = ("tenant",)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    list_display = ("user", "tenant", "role")
    list_filter = ("tenant", "role")


@admin.register(ApiToken)
class ApiTokenAdmin(TenantScopedAdmin):
    list_display = ("prefix", "tenant", "role", "user", "name", "created_at", "last_used_at",
                    "revoked_at")
    list_filter = ("tenant", "role")
    # The hash is useless to read and must never be edited; tokens are issued by the command.
    readonly_fields = ("prefix", "token_hash", "created_at", "last_used_at")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(TenantScopedAdmin):
    list_display = ("external_id", "name", "tier", "tenant")
    list_filter = ("tenant", "tier")
    search_fields = ("external_id", "name")


@admin.register(Product)
class ProductAdmin(TenantScopedAdmin):
    list_display = ("external_id", "name", "product_type", "tenant")
    list_filter = ("tenant", "product_type")
    search_fields = ("external_id", "name")
