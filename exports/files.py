"""Export files: the ledger of a period, or its aggregates, as a stream of bytes in CSV,
NDJSON or Parquet (optionally gzipped), one chunk at a time."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aforo.errors import DomainError
from aforo.models import Tenant
from aforo.periods import Period
from exports import queries
from exports.formats import ENCODERS, ExportFormat, gzipped

Progress = Callable[[int], None]  # called with the rows written so far, after each chunk


class BadExport(DomainError):
    pass


def export_format(raw: str | None) -> ExportFormat:
    try:
        return ExportFormat((raw or "csv").lower())
    except ValueError:
        raise BadExport("format must be csv, ndjson or parquet.", field="format") from None


@dataclass(frozen=True)
class ExportFile:
    """What a download says about itself, and its bytes as they come."""

    filename: str
    content_type: str
    content: Iterator[bytes]
    gzip: bool


def _finish(name: str, fmt: ExportFormat, pieces: Iterator[bytes], gzip: bool) -> ExportFile:
    filename = f"{name}.{fmt.value}" + (".gz" if gzip else "")
    return ExportFile(filename=filename, content_type=fmt.content_type,
                      content=gzipped(pieces) if gzip else pieces, gzip=gzip)


def ledger_file(*, tenant: Tenant, period: Period, fmt: ExportFormat, gzip: bool = False,
                chunk_rows: int = queries.CHUNK_ROWS, progress: Progress | None = None,
                read_ahead: bool | None = None, purge_every: int | None = None) -> ExportFile:
    """Every ledger entry whose event occurred in the period, in the ledger's order; with
    `read_ahead` the next chunk is read while this one is encoded and written, and every
    `purge_every` chunks the engine's freed memory is handed back (None: as the format suits,
    `queries.encoded_chunks`)."""
    columns = queries.ledger_columns()
    encoder = ENCODERS[fmt](columns)

    def pieces() -> Iterator[bytes]:
        yield encoder.begin()
        written = 0
        chunks = queries.encoded_chunks(
            queries.ledger_period_query(tenant.slug, period), queries.BY_OCCURRENCE,
            columns, encoder, chunk_rows=chunk_rows, read_ahead=read_ahead,
            purge_every=purge_every)
        try:
            for chunk in chunks:
                written += chunk.rows
                if chunk.data:
                    yield chunk.data
                if progress:
                    progress(written)
                del chunk
        finally:
            chunks.close()  # a download stopped early stops the reads at once
        yield encoder.end()

    name = f"ledger-{tenant.slug}-{period.first}-{period.last}"
    return _finish(name, fmt, pieces(), gzip)


def aggregates_file(*, tenant: Tenant, period: Period, fmt: ExportFormat, by: str = "",
                    grain: str = "day", gzip: bool = False) -> ExportFile:
    """Sums per day (or month) and the dimensions named in `by`, one slice at a time."""
    try:
        grain_ = queries.Grain((grain or "day").lower())
    except ValueError:
        raise BadExport("grain must be day or month.", field="grain") from None
    dimensions = queries.aggregate_dimensions(by)
    columns = queries.aggregate_columns(dimensions, grain_)
    encoder = ENCODERS[fmt](columns)

    def pieces() -> Iterator[bytes]:
        yield encoder.begin()
        for rows in queries.aggregate_chunks(tenant.slug, period, dimensions, grain_):
            yield encoder.rows(rows)
        yield encoder.end()

    name = f"aggregates-{tenant.slug}-{period.first}-{period.last}"
    return _finish(name, fmt, pieces(), gzip)
