from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from alerts import events
        from backups.services.restore import register_requester
        from drportal.schedules import register_system_schedule

        from . import plan, receivers  # noqa: F401  plan sections; linked jobs on timelines
        from .services.security import restore_requested_via_incident

        events.register("status_update", "an incident status update (stakeholders)")
        events.register("incident_report_overdue", "a post-incident report is overdue")

        # "Restore before T" sends people to the backups restore page with ?incident=ID: the restore
        # service asks this app whether that incident exists, is open, and may be acted on by them.
        register_requester("incident", restore_requested_via_incident)
        register_system_schedule(
            "incidents: remind overdue reports",
            "incidents.tasks.remind_overdue_reports",
            "*/15 * * * *",
            "Remind while a post-incident report is overdue (once per ALERT_REMINDER_SECONDS).",
        )
