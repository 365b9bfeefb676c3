from django.apps import AppConfig


class CogsConfig(AppConfig):
    name = "cogs"
    default_auto_field = "django.db.models.BigAutoField"
