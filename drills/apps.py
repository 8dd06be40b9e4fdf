from django.apps import AppConfig


class DrillsConfig(AppConfig):
    name = "drills"
    verbose_name = "Drills and plan reviews"

    def ready(self) -> None:
        from . import plan  # noqa: F401  plan sections [tests.*] and [document.*]
