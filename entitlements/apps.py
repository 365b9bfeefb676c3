from django.apps import AppConfig


class EntitlementsConfig(AppConfig):
    name = "entitlements"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from aforo.console import console_tab_register
        from entitlements.burn import debits_attach
        from entitlements.state import credits_after_ingest
        from ingestion.hooks import post_ingest_register, pre_insert_register

        pre_insert_register(debits_attach)
        post_ingest_register(credits_after_ingest)
        console_tab_register("entitlements", "Entitlements & Credits", "console-entitlements",
                             order=75)
