from django.apps import AppConfig


class IntelligenceConfig(AppConfig):
    name = "intelligence"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from aforo.console import console_tab_register, overview_panel_register
        from intelligence.pacing import budget_subjects, pacing_source_register
        from intelligence.services import signal_record_margin_trip
        from intelligence.views import health_panel
        from margin_guard.hooks import level_change_register

        # Budgets pace now; entitlements register their own source when they exist.
        pacing_source_register("budgets", budget_subjects)
        level_change_register(signal_record_margin_trip)
        console_tab_register("signals", "Signals", "console-cogs-signals", order=60)
        console_tab_register("forecast", "Forecast", "console-cogs-forecast", order=70)
        overview_panel_register(health_panel)
