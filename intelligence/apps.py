from django.apps import AppConfig


class IntelligenceConfig(AppConfig):
    name = "intelligence"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from intelligence.pacing import budget_subjects, pacing_source_register
        from intelligence.services import signal_record_margin_trip
        from margin_guard.hooks import level_change_register

        # Budgets pace now; entitlements register their own source when they exist.
        pacing_source_register("budgets", budget_subjects)
        level_change_register(signal_record_margin_trip)
