"""What runs around each ingest batch: the apps that act on new events register here (Margin
Guard's evaluation, entitlements' credit burn and quota state; later signals), so ingestion
imports none of them.

A post-ingest hook gets the tenant and the ledger rows the batch wrote. Hooks run in the
request's thread after its insert succeeded; a hook with slow work hands it to a thread or a
task of its own. A hook that fails is logged and never fails the ingest (the events are written).

A pre-insert hook gets the tenant and the rows about to be inserted and may set columns on them
(entitlements writes each event's credit debits into its COST entry, so they go in the same
insert as the event). It runs before the insert; one that fails fails the batch, which is then
retried as a whole.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aforo.models import Tenant

log = logging.getLogger(__name__)
PostIngestHook = Callable[[Tenant, list[dict[str, Any]]], None]
PreInsertHook = Callable[[Tenant, list[dict[str, Any]]], None]
_hooks: list[PostIngestHook] = []
_pre_insert: list[PreInsertHook] = []


def post_ingest_register(hook: PostIngestHook) -> None:
    """Run `hook` after every committed batch (once, however often it is registered)."""
    if hook not in _hooks:
        _hooks.append(hook)


def post_ingest_run(tenant: Tenant, rows: list[dict[str, Any]]) -> None:
    for hook in list(_hooks):
        try:
            hook(tenant, rows)
        except Exception:
            log.exception("post-ingest hook %s failed", getattr(hook, "__qualname__", hook))


def pre_insert_register(hook: PreInsertHook) -> None:
    """Run `hook` on every batch's rows just before they are inserted (once per hook)."""
    if hook not in _pre_insert:
        _pre_insert.append(hook)


def pre_insert_run(tenant: Tenant, rows: list[dict[str, Any]]) -> None:
    for hook in list(_pre_insert):
        hook(tenant, rows)
