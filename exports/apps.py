"""Exports: files of the ledger and its aggregates, and scheduled deliveries to warehouses."""
from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from aforo.console import console_tab_register

        console_tab_register("exports", "Exports", "console-exports", order=90)
