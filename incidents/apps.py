from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from drportal.health import register_read_only_source

        from . import plan, receivers  # noqa: F401  plan sections; alerts on backup events
        from .services.security import read_only_on

        # /health (core) reports the read-only switch without importing this app.
        register_read_only_source(read_only_on)
