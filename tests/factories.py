"""Test data through one door: `ingest(tenant, events)` sends API-shaped events through the real
ingestion service (validation, dedupe, pricing, rating, the ledger)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aforo.models import Tenant
from ingestion.services import events_ingest_dicts


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def ingest(tenant: Tenant, events: list[dict[str, Any]],
           now: datetime | None = None) -> list[dict[str, Any]]:
    """Ingest events given as API dicts; returns the ledger rows written. Any rejected event
    fails the test, so test data is always valid."""
    events = [{k: _iso(v) for k, v in e.items()} for e in events]
    report = events_ingest_dicts(tenant=tenant, events=events,
                                 now=now or datetime.now(timezone.utc))
    rejected = [r for r in report.results if r.status == "rejected"]
    assert not rejected, f"test events rejected: {rejected[:3]}"
    return report.rows
