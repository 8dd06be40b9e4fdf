from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"
    verbose_name = "Backups"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import alerting, plan, receivers  # noqa: F401  plan sections; schedule sync; alerts on its signals

        alerting.register_events()

        post_migrate.connect(receivers.ensure_housekeeping, sender=self, dispatch_uid="backups.housekeeping")

        from drportal.workers import ENV_NAME_SOURCES

        from .services.queues import env_names_of_targets

        # Workers report which of these env: names they can see (names only) in their heartbeat.
        if env_names_of_targets not in ENV_NAME_SOURCES:
            ENV_NAME_SOURCES.append(env_names_of_targets)
