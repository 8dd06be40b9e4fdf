from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from drportal.schedules import register_system_schedule

        from . import outbox, tasks

        register_system_schedule(
            "alerts: deliver due notifications",
            "alerts.tasks.sweep",
            "* * * * *",
            "Queue alerts that are due (again): first tries the broker missed and retries after a failure.",
        )

        # The outbox asks for delivery through tasks (which own every enqueue) without importing them.
        outbox.set_enqueuer(tasks.enqueue_deliveries)
