"""Attribution benchmark: N events (default 10M) attributed in one run, embedded chdb.

    .venv/bin/python benchmarks/attribution.py --events 10000000

Events go straight into the ledger with one INSERT ... SELECT FROM numbers() (fast to set up,
not what is measured); every customer gets an invoice with a per-event line (one product) and a
token line (the other), so each event gets one allocation; --platform-line adds a FLAT line
over every product (two allocations per event). Measured: the first run (everything new), a
second run (nothing to change), and the check that every line sums exactly. Figures are
appended to RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GENERATE = """
INSERT INTO ledger (tenant_id, entry_id, entry_type, entry_kind, event_id, occurred_at,
                    recorded_at, customer_id, product_id, product_type, provider, model,
                    source_type, session_id, event_count, input_tokens, output_tokens,
                    tool_calls, reasoning_steps, quantity, ai_cogs_usd, infra_cogs_usd,
                    fee_cogs_usd, unclassified_cogs_usd, cost_source)
SELECT %(tenant_id)s, concat('evt_', toString(number)), 'COST', 'ORIGINAL',
       concat('evt_', toString(number)),
       toDateTime('2026-10-01 00:00:00', 'UTC') + modulo(intHash32(number), 2678400), now(),
       concat('cust_', toString(modulo(number, %(customers)s))),
       if(modulo(number, 3) = 0, 'prod_agent', 'prod_api'), 'API_WITH_AI', 'Anthropic',
       'claude-sonnet-4-6', 'GATEWAY', concat('s', toString(modulo(number, 100000))), 1,
       100 + modulo(number, 5000), 20 + modulo(number * 7, 3000), modulo(number, 4),
       modulo(number, 9),
       toDecimal64('1', 9), toDecimal64('0.0012', 9), toDecimal64('0.0003', 9),
       toDecimal64('0.0001', 9), toDecimal64('0', 9), 'CARRIED'
FROM numbers(%(events)s)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--platform-line", action="store_true",
                        help="Add a FLAT line for every product per invoice (2 lines per event)")
    parser.add_argument("--no-record", action="store_true", help="Do not append to RESULTS.md")
    args = parser.parse_args()

    var = ROOT / "var" / "bench-attribution"
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    for name in ("CLICKHOUSE_URL", "DATABASE_URL", "REDIS_URL", "CHDB_PATH"):
        os.environ.pop(name, None)  # embedded: chdb and SQLite under var/bench-attribution
    os.environ.update({"AFORO_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "aforo.settings"})
    import django

    django.setup()
    from django.core.management import call_command

    from aforo import eventstore
    from aforo.eventstore.migrate import migrate_eventstore
    from aforo.tenancy import tenant_create
    from billing.attribution import attribution_run
    from billing.models import Invoice, InvoiceLine, InvoiceSource, InvoiceStatus, Unit

    call_command("migrate", verbosity=0)
    migrate_eventstore()
    tenant = tenant_create(slug="bench", name="Benchmark")

    t0 = time.monotonic()
    eventstore.command(GENERATE, {"tenant_id": tenant.slug, "events": args.events,
                                  "customers": args.customers})
    generated = time.monotonic() - t0

    start = datetime(2026, 10, 1, tzinfo=timezone.utc)
    end = datetime(2026, 11, 1, tzinfo=timezone.utc)
    total = Decimal(0)
    for c in range(args.customers):
        invoice = Invoice.objects.create(
            tenant=tenant, invoice_id=f"inv_{c}", customer_id=f"cust_{c}", period_start=start,
            period_end=end, status=InvoiceStatus.FINALIZED, source=InvoiceSource.API)
        lines = [
            InvoiceLine(invoice=invoice, line_id="events", product_id="prod_api",
                        amount_usd=Decimal("123.45") + c, unit=Unit.EVENTS),
            InvoiceLine(invoice=invoice, line_id="tokens", product_id="prod_agent",
                        amount_usd=Decimal("987.654321") + c, unit=Unit.TOKENS),
        ]
        if args.platform_line:
            lines.append(InvoiceLine(invoice=invoice, line_id="platform", product_id="",
                                     amount_usd=Decimal("49.00"), unit=Unit.FLAT))
        InvoiceLine.objects.bulk_create(lines)
        total += sum(line.amount_usd for line in lines)

    load_before = os.getloadavg()[0]
    t0, c0 = time.monotonic(), time.process_time()
    first = attribution_run(tenant=tenant, trigger="BENCH")
    first_s, first_cpu = time.monotonic() - t0, time.process_time() - c0
    t0, c0 = time.monotonic(), time.process_time()
    second = attribution_run(tenant=tenant, trigger="BENCH")
    second_s, second_cpu = time.monotonic() - t0, time.process_time() - c0

    [check] = eventstore.tenant_query(
        tenant.slug,
        "SELECT sum(revenue_usd) AS revenue, count() AS entries FROM ledger "
        "WHERE tenant_id = %(tenant_id)s AND entry_type = 'REVENUE'")
    exact = check["revenue"] == total
    allocations = first.events
    lines = [
        f"events {args.events:,}, customers {args.customers:,}, invoice lines {first.lines:,}, "
        f"(event, line) allocations {allocations:,}",
        f"generate events (INSERT ... SELECT FROM numbers): {generated:.1f} s",
        f"first run (all new): {first_s:.1f} s wall, {first_cpu:.1f} s CPU (all threads); "
        f"entries written {first.entries_written:,}",
        f"second run (nothing to change): {second_s:.1f} s wall, {second_cpu:.1f} s CPU; "
        f"entries written {second.entries_written:,}",
        f"revenue in ledger {check['revenue']} = invoice total {total}: {exact}",
        f"machine load average (1 min) before / after the runs: {load_before:.1f} / "
        f"{os.getloadavg()[0]:.1f} (other work shares these cores)",
    ]
    for line in lines:
        print(line)
    if not args.no_record:
        cpu = platform.processor() or platform.machine()
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as out:
            out.write(
                f"\n## attribution — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n\n"
                f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} "
                f"{platform.release()}, Python {platform.python_version()}, embedded chdb "
                f"{_chdb_version()}.\n\n" + "".join(f"- {line}\n" for line in lines))
    eventstore.get_store().close()
    if not exact:
        sys.exit("revenue does not sum to the invoices")


def _chdb_version() -> str:
    from aforo import eventstore

    return eventstore.query("SELECT version() AS v")[0]["v"]


if __name__ == "__main__":
    main()
