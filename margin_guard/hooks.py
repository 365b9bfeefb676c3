"""What runs after a guard level change commits: apps that act on level changes register here
(intelligence records each as a MARGIN_TRIP signal), so margin_guard imports none of them.

A hook gets the GuardAction and the policy that judged it. A hook that fails is logged and never
undoes the level change.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
LevelChangeHook = Callable[[Any, Any], None]  # (GuardAction, GuardPolicy)
_hooks: list[LevelChangeHook] = []


def level_change_register(hook: LevelChangeHook) -> None:
    """Run `hook` after every committed level change (once, however often registered)."""
    if hook not in _hooks:
        _hooks.append(hook)


def level_change_run(action: Any, policy: Any) -> None:
    for hook in list(_hooks):
        try:
            hook(action, policy)
        except Exception:
            log.exception("level-change hook %s failed", getattr(hook, "__qualname__", hook))
