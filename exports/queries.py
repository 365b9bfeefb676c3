"""Reads for exports: the ledger's entries of a period or since a watermark, and aggregates,
each in chunks, so no single query holds the embedded store for long and memory holds one
chunk at a time (two when the next is read ahead).

A period's entries are cut by a plan (`encoded_chunks`): one read counts them per time bucket
of occurred_at, and consecutive buckets make a chunk of at most chunk_rows entries, read as a
range of occurred_at, the ledger's sort key, so none is read twice and none is skipped; a
bucket holding more than a chunk is cut inside by keys, (occurred_at, event_id, entry_id).
Incremental exports read after a (recorded_at, entry_id) watermark. Chunks follow each other in
key order; the rows of a period chunk come in the order the engine reads them. A period's
chunks are read (`chunk_reads`) apart from their encoding, so the next can be read in a thread
while one is encoded (`exports.readahead`).
"""
from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from aforo import eventstore
from aforo.errors import DomainError
from aforo.ledger.query import LedgerQuery, Table, tenant_sql
from aforo.periods import Period, day_start
from exports import readahead
from exports.formats import Column, Encoder

CHUNK_ROWS = 50_000
# The tenant is implied by the export; every other column of the ledger is exported as it is,
# except the credit debits a COST entry carries for the credit ledger (arrays, which the file
# formats do not take; the wallets' transactions are their own read, docs/entitlements.md).
_NOT_EXPORTED = ("tenant_id", "credit_wallet_ids", "credit_debits_nano")


def ledger_columns() -> list[Column]:
    """The ledger's columns as the event store has them now (migrations add columns)."""
    described = eventstore.query("DESCRIBE TABLE ledger")
    return [Column(row["name"], row["type"]) for row in described
            if row["name"] not in _NOT_EXPORTED]


# --- keyset chunks ------------------------------------------------------------------------

@dataclass(frozen=True)
class Order:
    """A total order on entries and the conditions "after key" / "up to key" in it."""

    columns: tuple[str, ...]

    def _condition(self, strict: str, values: Sequence[Any], prefix: str) -> tuple[str, dict]:
        # :TRICKY: (a, b) > (x, y) is not spelled out on every server we run; the expanded
        # form is, and its first disjunct still lets the primary key skip granules.
        params = {f"{prefix}{i}": v for i, v in enumerate(values)}
        clause = ""
        for i in reversed(range(len(self.columns))):
            column, name = self.columns[i], f"%({prefix}{i})s"
            last = i == len(self.columns) - 1
            here = f"{column} {strict if last else strict[0]} {name}"
            clause = here if last else f"({here} OR ({column} = {name} AND {clause}))"
        return clause, params

    def after(self, query: LedgerQuery, key: Sequence[Any] | None) -> LedgerQuery:
        if key is None:
            return query
        clause, params = self._condition(">", key, "ka")
        return query.where_sql(f"{self.columns[0]} >= %(ka0)s AND {clause}", **params)

    def up_to(self, query: LedgerQuery, key: Sequence[Any]) -> LedgerQuery:
        clause, params = self._condition("<=", key, "kb")
        return query.where_sql(clause, **params)


BY_OCCURRENCE = Order(("occurred_at", "event_id", "entry_id"))
BY_RECORDING = Order(("recorded_at", "entry_id"))


def _select(query: LedgerQuery, columns: Sequence[Column], native: str) -> LedgerQuery:
    if native != "ArrowStream":
        return query.expressions(*(c.name for c in columns))
    # The engine writes the Parquet schema's own Arrow types, so pyarrow casts nothing: a
    # DateTime (uint32 seconds in Arrow) as DateTime64(3) (timestamp[ms, UTC]), an Enum8 (its
    # code) as its text; Decimal64(9) is decimal128(18, 9) already. The aliases differ from
    # the columns' names (an alias named like a column would stand for it in WHERE); the encoder
    # names the columns by position.
    expressions = []
    for c in columns:
        if c.kind == "datetime":
            expressions.append(f"toDateTime64({c.name}, 3, 'UTC') AS {c.name}__ms")
        elif c.kind == "enum":
            expressions.append(f"toString({c.name}) AS {c.name}__text")
        else:
            expressions.append(c.name)
    return query.expressions(*expressions)


def _boundary(base: LedgerQuery, order: Order, after: Sequence[Any] | None,
              chunk_rows: int) -> tuple | None:
    """The key of the chunk_rows-th entry after `after`, or None when fewer remain."""
    query = order.after(base.expressions(*order.columns), after)
    _names, rows = query.order_by(*order.columns).limit(1, offset=chunk_rows - 1).rows()
    return tuple(rows[0]) if rows else None


@dataclass(frozen=True)
class Chunk:
    """One chunk's bytes as the encoder wrote them, and its row count."""

    data: bytes
    rows: int


@dataclass(frozen=True)
class Read:
    """One chunk as the store gave it: the engine's bytes in the encoder's native format, or
    rows (a store that writes no such format, which the encoder then encodes)."""

    raw: bytes = b""
    rows: list[tuple] | None = None


def _read(query: LedgerQuery, columns: Sequence[Column], native: str) -> Read:
    query = _select(query, columns, native)
    if native:
        return Read(raw=query.formatted(native))
    _names, rows = query.rows()
    return Read(rows=rows)


def _encoded(read: Read, encoder: Encoder) -> Chunk:
    if read.rows is None:
        data = encoder.native(read.raw)
        return Chunk(data, encoder.last_rows)
    return Chunk(encoder.rows(read.rows), len(read.rows))


def _keyset_reads(base: LedgerQuery, order: Order, columns: Sequence[Column], native: str,
                  chunk_rows: int) -> Iterator[Read]:
    """`base` cut by keys: where the next chunk ends (keys only, sorted), then its rows."""
    after = None
    while True:
        boundary = _boundary(base, order, after, chunk_rows)
        query = order.after(base, after)
        if boundary is not None:
            # The chunk is the key range up to its boundary; within it rows come as the engine
            # reads them (sorting them again would halve the export's speed).
            query = order.up_to(query, boundary)
        else:  # the rest: fewer than a chunk when asked
            query = query.order_by(*order.columns).limit(chunk_rows)
        yield _read(query, columns, native)
        if boundary is None:
            return
        after = boundary


PLAN_BUCKETS = 20_000  # at most this many time buckets in an export's plan


def _time_buckets(base: LedgerQuery, column: str) -> list[tuple[datetime, datetime, int]]:
    """The entries of `base` counted per time bucket of `column`: (start, end, entries) in
    time order, empty buckets left out; at most PLAN_BUCKETS of them. Two reads of the one
    column, which the ledger's sort key holds."""
    span = base.expressions(f"min({column}) AS first", f"max({column}) AS last",
                            "count() AS n").one()
    if not int(span["n"]):
        return []
    seconds = int((span["last"] - span["first"]).total_seconds()) + 1
    width = max(1, -(-seconds // PLAN_BUCKETS))
    sql, params = base.expressions(
        f"toDateTime(intDiv(toUInt32({column}), {width}) * {width}, 'UTC') AS bucket").sql()
    rows = tenant_sql(base.tenant, f"SELECT bucket, count() AS n FROM ({sql}) "
                      "GROUP BY bucket ORDER BY bucket", params)
    step = timedelta(seconds=width)
    return [(r["bucket"], r["bucket"] + step, int(r["n"])) for r in rows]


def _planned_ranges(buckets: Sequence[tuple[datetime, datetime, int]], chunk_rows: int,
                    ) -> Iterator[tuple[datetime, datetime, bool]]:
    """Consecutive buckets grouped into ranges of at most chunk_rows entries: (start, end,
    too_big), too_big when one bucket alone holds more (it is then cut by keys)."""
    start = end = None
    rows = 0
    for first, last, n in buckets:
        if start is not None and (rows + n > chunk_rows or n > chunk_rows):
            yield start, end, False
            start = None
        if n > chunk_rows:
            yield first, last, True
            continue
        if start is None:
            start, rows = first, 0
        end, rows = last, rows + n
    if start is not None:
        yield start, end, False


# The embedded engine's allocator keeps the pages of freed chunks: an engine-written CSV export's
# RSS grew by 95-139 MB; handing them back every 8 chunks held it near 60 MB at 3M entries but
# 102-117 MB at 10M, at about a fifth of its speed on two shared cores (every chunk: 30% more
# CPU). benchmarks/RESULTS.md, 2026-12-04.
PURGE_EVERY = 8


def chunk_reads(base: LedgerQuery, order: Order, columns: Sequence[Column], native: str, *,
                chunk_rows: int = CHUNK_ROWS, purge_every: int = 0) -> Iterator[Read]:
    """Every entry of `base`, read chunk by chunk, the chunks in `order` (the first column a
    time); `native` is the engine's output format to read them in ("" for rows). Every
    `purge_every` chunks (0: never) the store hands its freed memory back.

    A plan cuts the entries by time: one read counts them per time bucket, and consecutive
    buckets make a chunk of at most chunk_rows entries, read by a range of the first column
    (the ledger's sort key: the engine reads only that range's granules, and nothing is read
    twice). A bucket holding more than a chunk is cut by keys inside it (`_keyset_reads`).
    Entries written during the export into a range not read yet are in it; entries after the
    plan's last bucket are not."""
    column = order.columns[0]
    read = 0
    for start, end, too_big in _planned_ranges(_time_buckets(base, column), chunk_rows):
        query = base.where_sql(f"{column} >= %(r_start)s AND {column} < %(r_end)s",
                               r_start=start, r_end=end)
        for chunk in (_keyset_reads(query, order, columns, native, chunk_rows) if too_big
                      else (_read(query, columns, native),)):
            read += 1
            if purge_every and read % purge_every == 0:
                eventstore.get_store().purge_freed_memory()
            yield chunk


def encoded_chunks(base: LedgerQuery, order: Order, columns: Sequence[Column],
                   encoder: Encoder, *, chunk_rows: int = CHUNK_ROWS,
                   read_ahead: bool | None = None,
                   purge_every: int | None = None) -> Iterator[Chunk]:
    """`chunk_reads` encoded by `encoder`, chunk by chunk.

    With `read_ahead`, the next chunk is read in a thread while this one is encoded and written
    (`exports.readahead`), and at most two chunks are held. By default it is on where encoding
    is real work: Parquet row groups, and rows from a store that writes no format itself. Where
    the engine writes the file's own bytes (CSV, NDJSON embedded) the read is nine tenths of
    the time, and reading ahead measured no faster on two shared cores (the engine's read
    already takes both) while it held more memory. `purge_every` defaults to PURGE_EVERY
    for those, and to never for Parquet (flat without it)."""
    native = encoder.native_format if encoder.native_format in eventstore.native_formats() \
        else ""
    writes_itself = bool(native) and not encoder.encodes_native
    if read_ahead is None:
        read_ahead = not writes_itself
    if purge_every is None:
        purge_every = PURGE_EVERY if writes_itself else 0
    reads = chunk_reads(base, order, columns, native, chunk_rows=chunk_rows,
                        purge_every=purge_every)
    if read_ahead:
        reads = readahead.read_ahead(reads)
    try:
        for read in reads:
            chunk = _encoded(read, encoder)
            del read  # this reference goes before the next read arrives
            yield chunk
            del chunk
    finally:
        reads.close()


def ledger_period_query(tenant: str, period: Period) -> LedgerQuery:
    return LedgerQuery(tenant).period(period)


def entries_since(tenant: str, *, after: tuple | None, before: datetime,
                  limit: int) -> tuple[list[str], list[tuple]]:
    """Up to `limit` entries recorded after the (recorded_at, entry_id) watermark and before
    `before`, in recording order: the incremental exports' read."""
    columns = ledger_columns()
    query = BY_RECORDING.after(
        LedgerQuery(tenant).where_sql("recorded_at < %(before)s", before=before), after)
    names = [c.name for c in columns]
    _names, rows = (query.expressions(*names).order_by(*BY_RECORDING.columns)
                    .limit(limit).rows())
    return names, rows


# --- aggregates ---------------------------------------------------------------------------

class Grain(enum.StrEnum):
    DAY = "day"
    MONTH = "month"


# API names of the dimensions an aggregate export groups by, and their ledger columns.
AGGREGATE_DIMENSIONS = {
    "customer": "customer_id", "product": "product_id", "product_type": "product_type",
    "provider": "provider", "model": "model", "tool": "tool_name", "agent": "agent",
    "source_type": "source_type", "session": "session_id",
}
# (builder measure, exported column); cogs_usd is the sum of the four buckets before it.
# :TRICKY: not the builder's `cogs`: over a rollup it is sum(cogs_ai + ...), and beside the
# `cogs_ai` alias ClickHouse would read that as an aggregate inside an aggregate.
AGGREGATE_MEASURES = (
    ("events", "events"), ("tokens_in", "input_tokens"), ("tokens_out", "output_tokens"),
    ("cogs_ai", "ai_cogs_usd"), ("cogs_infra", "infra_cogs_usd"),
    ("cogs_fee", "fee_cogs_usd"), ("cogs_unclassified", "unclassified_cogs_usd"),
    ("", "cogs_usd"), ("revenue", "revenue_usd"),
    ("revenue_carried", "carried_revenue_usd"), ("revenue_rated", "rated_revenue_usd"),
)
_MEASURE_TYPES = {"events": "Int64", "tokens_in": "Int64", "tokens_out": "Int64"}


class BadAggregate(DomainError):
    pass


def aggregate_dimensions(raw: str) -> list[str]:
    """`by` as ledger columns: comma-separated names of AGGREGATE_DIMENSIONS."""
    names = [part.strip() for part in (raw or "").split(",") if part.strip()]
    unknown = [n for n in names if n not in AGGREGATE_DIMENSIONS]
    if unknown:
        raise BadAggregate(f"by may name {', '.join(AGGREGATE_DIMENSIONS)}; not "
                           f"{', '.join(unknown)}.", field="by")
    if len(set(names)) != len(names):
        raise BadAggregate("by names a dimension twice.", field="by")
    return [AGGREGATE_DIMENSIONS[n] for n in names]


def aggregate_columns(dimensions: Sequence[str], grain: Grain) -> list[Column]:
    return [Column(grain.value, "Date"), *(Column(d, "String") for d in dimensions),
            *(Column(name, _MEASURE_TYPES.get(measure, "Decimal(38, 9)"))
              for measure, name in AGGREGATE_MEASURES)]


def _aggregate_table(dimensions: Sequence[str], period: Period) -> Table:
    """A daily rollup when it holds every dimension asked for (UTC days), else the ledger."""
    if period.is_utc:
        for table in (Table.DAILY, Table.DAILY_CUSTOMERS):
            if all(table in _dimension_tables(d) for d in dimensions):
                return table
    return Table.LEDGER


def _dimension_tables(column: str) -> frozenset[Table]:
    from aforo.ledger.query import DIMENSIONS

    return DIMENSIONS[column]


def _slices(period: Period, grain: Grain) -> Iterator[tuple[date, date]]:
    """The period cut into days or calendar months (clipped to the period): first, last."""
    first = period.first
    while first <= period.last:
        if grain is Grain.DAY:
            last = first
        else:
            following = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
            last = min(following - timedelta(days=1), period.last)
        yield first, last
        first = last + timedelta(days=1)


def aggregate_chunks(tenant: str, period: Period, dimensions: Sequence[str], grain: Grain,
                     ) -> Iterator[list[tuple]]:
    """Rows (grain start, dimensions..., measures...) one day or month at a time."""
    table = _aggregate_table(dimensions, period)
    measures = [measure for measure, _name in AGGREGATE_MEASURES if measure]
    cogs_at = len(dimensions) + 3  # after events, tokens in and out
    n_dims = len(dimensions)
    for first, last in _slices(period, grain):
        query = LedgerQuery(tenant, table)
        if table.by_day:
            query = query.where_sql("day >= %(s_first)s AND day <= %(s_last)s",
                                    s_first=first, s_last=last)
        else:
            query = query.between(day_start(first, period.time_zone),
                                  day_start(last + timedelta(days=1), period.time_zone),
                                  period.time_zone)
        query = query.dimensions(*dimensions).measures(*measures)
        if dimensions:
            query = query.group_by(*dimensions).order_by(*dimensions)
        _names, rows = query.rows()
        out = [(first, *row[:cogs_at + 4], sum(row[cogs_at:cogs_at + 4]), *row[cogs_at + 4:])
               for row in rows if any(row[n_dims:])]
        if out:
            yield out
