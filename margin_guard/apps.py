from django.apps import AppConfig


class MarginGuardConfig(AppConfig):
    name = "margin_guard"
    default_auto_field = "django.db.models.BigAutoField"
