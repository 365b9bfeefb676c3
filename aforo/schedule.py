"""The embedded mode's scheduler: runs celery.py's beat_schedule inside the web process.

Server mode leaves this to celery-beat; embedded mode has no beat process, so one daemon thread
walks the same schedule and runs each due task eagerly.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from django.conf import settings

log = logging.getLogger(__name__)
_started = threading.Event()


def run_due(entries: dict[str, dict], last_run: dict[str, datetime]) -> list[str]:
    """Run the entries that celery's own schedule says are due; return their names.

    An entry first seen now starts its clock now, as celery-beat does for a new entry.
    """
    from celery import current_app
    from celery.schedules import maybe_schedule

    ran = []
    for name, entry in entries.items():
        schedule = maybe_schedule(entry["schedule"], app=current_app)
        last = last_run.setdefault(name, schedule.now())
        if not schedule.is_due(last).is_due:
            continue
        last_run[name] = schedule.now()
        try:
            current_app.tasks[entry["task"]].apply(args=entry.get("args", ()),
                                                   kwargs=entry.get("kwargs", {}))
            ran.append(name)
        except Exception:  # one failing job must not stop the others
            log.exception("in-process job %s failed", name)
    return ran


def beat_app():
    """The Celery app with every app's tasks module imported, as a worker imports them: no
    worker starts in the web process, and a task whose module no view imports would be missing."""
    from aforo.celery import app

    app.loader.import_default_modules()
    return app


def _loop(tick: float) -> None:
    app = beat_app()
    last_run: dict[str, datetime] = {}
    while True:
        run_due(app.conf.beat_schedule, last_run)
        time.sleep(tick)


def start_in_process_schedule(tick: float = 5.0) -> bool:
    """Start the scheduler thread once per process, only in the embedded mode."""
    if not settings.AFORO_IN_PROCESS_SCHEDULE or _started.is_set():
        return False
    _started.set()
    threading.Thread(target=_loop, args=(tick,), name="aforo-schedule", daemon=True).start()
    return True
