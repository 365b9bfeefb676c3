from django.apps import AppConfig


class MarginGuardConfig(AppConfig):
    name = "margin_guard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ingestion.hooks import post_ingest_register
        from margin_guard.models import GuardAction
        from margin_guard.notify import action_content
        from margin_guard.services import guard_after_ingest
        from notifications.services import content_register

        post_ingest_register(guard_after_ingest)
        content_register(GuardAction, action_content)
