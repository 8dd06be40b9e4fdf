from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from . import plan, receivers  # noqa: F401  plan sections; alerts on backup events
