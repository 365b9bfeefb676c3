"""The core app: tenancy, authentication, the catalog and the event store."""
from django.apps import AppConfig


class AforoConfig(AppConfig):
    name = "aforo"
    verbose_name = "Aforo"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from aforo import openapi  # noqa: F401  (registers the schema extensions)
        from aforo.limits import install_fast_text_checks

        install_fast_text_checks()
