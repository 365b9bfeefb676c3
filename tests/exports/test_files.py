"""Export files of the ledger and its aggregates: every entry once, in chunks, the money exact,
on both event-store backends."""
from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cogs import queries as cogs_queries
from exports.files import aggregates_file, ledger_file
from exports.formats import ExportFormat
from tests.exports.conftest import PERIOD, ledger_ids

pytestmark = pytest.mark.django_db
def _bytes(export) -> bytes:
    return b"".join(export.content)


# 2: every time bucket of the plan holds more (three events share each instant), so chunks are
# cut by keys inside it; 7: buckets grouped into ranges; 1000: one chunk.
@pytest.mark.parametrize("chunk_rows", [2, 7, 1000])
def test_csv_holds_every_entry_of_the_period_once_and_sums_to_the_dashboard(ledger_of_60,
                                                                              chunk_rows):
    tenant = ledger_of_60
    progress = []
    export = ledger_file(tenant=tenant, period=PERIOD, fmt=ExportFormat.CSV,
                         chunk_rows=chunk_rows, progress=progress.append)
    rows = list(csv.DictReader(io.StringIO(_bytes(export).decode())))
    ids = [r["entry_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == ledger_ids(tenant)
    assert len([r for r in rows if r["entry_type"] == "REVENUE"]) > 0
    assert "late" not in ids and not any(i.startswith("ev-") and r["customer_id"] == ""
                                         for i, r in zip(ids, rows, strict=True))
    # chunks (cut where the progress calls say) hold at most chunk_rows entries and come in
    # the ledger's order: every key of a chunk is past the one before
    keys = [(r["occurred_at"], r["event_id"], r["entry_id"]) for r in rows]
    assert progress[-1] == len(rows)
    ends = [0, *progress]
    chunks = [keys[a:b] for a, b in zip(ends, ends[1:], strict=False) if b > a]
    assert all(len(c) <= chunk_rows for c in chunks)
    assert len(chunks) >= len(rows) // chunk_rows
    assert all(max(a) < min(b) for a, b in zip(chunks, chunks[1:], strict=False))
    totals = cogs_queries.overview(tenant, PERIOD, use_rollups=False).totals
    cost = [r for r in rows if r["entry_type"] == "COST"]
    assert sum(Decimal(r["ai_cogs_usd"]) for r in cost) == totals.ai_cogs_usd
    assert sum(Decimal(r["infra_cogs_usd"]) for r in cost) == totals.infra_cogs_usd
    assert sum(Decimal(r["revenue_usd"]) for r in rows
               if r["entry_type"] == "REVENUE") == totals.revenue_usd
    assert sum(int(r["event_count"]) for r in cost) == totals.event_count == 60


def test_ndjson_lines_carry_money_as_exact_strings(ledger_of_60):
    tenant = ledger_of_60
    export = ledger_file(tenant=tenant, period=PERIOD, fmt=ExportFormat.NDJSON, chunk_rows=11)
    lines = [json.loads(line) for line in _bytes(export).splitlines()]
    assert sorted(r["entry_id"] for r in lines) == ledger_ids(tenant)
    first = next(r for r in lines if r["event_id"] == "ev-059" and r["entry_type"] == "COST")
    assert first["ai_cogs_usd"] == "0.059000001"  # a string: exact, never a float
    assert first["input_tokens"] == 159 and first["occurred_at"].endswith("Z")
    totals = cogs_queries.overview(tenant, PERIOD, use_rollups=False).totals
    assert sum(Decimal(r["ai_cogs_usd"]) for r in lines
               if r["entry_type"] == "COST") == totals.ai_cogs_usd


def test_parquet_reads_back_with_decimal128_money_and_the_dashboards_sums(ledger_of_60):
    tenant = ledger_of_60
    export = ledger_file(tenant=tenant, period=PERIOD, fmt=ExportFormat.PARQUET, chunk_rows=13)
    table = pq.read_table(io.BytesIO(_bytes(export)))
    assert table.schema.field("ai_cogs_usd").type == pa.decimal128(18, 9)
    assert table.schema.field("occurred_at").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("entry_type").type == pa.string()
    assert pq.ParquetFile(io.BytesIO(_bytes(ledger_file(
        tenant=tenant, period=PERIOD, fmt=ExportFormat.PARQUET, chunk_rows=13)))
    ).num_row_groups >= 5
    rows = table.to_pylist()
    assert sorted(r["entry_id"] for r in rows) == ledger_ids(tenant)
    totals = cogs_queries.overview(tenant, PERIOD).totals
    cost = [r for r in rows if r["entry_type"] == "COST"]
    assert sum(r["ai_cogs_usd"] for r in cost) == totals.ai_cogs_usd
    assert sum(r["infra_cogs_usd"] + r["ai_cogs_usd"] + r["fee_cogs_usd"]
               + r["unclassified_cogs_usd"] for r in cost) == totals.cogs_usd
    assert sum(r["revenue_usd"] for r in rows) == totals.revenue_usd


def test_parquet_row_groups_are_the_chunks_and_money_is_a_scaled_integer(ledger_of_60):
    tenant = ledger_of_60
    progress = []
    data = _bytes(ledger_file(tenant=tenant, period=PERIOD, fmt=ExportFormat.PARQUET,
                              chunk_rows=7, progress=progress.append))
    parquet = pq.ParquetFile(io.BytesIO(data))
    sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
    # one row group per non-empty chunk, each at most a chunk, the file one valid whole
    ends = [0, *progress]
    assert sizes == [b - a for a, b in zip(ends, ends[1:], strict=False) if b > a]
    assert max(sizes) <= 7 and sum(sizes) == parquet.metadata.num_rows == len(ledger_ids(
        tenant))
    names = parquet.schema_arrow.names
    group = parquet.metadata.row_group(0)
    money = parquet.schema.column(names.index("ai_cogs_usd"))
    assert money.physical_type == "INT64"  # the decimal's digits, exact
    assert money.logical_type.type == "DECIMAL"
    assert (money.precision, money.scale) == (18, 9)
    # ids unique per row are written plain; repeating text through a dictionary
    assert not group.column(names.index("entry_id")).has_dictionary_page
    assert group.column(names.index("entry_id")).statistics is None
    assert group.column(names.index("customer_id")).has_dictionary_page
    table = parquet.read()
    assert table.schema.field("revenue_usd").type == pa.decimal128(18, 9)
    totals = cogs_queries.overview(tenant, PERIOD, use_rollups=False).totals
    cost = table.filter(pc.equal(table["entry_type"], "COST"))
    assert pc.sum(cost["ai_cogs_usd"]).as_py() == totals.ai_cogs_usd
    assert pc.sum(table["revenue_usd"]).as_py() == totals.revenue_usd


def test_gzip_on_request_decompresses_to_the_same_file(ledger_of_60):
    tenant = ledger_of_60
    plain = _bytes(ledger_file(tenant=tenant, period=PERIOD, fmt=ExportFormat.CSV,
                               chunk_rows=9))
    packed = ledger_file(tenant=tenant, period=PERIOD, fmt=ExportFormat.CSV, chunk_rows=9,
                         gzip=True)
    assert packed.filename.endswith(".csv.gz")
    # the same lines (within a chunk, rows come in the order the engine reads them)
    assert sorted(gzip.decompress(_bytes(packed)).splitlines()) == sorted(plain.splitlines())


def test_an_empty_period_is_a_header_only_file(store, tenant):
    assert _bytes(ledger_file(tenant=tenant, period=PERIOD, fmt=ExportFormat.NDJSON)) == b""
    header = _bytes(ledger_file(tenant=tenant, period=PERIOD, fmt=ExportFormat.CSV))
    assert header.startswith(b'"entry_id",') and header.count(b"\n") == 1
    table = pq.read_table(io.BytesIO(_bytes(ledger_file(tenant=tenant, period=PERIOD,
                                                        fmt=ExportFormat.PARQUET))))
    assert table.num_rows == 0 and "ai_cogs_usd" in table.schema.names


@pytest.mark.parametrize("by", ["", "customer", "product,model", "tool,customer"])
def test_aggregates_by_day_sum_to_the_breakdowns(ledger_of_60, by):
    tenant = ledger_of_60
    export = aggregates_file(tenant=tenant, period=PERIOD, fmt=ExportFormat.CSV, by=by)
    rows = list(csv.DictReader(io.StringIO(_bytes(export).decode())))
    assert {r["day"] for r in rows} == {"2026-06-10", "2026-06-11", "2026-06-12"}
    totals = cogs_queries.overview(tenant, PERIOD, use_rollups=False).totals
    assert sum(Decimal(r["cogs_usd"]) for r in rows) == totals.cogs_usd
    assert sum(Decimal(r["revenue_usd"]) for r in rows) == totals.revenue_usd
    assert sum(int(r["events"]) for r in rows) == 60
    if by == "customer":
        per_customer = {row.key[0]: row.cogs_usd for row in cogs_queries.totals_by(
            tenant, cogs_queries.Dimension.CUSTOMER, PERIOD)}
        summed: dict[str, Decimal] = {}
        for r in rows:
            summed[r["customer_id"]] = summed.get(r["customer_id"], 0) + Decimal(r["cogs_usd"])
        assert summed == per_customer
    if by == "tool,customer":
        tools = {r["tool_name"] for r in rows}
        assert tools == {"search", ""}


def test_aggregates_by_month_parquet(ledger_of_60):
    export = aggregates_file(tenant=ledger_of_60, period=PERIOD, fmt=ExportFormat.PARQUET,
                             by="product", grain="month")
    table = pq.read_table(io.BytesIO(_bytes(export)))
    assert table.column("month").to_pylist() == [date(2026, 6, 10)] * 2
    assert table.schema.field("cogs_usd").type == pa.decimal128(38, 9)


# --- the API and the command ---------------------------------------------------------------

API = "/api/v1/exports"


def _streamed(response) -> bytes:
    return b"".join(response.streaming_content)


def test_ledger_endpoint_streams_the_file_for_billing_roles_only(ledger_of_60):
    from aforo.models import Role
    from tests.conftest import api_client

    tenant = ledger_of_60
    params = {"from": "2026-06-10", "to": "2026-06-12", "format": "ndjson"}
    response = api_client(tenant, Role.BILLING_ADMIN).get(f"{API}/ledger", params)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert "ledger-" in response["Content-Disposition"]
    ids = sorted(json.loads(line)["entry_id"] for line in _streamed(response).splitlines())
    assert ids == ledger_ids(tenant)
    for role in (Role.VIEWER, Role.DEVELOPER):
        denied = api_client(tenant, role).get(f"{API}/ledger", params)
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    # aggregates are a read: every role
    ok = api_client(tenant, Role.VIEWER).get(f"{API}/aggregates", {**params, "by": "customer"})
    assert ok.status_code == 200 and len(_streamed(ok).splitlines()) == 3 * 4


def test_ledger_endpoint_gzip_and_bad_input(ledger_of_60):
    from tests.conftest import api_client

    client = api_client(ledger_of_60)
    packed = client.get(f"{API}/ledger", {"from": "2026-06-10", "to": "2026-06-12",
                                          "format": "parquet", "gzip": "true"})
    assert packed.status_code == 200, packed.content
    assert packed["Content-Type"] == "application/gzip"
    assert pq.read_table(io.BytesIO(gzip.decompress(_streamed(packed)))).num_rows == len(
        ledger_ids(ledger_of_60))
    for params, field in (({"format": "xlsx"}, "format"), ({"from": "2026-13-01"}, "from"),
                          ({"gzip": "maybe"}, "gzip")):
        bad = client.get(f"{API}/ledger", params)
        assert bad.status_code == 400 and bad.json()["error"]["field"] == field
    bad = client.get(f"{API}/aggregates", {"by": "customer,colour"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "by"
    bad = client.get(f"{API}/aggregates", {"grain": "week"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "grain"


def test_export_ledger_command_writes_the_file_with_progress(ledger_of_60, tmp_path, capsys):
    from django.core.management import call_command

    target = tmp_path / "ledger.parquet"
    err = io.StringIO()
    call_command("export_ledger", ledger_of_60.slug, "--from", "2026-06-10", "--to",
                 "2026-06-12", "--format", "parquet", "--output", str(target),
                 "--chunk-rows", "10", stderr=err)
    table = pq.read_table(target)
    assert sorted(table.column("entry_id").to_pylist()) == ledger_ids(ledger_of_60)
    assert f"Exported {table.num_rows} entries" in err.getvalue()
    # the progress bar on stderr reached the total the command counted first
    assert f"{table.num_rows}/{table.num_rows}" in capsys.readouterr().err
    assert pq.ParquetFile(target).num_row_groups >= table.num_rows // 10


@pytest.mark.django_db(transaction=True)
def test_the_production_server_streams_the_same_file(ledger_of_60, live_api_url):
    import urllib.request

    from tests.conftest import api_client, issue_token

    tenant = ledger_of_60
    params = "from=2026-06-10&to=2026-06-12&format=csv"
    request = urllib.request.Request(f"{live_api_url}{API}/ledger?{params}", headers={
        "Authorization": f"Bearer {issue_token(tenant)}", "X-Tenant-Id": tenant.slug})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
        assert answer.headers.get("Transfer-Encoding") == "chunked"
        body = answer.read()
    expected = _streamed(api_client(tenant).get(f"{API}/ledger", dict(
        p.split("=") for p in params.split("&"))))
    assert sorted(body.splitlines()) == sorted(expected.splitlines())
    assert body.count(b"\n") == len(ledger_ids(tenant)) + 1
