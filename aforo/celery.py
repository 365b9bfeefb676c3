"""The Celery app and every periodic job, declared in one place."""
import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings")

app = Celery("aforo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every periodic job of Aforo. In server mode celery-beat (DatabaseScheduler) runs them; in the
# embedded mode aforo.schedule runs the same entries inside the web process.
app.conf.beat_schedule: dict[str, dict] = {
    "evaluate-alerts": {"task": "budgets.evaluate_alerts", "schedule": 60.0},
    "margin-guard-sweep": {"task": "margin_guard.sweep", "schedule": 60.0},
    "margin-guard-daily-summary": {"task": "margin_guard.daily_summary",
                                   "schedule": crontab(hour=7, minute=0)},
    # Billing: revenue attribution nightly; last month's invoices on the 1st, before it.
    "billing-attribute-revenue-nightly": {
        "task": "billing.attribute_revenue_all", "schedule": crontab(hour=2, minute=15)},
    "billing-close-previous-month": {
        "task": "billing.close_previous_month",
        "schedule": crontab(day_of_month=1, hour=1, minute=0)},
    # Intelligence: the detectors, each hour once the hour before has closed (a few minutes
    # late, for events still in flight); the hours judged overlap, so a late run misses none.
    "intelligence-detect-hourly": {"task": "intelligence.detect",
                                   "schedule": crontab(minute=5)},
    # Cost sources: POLL sources whose schedule (hourly or daily) has come round.
    "cost-sources-poll-hourly": {"task": "cost_sources.poll_due",
                                 "schedule": crontab(minute=20)},
    # Entitlements and credits: grants expire, INTERVAL top-ups, the decision state republished.
    "entitlements-expire-grants": {"task": "entitlements.expire_grants", "schedule": 60.0},
    "entitlements-recurring-top-ups": {"task": "entitlements.recurring_top_ups",
                                       "schedule": 60.0},
    "entitlements-refresh": {"task": "entitlements.refresh", "schedule": 60.0},
    # Exports: each schedule runs at its own interval; this checks which are due.
    "exports-run-due": {"task": "exports.run_due", "schedule": 60.0},
}

# `make demo` only: a few live events every few seconds, so the console's live ledger moves.
if os.environ.get("AFORO_DEMO_TRAFFIC", "").lower() in ("1", "true", "yes"):
    app.conf.beat_schedule["demo-live-traffic"] = {"task": "aforo.demo_traffic",
                                                   "schedule": 4.0}
