"""The live API against its own OpenAPI schema, with schemathesis: every operation, positive and
negative cases, bounded examples. Zero failures of the four contract checks: no 5xx, every
status documented, every body matching its declared schema, every content type declared.

Runs against the production web server (uvicorn, as the Procfile's web process) on a tenant
holding a little of everything, so list endpoints answer real rows. New endpoints are covered
as soon as they are in the schema: nothing here names an operation.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import issue_token
from tests.factories import seed_every_kind

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# Bounded: about 75 operations x (positive + negative) stay within a couple of minutes.
EXAMPLES = {GenerationMode.POSITIVE: int(os.environ.get("AFORO_CONFORMANCE_EXAMPLES", 12)),
            GenerationMode.NEGATIVE: int(os.environ.get("AFORO_CONFORMANCE_EXAMPLES", 12)) // 2}
REPORT = Path(__file__).resolve().parents[1] / "artifacts" / "api-conformance.txt"

pytestmark = pytest.mark.django_db(transaction=True)


def _order(operation) -> tuple:
    # Deletes last (they may remove what other operations read), token revocation very last.
    return (operation.method.upper() == "DELETE", "tokens" in operation.path, operation.path,
            operation.method)


def test_the_live_api_conforms_to_its_schema(live_api_url, browser_store, tenant):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    seed_every_kind(tenant, now=now)
    headers = {"Authorization": f"Bearer {issue_token(tenant)}", "X-Tenant-Id": tenant.slug}
    document = requests.get(f"{live_api_url}/api/schema/?format=json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=_order)
    assert len(operations) >= 60
    session = requests.Session()
    failures: dict[str, str] = {}
    cases = [0]

    def runner(operation, mode, examples):
        key = f"{operation.method.upper()} {operation.path} [{mode.value}]"

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck),
                  phases=[Phase.explicit, Phase.generate])
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case):
            cases[0] += 1
            try:
                case.call_and_validate(base_url=live_api_url, session=session,
                                       headers=headers, checks=CHECKS, timeout=30)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 (all collected)
                failures.setdefault(key, f"{type(exc).__name__}: {exc}"[:3000])

        return run

    for operation in operations:
        for mode, examples in EXAMPLES.items():
            runner(operation, mode, examples)()
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(f"{len(operations)} operations, {cases[0]} cases, {len(failures)} failing\n\n"
                      + "\n\n".join(f"== {k}\n{v}" for k, v in sorted(failures.items())))
    assert not failures, f"{len(failures)} operations fail; see {REPORT}:\n" + "\n".join(
        sorted(failures))[:4000]


def test_the_schema_documents_every_error_status_on_every_operation(client):
    document = client.get("/api/schema/?format=json").json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"401", "403", "503"} <= set(responses), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= set(responses), (method, path)


def test_main_endpoints_carry_examples(client):
    document = client.get("/api/schema/?format=json").json()
    for path, method in (("/api/v1/events", "post"),
                         ("/api/v1/analytics/cogs/dashboard", "get"),
                         ("/api/v1/analytics/cogs/dashboard/transactions", "get"),
                         ("/api/v1/cogs/budgets", "post")):
        operation = document["paths"][path][method]
        text = str(operation)
        assert "example" in text, (method, path)

