"""Export file formats, written chunk by chunk: CSV, NDJSON and Parquet, optionally gzipped.

Each chunk arrives either as the embedded engine's own output (`native_format`: CSV,
JSONEachRow or ArrowStream, written in C) or as rows (the ClickHouse server, and aggregates),
which are encoded here the same way. Money is never a float: exact decimal text in CSV and
NDJSON (strings in JSON), Decimal128 in Parquet. Memory holds one chunk (two when the next is
read ahead), however many rows.
"""
from __future__ import annotations

import csv
import enum
import io
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq


class ExportFormat(enum.StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"
    PARQUET = "parquet"

    @property
    def content_type(self) -> str:
        return {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson",
                "parquet": "application/vnd.apache.parquet"}[self.value]


@dataclass(frozen=True)
class Column:
    """An exported column: its name and its ClickHouse type (`DESCRIBE` of the source)."""

    name: str
    ch_type: str

    @property
    def kind(self) -> str:
        t = self.ch_type
        if t.startswith("Decimal"):
            return "decimal"
        if t.startswith("DateTime"):
            return "datetime"
        if t.startswith("Date"):
            return "date"
        if t.startswith(("Int", "UInt")):
            return "int"
        if t.startswith("Enum"):
            return "enum"
        return "string"

    @property
    def arrow_type(self) -> pa.DataType:
        t = self.ch_type
        if self.kind == "decimal":
            precision, scale = _decimal_shape(t)
            return pa.decimal128(precision, scale)
        if self.kind == "datetime":
            return pa.timestamp("ms", tz="UTC")  # Parquet has no second unit
        if self.kind == "date":
            return pa.date32()
        if self.kind == "int":
            return getattr(pa, t.lower())()  # Int64 -> pa.int64(), UInt32 -> pa.uint32()
        return pa.string()


_DECIMAL = re.compile(r"Decimal(?:\((\d+),\s*(\d+)\)|(32|64|128)\((\d+)\))")


def _decimal_shape(ch_type: str) -> tuple[int, int]:
    match = _DECIMAL.match(ch_type)
    if not match:
        raise ValueError(f"not a Decimal type: {ch_type}")
    if match.group(1):
        return int(match.group(1)), int(match.group(2))
    bits = int(match.group(3))
    return {32: 9, 64: 18, 128: 38}[bits], int(match.group(4))


def decimal_text(value: Decimal) -> str:
    """Exact fixed-point text without trailing zeros (as ClickHouse writes it): 0.5, 12, 0."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _cell_text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return value


class Encoder:
    """Bytes for one export: `begin()`, then a piece per chunk, then `end()`."""

    native_format = ""
    # Whether a chunk in native_format is still encoded here (Parquet from Arrow), or is the
    # file's bytes as the engine wrote them (CSV, NDJSON)
    encodes_native = False

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)
        self.names = [c.name for c in self.columns]
        self.last_rows = 0  # rows of the last native chunk

    def begin(self) -> bytes:
        return b""

    def rows(self, rows: Iterable[Sequence[Any]]) -> bytes:
        raise NotImplementedError

    def native(self, raw: bytes) -> bytes:
        """A chunk as the embedded engine wrote it in `native_format` (one row a line)."""
        self.last_rows = raw.count(b"\n")
        return raw

    def end(self) -> bytes:
        return b""


class CsvEncoder(Encoder):
    native_format = "CSV"

    def begin(self) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(self.names)
        return buffer.getvalue().encode()

    def rows(self, rows: Iterable[Sequence[Any]]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows([_cell_text(v) for v in row] for row in rows)
        return buffer.getvalue().encode()


class NdjsonEncoder(Encoder):
    native_format = "JSONEachRow"
    _encoder = msgspec.json.Encoder()

    def rows(self, rows: Iterable[Sequence[Any]]) -> bytes:
        names, encode = self.names, self._encoder.encode
        return b"".join(
            encode(dict(zip(names, (_cell_text(v) for v in row), strict=True))) + b"\n"
            for row in rows)


class _Drain:
    """A write-only file for pyarrow that hands back what was written since the last drain,
    and knows its position (the Parquet footer records row-group offsets)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data) -> int:
        data = bytes(data)
        self._parts.append(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts = []
        return out


# Columns nearly unique per row: a dictionary page of them is as big as the values, and
# building it was most of the Parquet encoding's time; they are written plain, without min/max
# statistics (a range of ids prunes nothing).
UNIQUE_COLUMNS = frozenset({"entry_id", "event_id", "session_id", "invoice_line_id"})


class ParquetEncoder(Encoder):
    """One row group per chunk; the footer is written at the end. Decimals are stored as
    integers of their scale (Parquet's DECIMAL on INT64 up to 18 digits, a fixed-length
    array beyond): exact, and read back as decimal128 of the same precision and scale."""

    native_format = "ArrowStream"
    encodes_native = True

    def __init__(self, columns: Sequence[Column]) -> None:
        super().__init__(columns)
        self.schema = pa.schema([pa.field(c.name, c.arrow_type, nullable=False)
                                 for c in self.columns])
        self._sink = _Drain()
        dictionary = [c.name for c in self.columns
                      if c.kind in ("string", "enum") and c.name not in UNIQUE_COLUMNS]
        statistics = [c.name for c in self.columns if c.name not in UNIQUE_COLUMNS]
        self._writer = pq.ParquetWriter(pa.PythonFile(self._sink, mode="w"), self.schema,
                                        compression="snappy", use_dictionary=dictionary,
                                        write_statistics=statistics,
                                        store_decimal_as_integer=True)

    def begin(self) -> bytes:
        return self._sink.drain()

    def rows(self, rows: Iterable[Sequence[Any]]) -> bytes:
        rows = list(rows)
        if not rows:
            return b""
        arrays = [pa.array(list(values), type=column.arrow_type)
                  for column, values in zip(self.columns, zip(*rows, strict=True),
                                            strict=True)]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        return self._sink.drain()

    def native(self, raw: bytes) -> bytes:
        self.last_rows = 0
        if not raw:
            return b""
        table = ipc.open_stream(raw).read_all()  # zero-copy over the engine's bytes
        self.last_rows = table.num_rows
        table = table.rename_columns(self.names)  # the query's aliases, in the columns' order
        if table.schema != self.schema:  # the query asks for the schema's types; a safety net
            table = table.cast(self.schema)
        self._writer.write_table(table)
        return self._sink.drain()

    def end(self) -> bytes:
        self._writer.close()
        return self._sink.drain()


ENCODERS: dict[ExportFormat, type[Encoder]] = {
    ExportFormat.CSV: CsvEncoder, ExportFormat.NDJSON: NdjsonEncoder,
    ExportFormat.PARQUET: ParquetEncoder,
}


def gzipped(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The same stream gzip-compressed, piece by piece (one gzip member)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    try:
        for piece in pieces:
            out = compressor.compress(piece)
            if out:
                yield out
        yield compressor.flush()
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:  # a download stopped early stops the reads under it at once
            close()
