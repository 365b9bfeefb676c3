"""The codebase's rules that a reader cannot see from one file: every ledger read goes through
the ledger query builder, which alone writes the tenant filter."""
from __future__ import annotations

import re
from pathlib import Path

from aforo.ledger.query import HAND_WRITTEN

ROOT = Path(__file__).resolve().parents[2]
APPS = ("aforo", "billing", "budgets", "cogs", "ingestion", "margin_guard", "notifications",
        "entitlements", "intelligence", "cost_sources", "exports")
TENANT_FILTER = re.compile(r"tenant_id\s*=\s*[%'\"{]")


def _app_modules():
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative and not relative.startswith("aforo/eventstore/"):
                continue  # Django migrations hold no SQL
            yield relative, path.read_text()


def test_only_the_builder_and_its_named_exemptions_write_the_tenant_filter():
    offenders = [relative for relative, text in _app_modules()
                 if TENANT_FILTER.search(text)
                 and not any(relative.startswith(allowed) for allowed in HAND_WRITTEN)]
    assert offenders == [], f"write ledger reads with aforo.ledger.query: {offenders}"


def test_the_check_itself_finds_a_hand_written_filter():
    assert TENANT_FILTER.search("SELECT 1 FROM ledger WHERE tenant_id = %(tenant_id)s")
    assert not TENANT_FILTER.search("LedgerQuery(tenant_id).measures('events')")


TEST_MODULE_IMPORT = re.compile(r"^\s*(?:from|import)\s+tests\.(?:\w+\.)*test_\w+", re.MULTILINE)


def test_no_test_module_imports_another_test_modules_helpers():
    """Shared test helpers live in tests/factories.py and conftest fixtures, never in a test
    module another one imports."""
    tests_dir = Path(__file__).resolve().parents[1]
    offenders = sorted(str(path.relative_to(tests_dir)) for path in tests_dir.rglob("*.py")
                       if TEST_MODULE_IMPORT.search(path.read_text()))
    assert offenders == []
    assert TEST_MODULE_IMPORT.search("from tests.billing.test_rating import subscribe")
