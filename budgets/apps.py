from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "budgets"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from budgets.models import Alert
        from budgets.notify import alert_content
        from notifications.services import content_register

        content_register(Alert, alert_content)
