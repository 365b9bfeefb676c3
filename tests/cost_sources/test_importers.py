"""The importers read every reference file in place; totals are summed here by hand (the csv
module and Decimal in the test), never by the importer under test."""
from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest

from aforo.ledger.query import LedgerQuery, Table
from cost_sources.importers import MalformedCostFile
from cost_sources.models import CostImport
from cost_sources.queries import billed_by, billed_total
from tests.factories import cost_source, import_costs, reference_file

pytestmark = pytest.mark.django_db

CUR = "aws_cur/sample-anonymous-aws-export-dataset.csv"
CUR_EXCERPT = "aws_cur/sample_cur_excerpt.csv"


def _lines(tenant, source) -> int:
    return (LedgerQuery(tenant.slug, Table.COST_LINES).where(source_id=str(source.pk))
            .measures("lines").one()["lines"])


def test_anthropic_cost_report_total_is_its_cents_summed(tenant, store):
    path = reference_file("anthropic/cost_report_constructed_example.json")
    source = cost_source(tenant, "ANTHROPIC_COSTS")
    run = import_costs(source, path)
    # The report's amounts in cents: 300 + 300 + 15 + 37.5 + 30 + 3 = 685.5 cents.
    assert run.status == CostImport.Status.SUCCEEDED
    assert (run.rows_read, run.rows_imported, run.rows_skipped) == (6, 6, 0)
    assert billed_total(tenant.slug) == Decimal("6.855")
    assert run.total_usd == Decimal("6.855")
    assert billed_by(tenant.slug, "model")["claude-sonnet-4-5-20250929"] == Decimal("6.825")
    # One daily bucket: the report speaks for Aug 1 (the end is exclusive).
    assert (run.period_start, run.period_end) == (date(2025, 8, 1), date(2025, 8, 2))


def test_openai_costs_amounts_are_dollars(tenant, store):
    source = cost_source(tenant, "OPENAI_COSTS")
    run = import_costs(source, reference_file("openai/costs_response_example.json"))
    assert billed_total(tenant.slug) == Decimal("0.06")
    assert billed_by(tenant.slug, "day") == {date(2024, 11, 1): Decimal("0.06")}
    assert (run.period_start, run.period_end) == (date(2024, 11, 1), date(2024, 11, 2))


def test_cur_unblended_cost_per_service_is_exact(tenant, store):
    path = reference_file(CUR)
    expected: dict[str, Decimal] = defaultdict(Decimal)
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            expected[row["lineItem/ProductCode"]] += Decimal(row["lineItem/UnblendedCost"])
    source = cost_source(tenant, "AWS_CUR")
    run = import_costs(source, path)
    assert (run.rows_read, run.rows_imported, run.rows_skipped) == (1281, 1281, 0)
    assert billed_by(tenant.slug, "service") == dict(expected)
    assert billed_total(tenant.slug) == sum(expected.values()) == Decimal("1.6823086974")
    assert (run.period_start, run.period_end) == (date(2023, 11, 1), date(2023, 12, 1))


def test_focus_billed_cost_with_dollar_signs_and_us_dates(tenant, store):
    source = cost_source(tenant, "FOCUS")
    run = import_costs(source, reference_file("focus/sample_csv/simple_saas_agreements_c.csv"))
    # "$10,100.00 " + "$13,000.00 " + "$12,700.00 ", charged Apr 1, May 1 and Jun 1, 2025.
    assert billed_total(tenant.slug) == Decimal("35800")
    assert billed_by(tenant.slug, "day") == {
        date(2025, 4, 1): Decimal("10100"), date(2025, 5, 1): Decimal("13000"),
        date(2025, 6, 1): Decimal("12700")}
    assert billed_by(tenant.slug, "provider") == {"ACMECORP": Decimal("35800")}
    assert run.rows_skipped == 0


def test_focus_rows_that_cannot_be_lines_are_reported_with_their_reasons(tenant, store):
    source = cost_source(tenant, "FOCUS")
    run = import_costs(
        source, reference_file("focus/sample_csv/commitment_discount_purchase_scenario_2.csv"))
    # The third row ends at "2023-02-01T30:00:00Z" (hour 30); the first two bill $1.00 each.
    assert run.rows_read == 3 and run.rows_imported == 2
    assert run.skipped == [{"row": 4, "reason":
                            "ChargePeriodEnd '2023-02-01T30:00:00Z' is not a date"}]
    assert billed_total(tenant.slug) == Decimal("2.00")
    source = cost_source(tenant, "FOCUS", name="with blank lines")
    run = import_costs(source, reference_file(
        "focus/sample_csv/one_hundred_percent_utilization_without_commitment_discount_"
        "flexibility.csv"))
    assert [s["reason"] for s in run.skipped] == ["an empty line", "an empty line"]
    # BilledCost 1.50 (the purchase) + 0.00 (the covered usage), the BOM-free header.
    assert billed_total(tenant.slug, source_id=str(source.pk)) == Decimal("1.50")


def test_every_focus_sample_imports_with_its_billed_cost_summed(tenant, store):
    folder = reference_file("focus/sample_csv")
    for index, path in enumerate(sorted(folder.glob("*.csv"))):
        expected = Decimal(0)
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                if not any((v or "").strip() for v in row.values()):
                    continue
                if "T30:" in (row.get("ChargePeriodEnd") or ""):
                    continue  # hour 30: skipped, as the test above shows
                text = row["BilledCost"].strip().replace("$", "").replace(",", "")
                expected += Decimal(text)
        source = cost_source(tenant, "FOCUS", name=f"focus {index}")
        run = import_costs(source, path)
        assert run.status == CostImport.Status.SUCCEEDED, path.name
        assert billed_total(tenant.slug, source_id=str(source.pk)) == expected, path.name


def test_reimporting_the_same_file_changes_nothing(tenant, store):
    path = reference_file(CUR)
    source = cost_source(tenant, "AWS_CUR")
    first = import_costs(source, path)
    lines, total = _lines(tenant, source), billed_total(tenant.slug)
    assert first.lines_changed == lines > 0
    again = import_costs(source, path)
    assert again.status == CostImport.Status.SUCCEEDED and again.rows_imported == 1281
    assert again.lines_changed == 0
    assert _lines(tenant, source) == lines
    assert billed_total(tenant.slug) == total


def test_a_corrected_file_replaces_what_it_covers(tenant, store, tmp_path):
    path = reference_file(CUR_EXCERPT)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    cost = header.index("lineItem/UnblendedCost")
    source = cost_source(tenant, "AWS_CUR")
    import_costs(source, path)
    original = sum((Decimal(r[cost]) for r in body), Decimal(0))
    assert billed_total(tenant.slug) == original
    # The correction: the last row's cost becomes 1.25, and the first row is gone.
    corrected = [list(r) for r in body[1:]]
    corrected[-1][cost] = "1.25"
    fixed = tmp_path / "cur-corrected.csv"
    with open(fixed, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *corrected])
    run = import_costs(source, fixed)
    assert billed_total(tenant.slug) == sum((Decimal(r[cost]) for r in corrected), Decimal(0))
    # The removed line is negated; the changed line gets its difference.
    assert run.lines_changed == 2
    assert import_costs(source, fixed).lines_changed == 0


def test_a_malformed_amount_fails_the_file_naming_row_and_column(tenant, store, tmp_path):
    path = reference_file(CUR_EXCERPT)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    rows[3][rows[0].index("lineItem/UnblendedCost")] = "12abc"
    bad = tmp_path / "bad.csv"
    with open(bad, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    source = cost_source(tenant, "AWS_CUR")
    with pytest.raises(MalformedCostFile) as caught:
        import_costs(source, bad)
    assert caught.value.row == 4 and caught.value.column == "lineItem/UnblendedCost"
    assert "Row 4, column lineItem/UnblendedCost" in caught.value.message
    assert _lines(tenant, source) == 0
    assert source.imports.get().status == CostImport.Status.FAILED


def test_another_tenants_lines_are_not_seen(tenant, other_tenant, store):
    path = reference_file("anthropic/cost_report_constructed_example.json")
    import_costs(cost_source(other_tenant, "ANTHROPIC_COSTS"), path)
    assert billed_total(tenant.slug) == 0
    assert billed_total(other_tenant.slug) == Decimal("6.855")
