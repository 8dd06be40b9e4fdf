from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"
    verbose_name = "Backups"

    def ready(self) -> None:
        from . import plan  # noqa: F401  registers the [locations] and [targets] plan sections
