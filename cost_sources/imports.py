"""Import runs: a file's cost lines into the event store, idempotent and correcting.

A run streams the file through its reader into `provider_cost_import_lines` (its own lines,
in batches, so a million-row CUR never sits in memory), then appends to `provider_cost_lines`
the difference between what the file says for the days it covers and what the source's lines
already sum to there, in one INSERT ... SELECT. Re-importing a file appends nothing; a corrected
file appends its corrections and the negations of lines it no longer holds; the sum over a
source's lines is always what its latest file for each day said.
"""
from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO

from django.db import transaction
from django.utils.timezone import now as _now  # aware, UTC

from aforo import eventstore
from aforo.errors import Conflict
from aforo.ledger.query import LedgerQuery, Table
from cost_sources.importers import READERS, CostLine, MalformedCostFile, ParseReport
from cost_sources.models import CostImport, CostSource

log = logging.getLogger(__name__)

BATCH_ROWS = 100_000
PROGRESS_EVERY = 50_000  # rows between updates of a run's rowsRead (and the command's line)
# A run still RUNNING after this long died with its process; it no longer blocks the source.
ABANDONED_AFTER = timedelta(hours=6)

_DIMENSIONS = ("tenant_id", "source_id", "line_key", "day", "charge_start", "charge_end",
               "provider", "service", "model", "line_item", "account_id", "project_id",
               "charge_category", "unit")
_DIMS = ", ".join(_DIMENSIONS)

# :TRICKY: hand-written tenant filters (an exemption of aforo/ledger/query.py): a UNION ALL of
# the file's lines and the negated existing lines of the covered days, summed per line, is the
# difference to append. Aliases q and c are not column names (ClickHouse would substitute an
# alias equal to a column into the other expressions). On a cluster both tables are
# Distributed, so the SELECT reads every shard and the INSERT routes by tenant.
DIFFERENCE_INSERT = f"""
INSERT INTO provider_cost_lines ({_DIMS}, import_id, quantity, cost_usd, recorded_at)
SELECT {_DIMS}, %(import_id)s, q, c, %(now)s
FROM (
    SELECT {_DIMS}, sum(quantity) AS q, sum(cost_usd) AS c
    FROM (
        SELECT {_DIMS}, quantity, cost_usd FROM provider_cost_import_lines
        WHERE tenant_id = %(tenant_id)s AND import_id = %(import_id)s
        UNION ALL
        SELECT {_DIMS}, -quantity, -cost_usd FROM provider_cost_lines
        WHERE tenant_id = %(tenant_id)s AND source_id = %(source_id)s
          AND day >= %(covered_start)s AND day < %(covered_end)s
    )
    GROUP BY {_DIMS}
    HAVING c != 0 OR q != 0
)
"""


def _import_id(run: CostImport) -> str:
    return f"import-{run.pk}"


# The staged row: the import's constants, then a CostLine's fields in this order.
STAGED_COLUMNS = ("tenant_id", "source_id", "import_id", "recorded_at", "line_key", "day",
                  "charge_start", "charge_end", "provider", "service", "model", "line_item",
                  "account_id", "project_id", "charge_category", "unit", "quantity",
                  "cost_usd")


def _row(constants: tuple, line: CostLine) -> tuple:
    return (*constants, line.line_key, line.day, line.charge_start, line.charge_end,
            line.provider, line.service, line.model, line.line_item, line.account_id,
            line.project_id, line.charge_category, line.unit, line.quantity, line.cost_usd)


def cost_import_start(*, source: CostSource, file_name: str = "",
                      now: datetime | None = None) -> CostImport:
    """A RUNNING run for the source; one at a time per source (another is a Conflict)."""
    now = now or _now()
    with transaction.atomic():
        CostSource.objects.select_for_update().filter(pk=source.pk).first()
        running = source.imports.filter(status=CostImport.Status.RUNNING)
        running.filter(started_at__lt=now - ABANDONED_AFTER).update(
            status=CostImport.Status.FAILED, error="abandoned: its process stopped",
            finished_at=now)
        if running.exists():
            raise Conflict(f"An import of {source.name} is already running; wait for it to "
                           "finish.", field="file")
        return CostImport.objects.create(source=source, file_name=file_name[:300],
                                         started_at=now)


def cost_import_file(*, source: CostSource, stream: IO[bytes], file_name: str = "",
                     progress: Callable[[CostImport], None] | None = None,
                     now: datetime | None = None) -> CostImport:
    """Import a file of the source's kind; the run it returns says what happened. A malformed
    file raises MalformedCostFile (the run is FAILED and nothing is applied)."""
    run = cost_import_start(source=source, file_name=file_name, now=now)
    try:
        return cost_import_apply(run=run, stream=stream, progress=progress)
    except MalformedCostFile as exc:
        _fail(run, exc.message)
        raise
    except Exception as exc:
        log.exception("cost import %s failed", run.pk)
        _fail(run, f"{type(exc).__name__}: {exc}")
        raise


def _spool_dir() -> Path:
    from django.conf import settings

    return Path(settings.VAR_DIR) / "cost-uploads"


def cost_import_queue(*, source: CostSource, stream: IO[bytes],
                      file_name: str = "") -> CostImport:
    """A large upload: the run starts (RUNNING, one at a time per source), the file is kept
    under VAR_DIR/cost-uploads until a background task (`cost_sources.import_file`) has
    imported it; the run's rowsRead moves while it does. In eager mode (tests, the embedded
    store) the task runs before this returns."""
    from cost_sources.tasks import import_file

    run = cost_import_start(source=source, file_name=file_name)
    spool = _spool_dir()
    spool.mkdir(parents=True, exist_ok=True)
    path = spool / f"{run.pk}.upload"
    try:
        with open(path, "wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)
    except OSError as exc:
        _fail(run, f"The upload could not be kept for import ({type(exc).__name__}).")
        raise
    import_file.delay(run.pk, str(path))
    return run


def cost_import_spooled(*, run_id: int, path: str) -> CostImport | None:
    """The background half of cost_import_queue: import the kept file into its run, record a
    failure on the run (a malformed file's row and column), and remove the file."""
    run = CostImport.objects.select_related("source__tenant").filter(pk=run_id).first()
    try:
        if run is None or run.status != CostImport.Status.RUNNING:
            return run
        with open(path, "rb") as stream:
            return cost_import_apply(run=run, stream=stream)
    except MalformedCostFile as exc:
        _fail(run, exc.message)
        return run
    except Exception as exc:
        log.exception("cost import %s failed", run_id)
        _fail(run, f"{type(exc).__name__}: {exc}")
        return run
    finally:
        Path(path).unlink(missing_ok=True)


def _fail(run: CostImport, error: str) -> None:
    run.status = CostImport.Status.FAILED
    run.error = error
    run.finished_at = _now()
    run.save()


def cost_import_apply(*, run: CostImport, stream: IO[bytes],
                      progress: Callable[[CostImport], None] | None = None) -> CostImport:
    source = run.source
    tenant_id = source.tenant.slug
    source_id = str(source.pk)
    import_id = _import_id(run)
    now = _now().replace(microsecond=0)

    def moved(rows_read: int) -> None:
        run.rows_read = rows_read
        run.save(update_fields=["rows_read"])
        if progress:
            progress(run)

    report = ParseReport(progress=moved, progress_every=PROGRESS_EVERY)
    constants = (tenant_id, source_id, import_id, now)
    batch: list[tuple] = []
    total = Decimal(0)
    imported = 0
    for line in READERS[source.kind](stream, report):
        batch.append(_row(constants, line))
        total += line.cost_usd
        imported += 1
        if len(batch) >= BATCH_ROWS:
            eventstore.insert_rows(Table.COST_IMPORT_LINES.value, STAGED_COLUMNS, batch)
            batch = []
    if batch:
        eventstore.insert_rows(Table.COST_IMPORT_LINES.value, STAGED_COLUMNS, batch)
    if report.covered_start is not None:
        eventstore.command(DIFFERENCE_INSERT, {
            "tenant_id": tenant_id, "source_id": source_id, "import_id": import_id,
            "covered_start": report.covered_start, "covered_end": report.covered_end,
            "now": now})
        changed = (LedgerQuery(tenant_id, Table.COST_LINES).where(source_id=source_id)
                   .where(import_id=import_id).measures("lines").one()["lines"])
    else:
        changed = 0
    run.rows_read = report.rows_read
    run.rows_imported = imported
    run.rows_skipped = report.rows_skipped
    run.skipped = [{"row": row, "reason": reason} for row, reason in report.skipped]
    run.lines_changed = changed
    run.total_usd = total
    run.period_start = report.covered_start
    run.period_end = report.covered_end
    run.status = CostImport.Status.SUCCEEDED
    run.finished_at = _now()
    run.save()
    if progress:
        progress(run)
    return run
