from django.apps import AppConfig


class CostSourcesConfig(AppConfig):
    name = "cost_sources"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from aforo.console import console_tab_register

        console_tab_register("cost_sources", "Cost sources", "console-cogs-cost-sources",
                             order=80)
