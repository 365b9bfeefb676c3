"""One permission class per role set, as API.md lists them; each answers 403 with a reason."""
from __future__ import annotations

from rest_framework import exceptions, permissions

from aforo.models import Role

READ_ROLES = frozenset(Role)
MANAGE_BUDGET_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.BILLING_ADMIN})
GUARD_ROLES = frozenset({Role.OWNER, Role.ADMIN})
INGEST_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.DEVELOPER})
BILLING_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.BILLING_ADMIN})
TOKEN_ROLES = frozenset({Role.OWNER, Role.ADMIN})


DESTINATION_READ_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.BILLING_ADMIN})


def sees_destinations(request) -> bool:
    """Whether the caller reads notification destinations in clear (Slack URLs and routing
    keys are credentials): VIEWER and DEVELOPER see them masked."""
    return getattr(request, "role", None) in DESTINATION_READ_ROLES


class TenantRequired(exceptions.PermissionDenied):
    default_code = "tenant_required"
    default_detail = "Send the X-Tenant-Id header naming a tenant this token belongs to."


class RoleRequired(exceptions.PermissionDenied):
    default_code = "forbidden"


class _RoleSet(permissions.BasePermission):
    roles: frozenset[Role] = frozenset()

    def has_permission(self, request, view) -> bool:
        access = request.auth
        if access is None or not hasattr(access, "tenant"):
            raise exceptions.NotAuthenticated()
        if access.tenant is None:
            raise TenantRequired()
        if access.role is None:
            raise RoleRequired("This token holds no role in that tenant.")
        if access.role not in self.roles:
            allowed = ", ".join(sorted(r.value for r in self.roles))
            raise RoleRequired(f"Role {access.role.value} may not do this; allowed: {allowed}.")
        request.tenant = access.tenant
        request.role = access.role
        return True


class CanRead(_RoleSet):
    roles = READ_ROLES


class CanManageBudgets(_RoleSet):
    roles = MANAGE_BUDGET_ROLES


class CanManageGuard(_RoleSet):
    roles = GUARD_ROLES


class CanIngest(_RoleSet):
    roles = INGEST_ROLES


class CanManageBilling(_RoleSet):
    roles = BILLING_ROLES


class ReadOrWrite(_RoleSet):
    """Safe methods for every role; writes for the `write_roles` of the subclass."""

    write_roles: frozenset[Role] = frozenset()

    def has_permission(self, request, view) -> bool:
        self.roles = READ_ROLES if request.method in permissions.SAFE_METHODS else self.write_roles
        return super().has_permission(request, view)


class CanManageTokens(_RoleSet):
    roles = TOKEN_ROLES


class CatalogPermission(ReadOrWrite):
    write_roles = frozenset({Role.OWNER, Role.ADMIN, Role.BILLING_ADMIN, Role.DEVELOPER})
