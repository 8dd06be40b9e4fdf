from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from backups.services.restore import register_requester

        from . import plan, receivers  # noqa: F401  plan sections; alerts on backup events
        from .services.security import restore_requested_via_incident

        # "Restore before T" sends people to the backups restore page with ?incident=ID: the restore
        # service asks this app whether that incident exists, is open, and may be acted on by them.
        register_requester("incident", restore_requested_via_incident)
