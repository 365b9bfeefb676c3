"""The cost sources API: sources, uploads through `file`, the import run's figures, a
malformed file's 400 naming row and column, tenancy and roles."""
from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command

from aforo.models import Role
from cost_sources.models import CostImport
from tests.conftest import api_client
from tests.factories import cost_source, reference_file

pytestmark = pytest.mark.django_db

ANTHROPIC = "anthropic/cost_report_constructed_example.json"


def _source(api, kind="ANTHROPIC_COSTS", name="Anthropic bills") -> dict:
    response = api.post("/api/v1/cost-sources", {"name": name, "kind": kind}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _upload(api, source_id: int, name: str, content: bytes):
    upload = io.BytesIO(content)
    upload.name = name
    return api.post(f"/api/v1/cost-sources/{source_id}/imports", {"file": upload},
                    format="multipart")


def test_an_uploaded_report_is_imported_and_listed(api, store):
    source = _source(api)
    assert source["mode"] == "UPLOAD" and source["lastImport"] is None
    response = _upload(api, source["id"], "cost.json", reference_file(ANTHROPIC).read_bytes())
    assert response.status_code == 201, response.content
    run = response.json()
    assert run["status"] == "SUCCEEDED"
    assert (run["rowsRead"], run["rowsImported"], run["rowsSkipped"]) == (6, 6, [])
    assert run["totalUsd"] == 6.855 and run["linesChanged"] == 6
    assert (run["periodStart"], run["periodEnd"]) == ("2025-08-01", "2025-08-02")
    again = _upload(api, source["id"], "cost.json", reference_file(ANTHROPIC).read_bytes())
    assert again.json()["linesChanged"] == 0 and again.json()["rowsImported"] == 6
    listed = api.get(f"/api/v1/cost-sources/{source['id']}/imports").json()
    assert [r["id"] for r in listed["content"]] == [again.json()["id"], run["id"]]
    detail = api.get(f"/api/v1/cost-sources/{source['id']}").json()
    assert detail["lastImport"]["id"] == again.json()["id"]
    one = api.get(f"/api/v1/cost-sources/{source['id']}/imports/{run['id']}").json()
    assert one["totalUsd"] == 6.855


def test_skipped_rows_come_back_with_their_reasons(api, store):
    source = _source(api, "FOCUS", "FOCUS export")
    path = reference_file("focus/sample_csv/commitment_discount_purchase_scenario_3.csv")
    run = _upload(api, source["id"], path.name, path.read_bytes()).json()
    # 4380.00 + 0.50 + 0.50 imported; the fourth data row ends at hour 30.
    assert run["rowsImported"] == 3 and run["totalUsd"] == 4381
    assert run["rowsSkipped"] == [
        {"row": 5, "reason": "ChargePeriodEnd '2023-02-01T30:00:00Z' is not a date"}]
    assert run["rowsSkippedTotal"] == 1


def test_a_malformed_file_is_a_400_naming_row_and_column(api, store):
    source = _source(api, "AWS_CUR", "AWS")
    with open(reference_file("aws_cur/sample_cur_excerpt.csv"), newline="") as handle:
        rows = list(csv.reader(handle))
    rows[7][rows[0].index("lineItem/UnblendedCost")] = "twelve"
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    response = _upload(api, source["id"], "cur.csv", out.getvalue().encode())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "malformed_file" and error["field"] == "file"
    assert error["message"].startswith("Row 8, column lineItem/UnblendedCost: 'twelve'")
    runs = api.get(f"/api/v1/cost-sources/{source['id']}/imports").json()["content"]
    assert [r["status"] for r in runs] == ["FAILED"] and runs[0]["error"] == error["message"]
    # A file with no cost column is malformed at its header.
    response = _upload(api, source["id"], "x.csv", b"a,b\n1,2\n")
    assert response.json()["error"]["message"] == (
        "Row 1, column lineItem/UnblendedCost: the header has no lineItem/UnblendedCost column.")
    response = _upload(api, _source(api, "OPENAI_COSTS", "oa")["id"], "x.json", b"{not json")
    assert response.status_code == 400 and response.json()["error"]["message"].startswith(
        "Row 1, column char 2: not JSON")


def test_no_file_and_bad_sources_are_400s(api, store):
    source = _source(api)
    response = api.post(f"/api/v1/cost-sources/{source['id']}/imports", {}, format="multipart")
    assert response.status_code == 400 and response.json()["error"]["field"] == "file"
    response = api.post("/api/v1/cost-sources", {"name": "x", "kind": "GCP"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "kind"
    response = api.post("/api/v1/cost-sources", {"name": "Anthropic bills",
                                                 "kind": "FOCUS"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["field"] == "name"


def test_another_tenants_source_is_a_404(api, other_tenant, store):
    theirs = cost_source(other_tenant, "FOCUS")
    assert api.get(f"/api/v1/cost-sources/{theirs.pk}").status_code == 404
    assert api.get(f"/api/v1/cost-sources/{theirs.pk}/imports").status_code == 404
    response = _upload(api, theirs.pk, "x.csv", b"BilledCost,ChargePeriodStart\n1,2025-01-01\n")
    assert response.status_code == 404
    assert not CostImport.objects.filter(source=theirs).exists()
    assert api.get("/api/v1/cost-sources").json()["totalElements"] == 0


@pytest.mark.parametrize("role", [Role.VIEWER, Role.DEVELOPER])
def test_read_roles_read_but_do_not_write(tenant, store, role):
    source = cost_source(tenant, "FOCUS")
    client = api_client(tenant, role)
    assert client.get("/api/v1/cost-sources").status_code == 200
    assert client.get("/api/v1/analytics/cogs/reconciliation").status_code == 200
    assert client.post("/api/v1/cost-sources", {"name": "n", "kind": "FOCUS"},
                       format="json").status_code == 403
    assert _upload(client, source.pk, "x.csv", b"BilledCost\n").status_code == 403
    assert client.patch("/api/v1/cost-sources/settings", {"tolerancePct": 2},
                        format="json").status_code == 403


def test_billing_admin_writes(tenant, store):
    client = api_client(tenant, Role.BILLING_ADMIN)
    source = _source(client, "FOCUS", "focus")
    response = client.patch(f"/api/v1/cost-sources/{source['id']}", {"name": "FOCUS (Acme)"},
                            format="json")
    assert response.status_code == 200 and response.json()["name"] == "FOCUS (Acme)"
    assert client.delete(f"/api/v1/cost-sources/{source['id']}").status_code == 204


def test_the_command_imports_with_progress(tenant, store, capsys, monkeypatch):
    from cost_sources import imports

    monkeypatch.setattr(imports, "PROGRESS_EVERY", 500)
    source = cost_source(tenant, "AWS_CUR")
    call_command("import_costs", str(reference_file(
        "aws_cur/sample-anonymous-aws-export-dataset.csv")), "--source", str(source.pk))
    out = capsys.readouterr().out
    assert "  500 rows read" in out and "  1,000 rows read" in out
    assert "1,281 rows read, 1,281 imported, 0 skipped, 1,281 lines changed" in out
    assert "total $1.6823086974 for 2023-11-01 to 2023-12-01" in out


def test_a_gzipped_cur_is_read_as_aws_delivers_it(api, tenant, store):
    import gzip
    from decimal import Decimal

    from cost_sources.queries import billed_total

    path = reference_file("aws_cur/sample-anonymous-aws-export-dataset.csv")
    with open(path, newline="") as handle:
        expected = sum((Decimal(r["lineItem/UnblendedCost"]) for r in csv.DictReader(handle)),
                       Decimal(0))
    source = _source(api, "AWS_CUR", "AWS gz")
    run = _upload(api, source["id"], "cur.csv.gz", gzip.compress(path.read_bytes())).json()
    assert run["rowsImported"] == 1281
    assert billed_total(tenant.slug) == expected
    response = _upload(api, source["id"], "bad.csv.gz", gzip.compress(b"x" * 100)[:20])
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_file"


def test_a_large_upload_is_imported_by_a_background_task(api, store, settings):
    """Past AFORO_COST_BACKGROUND_BYTES the answer is 202 with the RUNNING run and a task
    imports the kept file (eager here, as in tests and the embedded store); the run ends
    SUCCEEDED with its counts, or FAILED naming the malformed row and column; the kept file
    is removed."""
    settings.AFORO_COST_BACKGROUND_BYTES = 100
    source = _source(api)
    response = _upload(api, source["id"], "cost.json", reference_file(ANTHROPIC).read_bytes())
    assert response.status_code == 202, response.content
    assert response.json()["fileName"] == "cost.json"
    run = api.get(f"/api/v1/cost-sources/{source['id']}/imports/{response.json()['id']}").json()
    assert run["status"] == "SUCCEEDED"
    assert (run["rowsRead"], run["rowsImported"], run["linesChanged"]) == (6, 6, 6)
    assert run["totalUsd"] == 6.855
    cur = _source(api, "AWS_CUR", "AWS")
    with open(reference_file("aws_cur/sample_cur_excerpt.csv"), newline="") as handle:
        rows = list(csv.reader(handle))
    rows[7][rows[0].index("lineItem/UnblendedCost")] = "twelve"
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    response = _upload(api, cur["id"], "cur.csv", out.getvalue().encode())
    assert response.status_code == 202
    run = api.get(f"/api/v1/cost-sources/{cur['id']}/imports/{response.json()['id']}").json()
    assert run["status"] == "FAILED"
    assert run["error"].startswith("Row 8, column lineItem/UnblendedCost: 'twelve'")
    from django.conf import settings as django_settings

    spool = django_settings.VAR_DIR / "cost-uploads"
    assert not spool.exists() or list(spool.iterdir()) == []
    # a small file stays in the request
    settings.AFORO_COST_BACKGROUND_BYTES = 10 ** 9
    small = _upload(api, source["id"], "cost.json", reference_file(ANTHROPIC).read_bytes())
    assert small.status_code == 201 and small.json()["linesChanged"] == 0
