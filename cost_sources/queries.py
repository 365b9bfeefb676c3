"""Cost sources' reads: billed cost by a dimension, and the reconciliation of billed with
metered cost per UTC day and provider, model or service."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from aforo.ledger.query import LedgerQuery, Table
from aforo.periods import Period

ZERO = Decimal(0)
HUNDRED = Decimal(100)

# A reconciliation group: the cost lines' column, and the ledger's column it meets. A
# provider's service (CUR ProductCode, FOCUS ServiceName; "OpenAI" and "Anthropic" for theirs)
# meets the events' provider: what an event metered is what its provider billed.
GROUPS = {"provider": ("provider", "provider"), "model": ("model", "model"),
          "service": ("service", "provider")}

MATCHED, UNDER_METERED, OVER_METERED = "MATCHED", "UNDER_METERED", "OVER_METERED"


def billed_by(tenant_id: str, column: str, *, source_id: str | None = None,
              period: Period | None = None) -> dict[str, Decimal]:
    """Billed USD per value of a cost-line column (exact, at twelve decimals)."""
    query = (LedgerQuery(tenant_id, Table.COST_LINES).where(source_id=source_id)
             .dimensions(column).measures("billed").group_by(column))
    if period is not None:
        query = query.period(period)
    return {row[column]: row["billed"] for row in query.fetch()}


def billed_total(tenant_id: str, *, source_id: str | None = None,
                 period: Period | None = None) -> Decimal:
    query = LedgerQuery(tenant_id, Table.COST_LINES).where(source_id=source_id)
    if period is not None:
        query = query.period(period)
    return query.measures("billed").one()["billed"] or ZERO


def source_totals(tenant_id: str) -> dict[str, tuple[Decimal, date | None, date | None]]:
    """Per source id: billed USD, and the first and last day its lines hold."""
    rows = (LedgerQuery(tenant_id, Table.COST_LINES).dimensions("source_id")
            .expressions("min(day) AS first_day", "max(day) AS last_day")
            .measures("billed").group_by("source_id").fetch())
    return {r["source_id"]: (r["billed"], r["first_day"], r["last_day"]) for r in rows}


@dataclass(frozen=True)
class ReconciliationRow:
    day: date
    group: str
    billed_usd: Decimal
    metered_usd: Decimal
    gap_usd: Decimal  # billed minus metered: positive when events carry less than the bill
    gap_pct: Decimal | None  # of billed; None when nothing was billed
    status: str


def reconciliation_status(billed: Decimal, metered: Decimal,
                          tolerance_pct: Decimal) -> tuple[Decimal, Decimal | None, str]:
    """The gap, its share of the bill, and MATCHED (within the tolerance), UNDER_METERED (the
    events carry less than the bill) or OVER_METERED."""
    gap = billed - metered
    if billed == 0:
        status = MATCHED if metered == 0 else (OVER_METERED if metered > 0 else UNDER_METERED)
        return gap, None, status
    gap_pct = gap / billed * HUNDRED
    if abs(gap_pct) <= tolerance_pct:
        return gap, gap_pct, MATCHED
    return gap, gap_pct, UNDER_METERED if gap > 0 else OVER_METERED


def reconciliation(tenant_id: str, *, first: date, last: date, by: str,
                   tolerance_pct: Decimal) -> list[ReconciliationRow]:
    """Per UTC day and group: billed (the cost sources' lines) and metered (the events' AI
    inference and unclassified cost, what a provider's bill covers). Groups meet
    case-insensitively ("OpenAI" billed, "openai" metered)."""
    line_column, ledger_column = GROUPS[by]
    period = Period(first=first, last=last, time_zone="UTC")
    billed = (LedgerQuery(tenant_id, Table.COST_LINES).period(period)
              .dimensions("day", line_column).measures("billed")
              .group_by("day", line_column).fetch())
    metered = (LedgerQuery(tenant_id, Table.DAILY).period(period)
               .dimensions("day", ledger_column).measures("cogs_ai", "cogs_unclassified")
               .group_by("day", ledger_column).fetch())
    cells: dict[tuple[date, str], list] = {}  # (day, normalized group) → [name, billed, metered]

    def cell(day: date, name: str) -> list:
        key = (day, name.strip().lower())
        return cells.setdefault(key, [name.strip(), ZERO, ZERO])

    for row in billed:
        cell(row["day"], row[line_column])[1] += row["billed"]
    for row in metered:
        value = row["cogs_ai"] + row["cogs_unclassified"]
        if value or (row["day"], row[ledger_column].strip().lower()) in cells:
            cell(row["day"], row[ledger_column])[2] += value
    out = []
    for (day, _key), (name, billed_usd, metered_usd) in sorted(cells.items()):
        gap, gap_pct, status = reconciliation_status(billed_usd, metered_usd, tolerance_pct)
        out.append(ReconciliationRow(day, name, billed_usd, metered_usd, gap, gap_pct, status))
    return out
