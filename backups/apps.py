from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"
    verbose_name = "Backups"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import plan, receivers  # noqa: F401  plan sections; schedule sync

        post_migrate.connect(receivers.ensure_housekeeping, sender=self, dispatch_uid="backups.housekeeping")
