from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from . import outbox, tasks

        # The outbox asks for delivery through tasks (which own every enqueue) without importing them.
        outbox.set_enqueuer(tasks.enqueue_deliveries)
