"""The Celery app and every periodic job, declared in one place."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings")

app = Celery("aforo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every periodic job of Aforo. In server mode celery-beat (DatabaseScheduler) runs them; in the
# embedded mode aforo.schedule runs the same entries inside the web process. Later issues add
# their jobs here (attribution nightly, rule evaluation each minute, the guard sweep, ...).
app.conf.beat_schedule: dict[str, dict] = {}

# `make demo` only: a few live events every few seconds, so the console's live ledger moves.
if os.environ.get("AFORO_DEMO_TRAFFIC", "").lower() in ("1", "true", "yes"):
    app.conf.beat_schedule["demo-live-traffic"] = {"task": "aforo.demo_traffic",
                                                   "schedule": 4.0}
