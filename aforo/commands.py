"""Arguments the management commands share: an ISO-8601 instant and a tenant slug."""
from __future__ import annotations

from datetime import datetime, timezone

from django.core.management.base import CommandError

from aforo.models import Tenant


def instant_option(text: str, refusal: str) -> datetime:
    """An ISO-8601 date or instant, UTC where it names no zone; CommandError(refusal) else."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(refusal) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def tenant_option(slug: str) -> Tenant:
    """The tenant with this slug; CommandError naming it when there is none."""
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"No tenant {slug!r}.")
    return tenant
