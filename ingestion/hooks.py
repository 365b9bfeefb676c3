"""What runs after each committed ingest batch: the apps that act on new events register here
(Margin Guard's evaluation; later entitlements and signals), so ingestion imports none of them.

A hook gets the tenant and the ledger rows the batch wrote. Hooks run in the request's thread
after its insert succeeded; a hook with slow work hands it to a thread or a task of its own. A
hook that fails is logged and never fails the ingest (the events are written).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aforo.models import Tenant

log = logging.getLogger(__name__)
PostIngestHook = Callable[[Tenant, list[dict[str, Any]]], None]
_hooks: list[PostIngestHook] = []


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
