from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from alerts import events
        from backups.services.restore import register_requester
        from drportal.health import register_read_only_source
        from drportal.schedules import register_system_schedule

        from . import plan, receivers  # noqa: F401  plan sections; linked jobs on timelines

        events.register("status_update", "an incident status update (stakeholders)")
        events.register("incident_report_overdue", "a post-incident report is overdue")
        # TODO(merge): the probes' events belong to portal's AppConfig.ready(), next to portal/probes.py.
        events.register("probe_down", "a health probe fails")
        events.register("probe_up", "a health probe recovers")
        from .services.security import read_only_on, restore_requested_via_incident

        # /health (core) reports the read-only switch without importing this app.
        register_read_only_source(read_only_on)
        # "Restore before T" sends people to the backups restore page with ?incident=ID: the restore
        # service asks this app whether that incident exists, is open, and may be acted on by them.
        register_requester("incident", restore_requested_via_incident)
        register_system_schedule(
            "incidents: remind overdue reports",
            "incidents.tasks.remind_overdue_reports",
            "*/15 * * * *",
            "Remind while a post-incident report is overdue (once per ALERT_REMINDER_SECONDS).",
        )
