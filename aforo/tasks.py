"""Aforo's own periodic jobs (thin: each calls one service)."""
from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(name="aforo.demo_traffic")
def demo_traffic() -> int:
    """Send a few live events to the demo tenant (only with AFORO_DEMO_TRAFFIC, as make demo)."""
    from aforo.demo import DEMO_TENANT, demo_traffic_send
    from aforo.models import Tenant

    if not settings.AFORO_DEMO_TRAFFIC:
        return 0
    tenant = Tenant.objects.filter(slug=DEMO_TENANT).first()
    return demo_traffic_send(tenant) if tenant else 0
