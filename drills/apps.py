from django.apps import AppConfig


class DrillsConfig(AppConfig):
    name = "drills"
    verbose_name = "Drills and plan reviews"

    def ready(self) -> None:
        from alerts import events
        from drportal.schedules import register_system_schedule

        from . import plan  # noqa: F401  plan sections [tests.*] and [document.*]

        register_system_schedule(
            "drills: schedule and reminders",
            "drills.tasks.housekeeping",
            "5 * * * *",
            "Create each test's next drill; flag overdue drills, findings and plan reviews and send reminders.",
        )
        register_system_schedule(
            "drills: run due automated drills",
            "drills.tasks.run_due_automated_drills",
            "20 * * * *",
            "Perform due drills the portal does itself (Backup Verification: a real restore test).",
        )
        events.register("drill_overdue", "a drill is overdue")
        events.register("finding_overdue", "a drill finding is overdue")
        events.register("review_overdue", "a plan review is overdue")
