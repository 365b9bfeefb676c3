"""Celery tasks of budgets: thin wrappers over the services."""
from datetime import datetime, timezone

from celery import shared_task

from budgets.services import alerts_evaluate


@shared_task(name="budgets.evaluate_alerts")
def evaluate_alerts() -> int:
    """Every minute: rules and budgets fire or resolve, and due deliveries are sent."""
    return len(alerts_evaluate(now=datetime.now(timezone.utc)))
