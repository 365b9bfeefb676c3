"""Export schedules: create, change, delete, rotate the webhook secret, and run.

A run delivers the ledger entries recorded after the schedule's watermark and before its start
minus the schedule's lag (a group commit in flight may still be writing rows stamped a moment
ago), in (recorded_at, entry_id) order, chunk by chunk; after each chunk lands the watermark
moves past it, in the same transaction that renews the run's lease. A run killed anywhere
leaves the watermark at the last chunk known delivered; the next run starts there, and the
destination, keyed by entry id, holds a chunk delivered twice once. So every entry ends up in
the destination exactly once across runs, kills and restarts.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from aforo import outbound
from aforo.credentials import credentials_open
from aforo.errors import Conflict, DomainError, NotFound, conflict_on_duplicate
from aforo.eventstore import EventStoreError
from aforo.models import Tenant
from exports import queries
from exports.destinations import (
    destination_open,
    dsn_checked,
    table_name_checked,
)
from exports.models import DestinationKind, ExportRun, ExportSchedule, dsn_split

LEASE = timedelta(minutes=2)
MAX_CHUNK_ROWS = 50_000
DEFAULT_CHUNK_ROWS = {"WEBHOOK": 1000, "POSTGRES": 5000, "CLICKHOUSE": 5000}


@dataclass(frozen=True)
class ScheduleCreated:
    schedule: ExportSchedule
    signing_secret: str  # shown once (webhooks); empty for tables


def _checked(*, kind: str, destination: str, table_name: str, interval_minutes: int,
             lag_seconds: int, chunk_rows: int) -> None:
    if kind not in DestinationKind.values:
        raise DomainError("kind must be WEBHOOK, POSTGRES or CLICKHOUSE.", field="kind")
    if kind == DestinationKind.WEBHOOK:
        try:
            outbound.check_url(destination)
        except outbound.DestinationRefused as exc:
            raise DomainError(f"That destination cannot be used: {exc}",
                              field="destination") from None
        if table_name:
            raise DomainError("A webhook has no table.", field="table_name")
    else:
        dsn_checked(destination, kind)
        table_name_checked(table_name)
    if not 1 <= interval_minutes <= 7 * 24 * 60:
        raise DomainError("interval_minutes must be between 1 and 10080.",
                          field="interval_minutes")
    if not 0 <= lag_seconds <= 86_400:
        raise DomainError("lag_seconds must be between 0 and 86400.", field="lag_seconds")
    if not 1 <= chunk_rows <= MAX_CHUNK_ROWS:
        raise DomainError(f"chunk_rows must be between 1 and {MAX_CHUNK_ROWS}.",
                          field="chunk_rows")


def export_schedule_create(*, tenant: Tenant, name: str, kind: str, destination: str,
                           table_name: str = "", interval_minutes: int = 60,
                           lag_seconds: int = 120, chunk_rows: int | None = None,
                           enabled: bool = True, now: datetime | None = None,
                           ) -> ScheduleCreated:
    chunk_rows = chunk_rows or DEFAULT_CHUNK_ROWS.get(kind, 1000)
    _checked(kind=kind, destination=destination, table_name=table_name,
             interval_minutes=interval_minutes, lag_seconds=lag_seconds, chunk_rows=chunk_rows)
    secret = secrets.token_hex(32) if kind == DestinationKind.WEBHOOK else ""
    with conflict_on_duplicate(f"An export schedule named {name!r} exists.", field="name"):
        schedule = ExportSchedule(
            tenant=tenant, name=name, kind=kind, table_name=table_name, signing_secret=secret,
            interval_minutes=interval_minutes, lag_seconds=lag_seconds,
            chunk_rows=chunk_rows, enabled=enabled, next_run_at=now or timezone.now())
        schedule.set_destination(destination)  # a DSN's password sealed, before the insert
        schedule.save(force_insert=True)
    return ScheduleCreated(schedule, secret)


def export_schedule_get(*, tenant: Tenant, schedule_id: int) -> ExportSchedule:
    schedule = ExportSchedule.objects.filter(tenant=tenant, pk=schedule_id).first()
    if schedule is None:
        raise NotFound("No such export schedule.", field="schedule_id")
    return schedule


def _password(sealed: str) -> str | None:
    return credentials_open(sealed) if sealed else None


_CHANGEABLE = ("name", "destination", "table_name", "interval_minutes", "lag_seconds",
               "chunk_rows", "enabled")


def export_schedule_update(*, schedule: ExportSchedule, **changes) -> ExportSchedule:
    """Change what `changes` names. A new destination or table starts from the beginning (it
    holds nothing yet); the watermark stays otherwise."""
    unknown = set(changes) - set(_CHANGEABLE)
    if unknown:
        raise DomainError(f"{sorted(unknown)[0]} cannot be changed.", field=sorted(unknown)[0])
    merged = {name: changes.get(name, getattr(schedule, name)) for name in _CHANGEABLE}
    # The stored destination (its password masked) checks as well as the full one: a change
    # that leaves the destination alone needs no key.
    _checked(kind=schedule.kind, destination=merged["destination"],
             table_name=merged["table_name"], interval_minutes=merged["interval_minutes"],
             lag_seconds=merged["lag_seconds"], chunk_rows=merged["chunk_rows"])
    moved = merged["table_name"] != schedule.table_name
    if "destination" in changes:
        shown, sealed = dsn_split(schedule.kind, merged.pop("destination"))
        moved = (moved or shown != schedule.destination
                 or _password(sealed) != _password(schedule.destination_password_sealed))
        schedule.destination, schedule.destination_password_sealed = shown, sealed
    else:
        merged.pop("destination")
    for name, value in merged.items():
        setattr(schedule, name, value)
    if moved:
        schedule.watermark_recorded_at, schedule.watermark_entry_id = None, ""
    with conflict_on_duplicate(f"An export schedule named {schedule.name!r} exists.",
                               field="name"):
        schedule.save()
    return schedule


def export_schedule_delete(*, schedule: ExportSchedule) -> None:
    schedule.delete()


def export_schedule_rotate_secret(*, schedule: ExportSchedule) -> str:
    if schedule.kind != DestinationKind.WEBHOOK:
        raise DomainError("Only a webhook schedule signs its deliveries.", field="kind")
    schedule.signing_secret = secrets.token_hex(32)
    schedule.save(update_fields=["signing_secret"])
    return schedule.signing_secret


# --- runs ---------------------------------------------------------------------------------

def _watermark_text(recorded_at: datetime | None, entry_id: str) -> str:
    return "" if recorded_at is None else f"{recorded_at:%Y-%m-%dT%H:%M:%SZ} {entry_id}"


def chunk_id(schedule: ExportSchedule, first: str, last: str) -> str:
    """The same for the same entries: a receiver deduplicates a chunk sent again on it."""
    digest = hashlib.sha256(f"{schedule.pk}\n{first}\n{last}".encode()).hexdigest()[:24]
    return f"exp_{schedule.pk}_{digest}"


def _start(schedule: ExportSchedule, trigger: str, now: datetime) -> ExportRun:
    with transaction.atomic():
        locked = ExportSchedule.objects.select_for_update().get(pk=schedule.pk)
        for running in locked.runs.filter(state=ExportRun.State.RUNNING):
            if running.lease_until > now:
                raise Conflict("A run of this schedule is in progress.", field="schedule_id")
            running.state = ExportRun.State.INTERRUPTED
            running.finished_at = now
            running.error = ("Its process stopped before the run finished; the next run "
                             "continued from the last chunk delivered.")
            running.save()
        return ExportRun.objects.create(
            schedule=locked, tenant=locked.tenant, trigger=trigger, started_at=now,
            lease_until=now + LEASE,
            recorded_before=(now - timedelta(seconds=locked.lag_seconds)).replace(
                microsecond=0),
            watermark_from=_watermark_text(locked.watermark_recorded_at,
                                           locked.watermark_entry_id))


def export_run(*, schedule: ExportSchedule, trigger: str = ExportRun.Trigger.API,
               now: datetime | None = None, pause_s: float = 0) -> ExportRun:
    """One run of a schedule, to the end of what is there (see the module docstring)."""
    now = now or timezone.now()
    run = _start(schedule, trigger, now)
    schedule.refresh_from_db()
    state, error = ExportRun.State.SUCCEEDED, ""
    destination = None
    try:
        destination = destination_open(kind=schedule.kind, destination=schedule.dsn(),
                                       table_name=schedule.table_name,
                                       signing_secret=schedule.signing_secret)
        columns = queries.ledger_columns()
        names = [c.name for c in columns]
        at_recorded, at_entry = names.index("recorded_at"), names.index("entry_id")
        destination.prepare(columns)
        after = None
        if schedule.watermark_recorded_at is not None:
            after = (schedule.watermark_recorded_at, schedule.watermark_entry_id)
        while True:
            _names, rows = queries.entries_since(schedule.tenant.slug, after=after,
                                                 before=run.recorded_before,
                                                 limit=schedule.chunk_rows)
            if not rows:
                break
            destination.deliver(chunk_id(schedule, rows[0][at_entry], rows[-1][at_entry]),
                                columns, rows)
            after = (rows[-1][at_recorded], rows[-1][at_entry])
            with transaction.atomic():  # the watermark moves only past what landed
                ExportSchedule.objects.filter(pk=schedule.pk).update(
                    watermark_recorded_at=after[0], watermark_entry_id=after[1])
                ExportRun.objects.filter(pk=run.pk).update(
                    rows_delivered=F("rows_delivered") + len(rows),
                    chunks_delivered=F("chunks_delivered") + 1,
                    watermark_to=_watermark_text(*after),
                    lease_until=timezone.now() + LEASE)
            if len(rows) < schedule.chunk_rows:
                break
            if pause_s:
                time.sleep(pause_s)
    except (DomainError, EventStoreError) as exc:
        state, error = ExportRun.State.FAILED, getattr(exc, "message", str(exc))
    except Exception:
        ExportRun.objects.filter(pk=run.pk).update(
            state=ExportRun.State.FAILED, finished_at=timezone.now(),
            error="An internal error stopped the run; it has been logged.")
        raise
    finally:
        if destination is not None:
            destination.close()
    finished = timezone.now()
    ExportRun.objects.filter(pk=run.pk).update(state=state, error=error, finished_at=finished)
    ExportSchedule.objects.filter(pk=schedule.pk).update(
        next_run_at=max(now, finished) + timedelta(minutes=schedule.interval_minutes))
    run.refresh_from_db()
    return run


def export_runs_due(*, now: datetime | None = None, limit: int = 20) -> int:
    """Run every enabled schedule that is due (the periodic job); returns how many ran."""
    now = now or timezone.now()
    ran = 0
    due = ExportSchedule.objects.select_related("tenant").filter(
        enabled=True, next_run_at__lte=now).order_by("next_run_at")[:limit]
    for schedule in due:
        try:
            export_run(schedule=schedule, trigger=ExportRun.Trigger.SCHEDULE, now=now)
            ran += 1
        except Conflict:
            continue  # another worker is running it
    return ran
