"""Cost sources' writes: create, update and delete sources, import files, the tolerance."""
from __future__ import annotations

from decimal import Decimal

from aforo import outbound
from aforo.credentials import credentials_seal
from aforo.errors import Conflict, DomainError, NotFound, conflict_on_duplicate
from aforo.models import Tenant
from cost_sources.imports import (  # noqa: F401  (the services of an import)
    cost_import_file,
    cost_import_queue,
)
from cost_sources.models import CostSource, Kind, Mode, ReconciliationSettings, Schedule

POLLED_KINDS = (Kind.OPENAI_COSTS, Kind.ANTHROPIC_COSTS)

_UNSET = object()


def cost_source_get(*, tenant: Tenant, source_id: int) -> CostSource:
    source = CostSource.objects.filter(tenant=tenant, pk=source_id).first()
    if source is None:
        raise NotFound(f"No cost source {source_id} in this tenant.", field="id")
    return source


def _check(kind: str, mode: str, name: str, base_url: str, schedule: str) -> None:
    if not name.strip():
        raise DomainError("A cost source needs a name.", field="name")
    if kind not in Kind.values:
        raise DomainError(f"kind must be one of {', '.join(Kind.values)}.", field="kind")
    if mode not in Mode.values:
        raise DomainError(f"mode must be one of {', '.join(Mode.values)}.", field="mode")
    if mode == Mode.POLL and kind not in POLLED_KINDS:
        raise DomainError(f"{Kind(kind).label} cannot be polled (its files live in your own "
                          "storage); use UPLOAD.", field="mode")
    if schedule and schedule not in Schedule.values:
        raise DomainError("schedule is hourly or daily.", field="schedule")
    if base_url:
        try:
            outbound.check_url(base_url)
        except outbound.DestinationRefused as exc:
            raise DomainError(str(exc), field="base_url") from None


def cost_source_create(*, tenant: Tenant, name: str, kind: str, mode: str = Mode.UPLOAD,
                       base_url: str = "", schedule: str = "",
                       credentials: str = "") -> CostSource:
    """A source; `credentials` (a POLL source's API key) are stored sealed, never returned."""
    _check(kind, mode, name, base_url, schedule)
    sealed = credentials_seal(credentials) if credentials else ""
    with conflict_on_duplicate(f"A cost source named {name.strip()!r} exists already.",
                               field="name"):
        return CostSource.objects.create(tenant=tenant, name=name.strip(), kind=kind,
                                         mode=mode, base_url=base_url, schedule=schedule,
                                         credentials_sealed=sealed)


def cost_source_update(*, source: CostSource, name: str | None = None,
                       mode: str | None = None, base_url: str | None = None,
                       schedule: str | None = None,
                       credentials: str | None = None) -> CostSource:
    """The kind stays: the lines a source holds are of its kind. Credentials are replaced when
    given (an empty string removes them)."""
    changed = {"name": name, "mode": mode, "base_url": base_url, "schedule": schedule}
    changed = {k: v for k, v in changed.items() if v is not None}
    _check(source.kind, changed.get("mode", source.mode), changed.get("name", source.name),
           changed.get("base_url", source.base_url), changed.get("schedule", source.schedule))
    if credentials is not None:
        source.credentials_sealed = credentials_seal(credentials) if credentials else ""
    for key, value in changed.items():
        setattr(source, key, value.strip() if key == "name" else value)
    with conflict_on_duplicate(f"A cost source named {source.name!r} exists already.",
                               field="name"):
        source.save()
    return source


def cost_source_delete(*, source: CostSource) -> None:
    """Only a source that never imported anything: billed lines stay, as the ledger's do."""
    if source.allocations.exists():
        raise Conflict("This source's cost was allocated onto events; it cannot be deleted.",
                       field="id")
    if source.imports.filter(lines_changed__gt=0).exists():
        raise Conflict("This source's lines are in the ledger of billed cost; it cannot be "
                       "deleted.", field="id")
    source.delete()


def reconciliation_settings_get(*, tenant: Tenant) -> ReconciliationSettings:
    current, _ = ReconciliationSettings.objects.get_or_create(tenant=tenant)
    return current


def reconciliation_settings_update(*, tenant: Tenant,
                                   tolerance_pct: Decimal) -> ReconciliationSettings:
    if not tolerance_pct.is_finite() or not (0 <= tolerance_pct <= 100):
        raise DomainError("tolerance_pct is a percentage from 0 to 100.", field="tolerance_pct")
    current = reconciliation_settings_get(tenant=tenant)
    current.tolerance_pct = tolerance_pct
    current.save()
    return current
