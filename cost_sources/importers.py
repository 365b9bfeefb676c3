"""Readers of the providers' cost formats: OpenAI's Costs API, Anthropic's cost report, the AWS
Cost and Usage Report (CSV) and FOCUS 1.x (CSV), each into the same cost lines.

Every amount is parsed from its text into a Decimal (never through float): OpenAI's JSON numbers
with `parse_float=Decimal`, Anthropic's cents strings divided by 100, the CUR's `1.81E-8`, and
FOCUS's `"$10,100.00 "`. A row that cannot be one line (a date that is not one, another
currency, an empty line) is skipped with its reason; a file whose money cannot be read, or that
lacks a column the format needs, is malformed and nothing of it is written.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import IO, Any

from aforo.errors import DomainError

# The event store's scale for provider money (Decimal(38, 12)); the CUR needs ten.
LINE_PLACES = 12
LINE_QUANTUM = Decimal(1).scaleb(-LINE_PLACES)
LINE_MAX = Decimal(10) ** 26 - LINE_QUANTUM
CENTS = Decimal(100)

KINDS = ("OPENAI_COSTS", "ANTHROPIC_COSTS", "AWS_CUR", "FOCUS")


class MalformedCostFile(DomainError):
    """A file that is not the format it claims: the row and column, and what is wrong."""

    def __init__(self, message: str, *, row: int, column: str) -> None:
        super().__init__(f"Row {row}, column {column}: {message}", field="file",
                         code="malformed_file")
        self.row = row
        self.column = column


class SkipRow(Exception):
    """This row is not a cost line; the reason is reported with the import."""


@dataclass(slots=True)
class CostLine:
    """One billed line: its identity, when, what, and how much (USD)."""

    line_key: str
    day: date
    charge_start: datetime
    charge_end: datetime
    provider: str
    service: str
    model: str
    line_item: str
    account_id: str
    project_id: str
    charge_category: str
    unit: str
    quantity: Decimal
    cost_usd: Decimal


@dataclass
class ParseReport:
    """What a reader saw besides its lines: rows read, rows skipped, the days covered."""

    rows_read: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    rows_skipped: int = 0
    covered_start: date | None = None
    covered_end: date | None = None  # exclusive
    progress: Callable[[int], None] | None = None
    progress_every: int = 50_000

    def read(self) -> None:
        self.rows_read += 1
        if self.progress and self.rows_read % self.progress_every == 0:
            self.progress(self.rows_read)

    def skip(self, row: int, reason: str, keep: int = 1000) -> None:
        self.rows_skipped += 1
        if len(self.skipped) < keep:  # a file of a million bad rows reports the first thousand
            self.skipped.append((row, reason))

    def cover(self, start: date, end: date) -> None:
        """The days [start, end) this file speaks for: its lines there replace earlier ones."""
        if (self.covered_start is not None and self.covered_start <= start
                and end <= self.covered_end):
            return
        if end <= start:
            end = start + timedelta(days=1)
        if self.covered_start is None or start < self.covered_start:
            self.covered_start = start
        if self.covered_end is None or end > self.covered_end:
            self.covered_end = end


# --- values ----------------------------------------------------------------------------------

_NULLS = {"", "null", "none", "nan", "n/a"}


def money(raw: Any, *, row: int, column: str, cents: bool = False) -> Decimal:
    """A money value as an exact Decimal at twelve decimals: `1.81E-8`, `"$10,100.00 "`,
    `(5.00)`, JSON numbers read as Decimal. Blank is zero; anything else is a malformed file."""
    if raw is None:
        return Decimal(0)
    if isinstance(raw, float):  # never: the JSON readers parse floats as Decimal
        raise TypeError("money must not arrive as a float")
    text = str(raw).strip()
    if text.lower() in _NULLS:
        return Decimal(0)
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1].strip()
    text = text.replace("$", "").replace(",", "").replace("USD", "").strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise MalformedCostFile(f"{str(raw).strip()!r} is not an amount of money.", row=row,
                                column=column) from None
    if not value.is_finite():
        raise MalformedCostFile(f"{str(raw).strip()!r} is not a finite amount.", row=row,
                                column=column)
    if cents:
        value /= CENTS
    if negative:
        value = -value
    value = value.quantize(LINE_QUANTUM, rounding=ROUND_HALF_EVEN)
    if abs(value) > LINE_MAX:
        raise MalformedCostFile(f"{str(raw).strip()!r} is too large.", row=row, column=column)
    return value


def quantity(raw: Any) -> Decimal:
    """A usage quantity; one that cannot be read is zero (it is informative, not money)."""
    if raw is None:
        return Decimal(0)
    text = str(raw).strip().replace(",", "")
    if text.lower() in _NULLS:
        return Decimal(0)
    try:
        value = Decimal(text)
    except InvalidOperation:
        return Decimal(0)
    if not value.is_finite() or abs(value) > LINE_MAX:
        return Decimal(0)
    return value.quantize(LINE_QUANTUM, rounding=ROUND_HALF_EVEN)


_moments: dict[str, datetime] = {}


def moment(raw: str, column: str) -> datetime:
    """An instant in UTC from ISO 8601 (`2023-11-01T00:00:00.000Z`, `2025-08-01T00:00:00Z`, a
    bare date) or the US `5/1/25` of FOCUS's own samples; otherwise the row is skipped."""
    text = (raw or "").strip()
    cached = _moments.get(text)
    if cached is not None:
        return cached
    try:
        if "/" in text:
            month, day, year = (int(part) for part in text.split(" ")[0].split("/"))
            value = datetime(year + 2000 if year < 100 else year, month, day,
                             tzinfo=timezone.utc)
        else:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
            value = (value.replace(tzinfo=timezone.utc) if value.tzinfo is None
                     else value.astimezone(timezone.utc))
    except ValueError:
        raise SkipRow(f"{column} {text!r} is not a date") from None
    if len(_moments) < 100_000:
        _moments[text] = value
    return value


def _key(*parts: Any) -> str:
    return hashlib.blake2b("\x1f".join("" if p is None else str(p) for p in parts).encode(),
                           digest_size=12).hexdigest()


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).strip()
    return "" if text.lower() == "null" else text


# --- CSV -------------------------------------------------------------------------------------

def _csv_rows(stream: IO[bytes]) -> Iterator[tuple[int, list[str]]]:
    # utf-8-sig drops the BOM some FOCUS samples start with.
    text = io.TextIOWrapper(decompressed(stream), encoding="utf-8-sig", errors="strict",
                            newline="")
    reader = csv.reader(text)
    try:
        for row in reader:
            yield reader.line_num, row
    except (csv.Error, UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise MalformedCostFile(f"not readable as UTF-8 CSV ({exc}).",
                                row=reader.line_num + 1, column="-") from None


class _Columns:
    """Column positions by name, with the format's alternative spellings."""

    def __init__(self, header: list[str]) -> None:
        self.index = {name.strip(): i for i, name in enumerate(header)}
        self.lower = {name.strip().lower(): i for i, name in enumerate(header)}

    def find(self, *names: str) -> int | None:
        for name in names:
            if name in self.index:
                return self.index[name]
            if name.lower() in self.lower:
                return self.lower[name.lower()]
        return None

    def need(self, *names: str) -> int:
        found = self.find(*names)
        if found is None:
            raise MalformedCostFile(f"the header has no {names[0]} column.", row=1,
                                    column=names[0])
        return found


def _cell(row: list[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return row[index]


def _header(rows: Iterator[tuple[int, list[str]]], kind: str) -> list[str]:
    for _number, row in rows:
        if any(cell.strip() for cell in row):
            return row
    raise MalformedCostFile(f"the file is empty: a {kind} CSV starts with its header.", row=1,
                            column="-")


def read_aws_cur(stream: IO[bytes], report: ParseReport) -> Iterator[CostLine]:
    """The legacy CUR CSV (`lineItem/UnblendedCost`) or its Athena/CUR 2.0 spelling
    (`line_item_unblended_cost`): one line per row, dated by its usage start."""
    rows = _csv_rows(stream)
    columns = _Columns(_header(rows, "CUR"))
    c_cost = columns.need("lineItem/UnblendedCost", "line_item_unblended_cost")
    c_start = columns.need("lineItem/UsageStartDate", "line_item_usage_start_date")
    c_end = columns.find("lineItem/UsageEndDate", "line_item_usage_end_date")
    c_product = columns.need("lineItem/ProductCode", "line_item_product_code")
    c_id = columns.find("identity/LineItemId", "identity_line_item_id")
    c_interval = columns.find("identity/TimeInterval", "identity_time_interval")
    c_type = columns.find("lineItem/LineItemType", "line_item_line_item_type")
    c_usage_type = columns.find("lineItem/UsageType", "line_item_usage_type")
    c_account = columns.find("lineItem/UsageAccountId", "line_item_usage_account_id")
    c_resource = columns.find("lineItem/ResourceId", "line_item_resource_id")
    c_amount = columns.find("lineItem/UsageAmount", "line_item_usage_amount")
    c_unit = columns.find("pricing/unit", "pricing_unit")
    c_currency = columns.find("lineItem/CurrencyCode", "line_item_currency_code")
    c_bp_start = columns.find("bill/BillingPeriodStartDate", "bill_billing_period_start_date")
    c_bp_end = columns.find("bill/BillingPeriodEndDate", "bill_billing_period_end_date")
    cost_name = "lineItem/UnblendedCost" if c_cost == columns.find("lineItem/UnblendedCost") \
        else "line_item_unblended_cost"
    periods: set[tuple[str, str]] = set()
    width = len(columns.index)
    one_day = timedelta(days=1)
    for number, row in rows:
        if len(row) < width:
            if not any(cell.strip() for cell in row):
                continue  # a trailing newline, not a row
            row = row + [""] * (width - len(row))
        report.read()
        # The hot loop of a million-row CUR: plain indexing, no helper calls per cell.
        try:
            currency = row[c_currency].strip().upper() if c_currency is not None else ""
            if currency and currency != "USD":
                raise SkipRow(f"lineItem/CurrencyCode is {currency}; only USD is imported")
            start = moment(row[c_start], "lineItem/UsageStartDate")
            end_raw = row[c_end] if c_end is not None else ""
            end = moment(end_raw, "lineItem/UsageEndDate") if end_raw else start
        except SkipRow as skip:
            report.skip(number, str(skip))
            continue
        cost = money(row[c_cost], row=number, column=cost_name)
        if c_bp_start is not None and c_bp_end is not None:
            bp = (row[c_bp_start], row[c_bp_end])
            if bp[0] and bp not in periods:
                periods.add(bp)
                try:
                    report.cover(moment(bp[0], "bill/BillingPeriodStartDate").date(),
                                 moment(bp[1], "bill/BillingPeriodEndDate").date())
                except SkipRow:
                    pass  # the lines' own days still cover them
        line_id = row[c_id] if c_id is not None else ""
        if line_id:
            key = _key(line_id, row[c_interval] if c_interval is not None else "")
        else:
            key = _key(*row)  # no id column: the row's whole content is its identity
        day = start.date()
        report.cover(day, day + one_day)
        yield CostLine(
            line_key=key, day=day, charge_start=start, charge_end=end,
            provider="AWS", service=row[c_product].strip(), model="",
            line_item=_cell(row, c_usage_type).strip(),
            account_id=_cell(row, c_account).strip(),
            project_id=_cell(row, c_resource).strip(),
            charge_category=_cell(row, c_type).strip(), unit=_cell(row, c_unit).strip(),
            quantity=quantity(_cell(row, c_amount)), cost_usd=cost)


_FOCUS_IDENTITY = ("ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass",
                   "ChargeFrequency", "ChargeDescription", "ResourceId", "SkuId", "SkuPriceId",
                   "ServiceName", "SubAccountId", "BillingAccountId", "CommitmentDiscountId",
                   "CommitmentDiscountStatus", "PricingCategory", "InvoiceId")


def read_focus(stream: IO[bytes], report: ParseReport) -> Iterator[CostLine]:
    """FOCUS 1.x CSV: BilledCost (cash basis, what the invoice sums) per row, dated by
    ChargePeriodStart; lenient about BOMs, `$10,100.00 ` money, `5/1/25` dates and `null`."""
    rows = _csv_rows(stream)
    columns = _Columns(_header(rows, "FOCUS"))
    c_cost = columns.need("BilledCost")
    c_start = columns.need("ChargePeriodStart")
    c_end = columns.find("ChargePeriodEnd")
    c_bp_start = columns.find("BillingPeriodStart")
    c_bp_end = columns.find("BillingPeriodEnd")
    c_currency = columns.find("BillingCurrency")
    c_provider = columns.find("ProviderName")
    c_publisher = columns.find("PublisherName")
    c_issuer = columns.find("InvoiceIssuerName")
    c_service = columns.find("ServiceName")
    c_category = columns.find("ChargeCategory")
    c_description = columns.find("ChargeDescription")
    c_sub_account = columns.find("SubAccountId")
    c_account = columns.find("BillingAccountId")
    c_resource = columns.find("ResourceId")
    c_consumed = columns.find("ConsumedQuantity")
    c_consumed_unit = columns.find("ConsumedUnit")
    c_pricing_q = columns.find("PricingQuantity")
    c_pricing_unit = columns.find("PricingUnit")
    identity = [columns.find(name) for name in _FOCUS_IDENTITY]
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            report.read()
            report.skip(number, "an empty line")
            continue
        report.read()
        try:
            currency = _text(_cell(row, c_currency)).upper()
            if currency and currency != "USD":
                raise SkipRow(f"BillingCurrency is {currency}; only USD is imported")
            start = moment(_cell(row, c_start), "ChargePeriodStart")
            end_raw = _text(_cell(row, c_end))
            end = moment(end_raw, "ChargePeriodEnd") if end_raw else start
            bp_start_raw = _text(_cell(row, c_bp_start))
            bp_end_raw = _text(_cell(row, c_bp_end))
            bp = ((moment(bp_start_raw, "BillingPeriodStart"),
                   moment(bp_end_raw, "BillingPeriodEnd")) if bp_start_raw and bp_end_raw
                  else None)
        except SkipRow as skip:
            report.skip(number, str(skip))
            continue
        cost = money(_cell(row, c_cost), row=number, column="BilledCost")
        if bp:
            report.cover(bp[0].date(), bp[1].date())
        report.cover(start.date(), start.date() + timedelta(days=1))
        provider = (_text(_cell(row, c_provider)) or _text(_cell(row, c_publisher))
                    or _text(_cell(row, c_issuer)) or "FOCUS")
        consumed = _text(_cell(row, c_consumed))
        yield CostLine(
            line_key=_key(*(_text(_cell(row, i)) for i in identity)), day=start.date(),
            charge_start=start, charge_end=end, provider=provider,
            service=_text(_cell(row, c_service)), model="",
            line_item=_text(_cell(row, c_description)),
            account_id=_text(_cell(row, c_sub_account)) or _text(_cell(row, c_account)),
            project_id=_text(_cell(row, c_resource)),
            charge_category=_text(_cell(row, c_category)),
            unit=(_text(_cell(row, c_consumed_unit)) if consumed
                  else _text(_cell(row, c_pricing_unit))),
            quantity=quantity(consumed or _cell(row, c_pricing_q)), cost_usd=cost)


# --- JSON ------------------------------------------------------------------------------------

def _json_pages(stream: IO[bytes]) -> list[dict]:
    """One page object, a JSON array of pages, or one page per line (what polling saves)."""
    try:
        raw = decompressed(stream).read()
    except (gzip.BadGzipFile, EOFError):
        raise MalformedCostFile("not a readable gzip file.", row=1, column="-") from None
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedCostFile("not UTF-8 JSON.", row=1, column="-") from None
    # :TRICKY: OpenAI's amounts are JSON numbers; parse_float=Decimal keeps their digits.
    try:
        parsed = json.loads(text, parse_float=Decimal)
        pages = parsed if isinstance(parsed, list) else [parsed]
    except json.JSONDecodeError as exc:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            raise MalformedCostFile(f"not JSON ({exc.msg}).", row=exc.lineno,
                                    column=f"char {exc.colno}") from None
        pages = []
        for number, line in enumerate(lines, start=1):
            try:
                pages.append(json.loads(line, parse_float=Decimal))
            except json.JSONDecodeError as line_exc:
                raise MalformedCostFile(f"not JSON ({line_exc.msg}).", row=number,
                                        column=f"char {line_exc.colno}") from None
    for number, page in enumerate(pages, start=1):
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise MalformedCostFile("a page is an object with a `data` list of buckets.",
                                    row=number, column="data")
    return pages


def _results(stream: IO[bytes], report: ParseReport,
             period: Callable[[dict, int], tuple[datetime, datetime]],
             ) -> Iterator[tuple[int, dict, datetime, datetime, dict]]:
    """(row, bucket, start, end, result) of a costs API's pages, rows numbered across the file
    from 1: each bucket's period (`period(bucket, row)`) covered in the report, each result
    counted as read and checked to be an object."""
    row = 0
    for page in _json_pages(stream):
        for bucket in page["data"]:
            if not isinstance(bucket, dict):
                raise MalformedCostFile("a bucket is an object.", row=row + 1, column="data")
            start, end = period(bucket, max(row, 1))
            report.cover(start.date(), end.date())
            for result in bucket.get("results") or []:
                row += 1
                report.read()
                if not isinstance(result, dict):
                    raise MalformedCostFile("a result is an object.", row=row,
                                            column="results")
                yield row, bucket, start, end, result


def _unix_period(bucket: dict, row: int) -> tuple[datetime, datetime]:
    try:
        return (datetime.fromtimestamp(int(bucket["start_time"]), tz=timezone.utc),
                datetime.fromtimestamp(int(bucket["end_time"]), tz=timezone.utc))
    except (KeyError, TypeError, ValueError, OverflowError):
        raise MalformedCostFile("a bucket needs start_time and end_time in Unix seconds.",
                                row=row, column="start_time") from None


def _iso_period(bucket: dict, row: int) -> tuple[datetime, datetime]:
    try:
        return (moment(_text(bucket.get("starting_at")), "starting_at"),
                moment(_text(bucket.get("ending_at")), "ending_at"))
    except SkipRow:
        raise MalformedCostFile("a bucket needs starting_at and ending_at as ISO 8601.",
                                row=row, column="starting_at") from None


def read_openai_costs(stream: IO[bytes], report: ParseReport) -> Iterator[CostLine]:
    """`GET /v1/organization/costs` pages: daily buckets (Unix seconds, end exclusive) of
    results whose `amount.value` is in dollars."""
    for row, bucket, start, end, result in _results(stream, report, _unix_period):
        amount = result.get("amount") or {}
        if not isinstance(amount, dict):
            raise MalformedCostFile("amount is an object {value, currency}.", row=row,
                                    column="amount")
        currency = _text(amount.get("currency")).upper()
        if currency and currency != "USD":
            report.skip(row, f"amount.currency is {currency}; only USD is imported")
            continue
        cost = money(amount.get("value"), row=row, column="amount.value")
        line_item = _text(result.get("line_item"))
        # Costs grouped by line_item name the model first: "gpt-4o-2024-08-06, input".
        model = line_item.split(",")[0].strip() if "," in line_item else ""
        project = _text(result.get("project_id"))
        api_key = _text(result.get("api_key_id"))
        yield CostLine(
            line_key=_key(bucket["start_time"], line_item, project, api_key), day=start.date(),
            charge_start=start, charge_end=end, provider="OpenAI", service="OpenAI",
            model=model, line_item=line_item, account_id=api_key, project_id=project,
            charge_category="Usage", unit=_text(result.get("quantity_unit")),
            quantity=quantity(result.get("quantity")), cost_usd=cost)


def read_anthropic_costs(stream: IO[bytes], report: ParseReport) -> Iterator[CostLine]:
    """`GET /v1/organizations/cost_report` pages: daily buckets of results whose `amount` is a
    decimal string in cents ("300.00" is $3.00)."""
    for row, bucket, start, end, result in _results(stream, report, _iso_period):
        currency = _text(result.get("currency")).upper()
        if currency and currency != "USD":
            report.skip(row, f"currency is {currency}; only USD is imported")
            continue
        cost = money(result.get("amount"), row=row, column="amount", cents=True)
        parts = [_text(result.get(name)) for name in (
            "cost_type", "token_type", "description", "model", "service_tier",
            "context_window", "inference_geo", "workspace_id")]
        cost_type, token_type, description, model = parts[:4]
        yield CostLine(
            line_key=_key(bucket.get("starting_at"), *parts), day=start.date(),
            charge_start=start, charge_end=end, provider="Anthropic", service="Anthropic",
            model=model, line_item=description or token_type or cost_type, account_id="",
            project_id=parts[7], charge_category=cost_type, unit=token_type,
            quantity=Decimal(0), cost_usd=cost)


GZIP_MAGIC = b"\x1f\x8b"


def decompressed(stream: IO[bytes]) -> IO[bytes]:
    """The stream, gunzipped when it is gzip (AWS delivers CUR files as `.csv.gz`)."""
    buffered = stream if hasattr(stream, "peek") else io.BufferedReader(stream)  # type: ignore[arg-type]
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    return buffered


READERS: dict[str, Callable[[IO[bytes], ParseReport], Iterator[CostLine]]] = {
    "OPENAI_COSTS": read_openai_costs,
    "ANTHROPIC_COSTS": read_anthropic_costs,
    "AWS_CUR": read_aws_cur,
    "FOCUS": read_focus,
}
