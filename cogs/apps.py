from django.apps import AppConfig


class CogsConfig(AppConfig):
    name = "cogs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from aforo.console import console_tab_register

        for order, (key, title, url_name) in enumerate((
                ("overview", "Overview", "console-home"),
                ("pnl", "P&L Analysis", "console-cogs-pnl"),
                ("breakdown", "Cost Breakdown", "console-cogs-breakdown"),
                ("transactions", "Transactions", "console-cogs-transactions"))):
            console_tab_register(key, title, url_name, order=10 * (order + 1))
        console_tab_register("usage", "Usage", "console-cogs-usage", order=45)
