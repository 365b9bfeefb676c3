from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "budgets"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from aforo.console import console_tab_register
        from budgets.models import Alert
        from budgets.notify import alert_content
        from notifications.services import content_register

        content_register(Alert, alert_content)
        console_tab_register("budgets", "Budgets & Alerts", "console-cogs-budgets", order=50)
