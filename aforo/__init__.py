"""Aforo: the margin control plane for usage-billed and AI products."""
from aforo.celery import app as celery_app

__all__ = ["celery_app"]
