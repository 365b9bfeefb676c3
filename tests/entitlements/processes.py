"""Ingesting from OS processes of their own (multiprocessing's spawn context): each child sets
Django up afresh against the test run's PostgreSQL database, Redis and ClickHouse server, so
the processes share nothing but those services, as two web workers do."""
from __future__ import annotations

import multiprocessing
import os
from typing import Any

from django.conf import settings
from django.db import connection


def child_env() -> dict[str, str]:
    """What a child needs to reach the parent's services: the test database's own name."""
    db = connection.settings_dict
    return {"DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CLICKHOUSE_URL": settings.CLICKHOUSE_URL,
            "DJANGO_SETTINGS_MODULE": "aforo.settings"}


def _ingest_batches(env: dict[str, str], tenant_slug: str, batches: list[list[dict[str, Any]]],
                    go, done) -> None:
    os.environ.update(env)
    import django

    django.setup()
    from aforo import eventstore
    from aforo.eventstore import ServerStore
    from aforo.models import Tenant
    from tests.factories import ingest

    store = ServerStore(os.environ["CLICKHOUSE_URL"])
    eventstore.set_default(store)
    tenant = Tenant.objects.get(slug=tenant_slug)
    try:
        go.wait(120)  # every child set up: they ingest together
        for batch in batches:
            ingest(tenant, batch)
        done.put(("ok", len(batches)))
    except BaseException as exc:  # the parent fails the test with it
        done.put(("error", repr(exc)))
    finally:
        store.close()


def ingest_from_processes(tenant_slug: str, per_process: list[list[list[dict[str, Any]]]],
                          ) -> list[tuple[str, Any]]:
    """One spawned process per entry of `per_process` (its batches, ingested in order); they
    start ingesting together once all are set up. Returns what each reported."""
    context = multiprocessing.get_context("spawn")
    go, done = context.Barrier(len(per_process)), context.Queue()
    env = child_env()
    children = [context.Process(target=_ingest_batches, args=(env, tenant_slug, batches, go,
                                                              done))
                for batches in per_process]
    for child in children:
        child.start()
    results = [done.get(timeout=300) for _ in children]
    for child in children:
        child.join(timeout=60)
    return results


def _decide_on_request(env: dict[str, str], tenant_slug: str, asks, answers) -> None:
    """Answer ("decide", customer, product, model, wait seconds) with the decision made after
    waiting; stop at None."""
    os.environ.update(env)
    import time

    import django

    django.setup()
    from margin_guard.decision import decide

    answers.put("ready")
    while (ask := asks.get(timeout=300)) is not None:
        _kind, customer, product, model, wait = ask
        time.sleep(wait)
        verdict = decide(tenant_slug, customer_id=customer, product_id=product, model=model)
        answers.put((verdict.decision, verdict.reason_code, verdict.downgrade_to))


class DecidingProcess:
    """Another OS process's decision path (its own mirror, reading the shared Redis)."""

    def __init__(self, tenant_slug: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.asks, self.answers = context.Queue(), context.Queue()
        self.process = context.Process(target=_decide_on_request, args=(
            child_env(), tenant_slug, self.asks, self.answers))
        self.process.start()
        assert self.answers.get(timeout=120) == "ready"

    def decide(self, customer: str, *, product: str = "", model: str = "",
               after_s: float = 0.0) -> tuple[str, str | None, str | None]:
        """(decision, reasonCode, downgrade model) of a decision made `after_s` from now."""
        self.asks.put(("decide", customer, product, model, after_s))
        return self.answers.get(timeout=120)

    def close(self) -> None:
        self.asks.put(None)
        self.process.join(timeout=60)


def threads_at_once(count: int, work) -> list:
    """Run `work()` in `count` threads released together (each closes its own database
    connection); what each returned."""
    import threading

    barrier, results = threading.Barrier(count), []

    def run():
        barrier.wait()
        try:
            results.append(work())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
