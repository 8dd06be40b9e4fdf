from django.apps import AppConfig


class DrillsConfig(AppConfig):
    name = "drills"
    verbose_name = "Drills and plan reviews"

    def ready(self) -> None:
        from alerts import events

        from . import plan  # noqa: F401  plan sections [tests.*] and [document.*]

        events.register("drill_overdue", "a drill is overdue")
        events.register("finding_overdue", "a drill finding is overdue")
        events.register("review_overdue", "a plan review is overdue")
