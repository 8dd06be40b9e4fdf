from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PortalConfig(AppConfig):
    """The roof: the dashboard, /health, probes and the admin site. The only app that imports all the others."""

    default = True
    name = "portal"
    verbose_name = "Portal status"

    def ready(self) -> None:
        from alerts import events
        from drportal.schedules import register_system_schedule

        from . import plan_sections  # noqa: F401  the [health_checks] plan section

        events.register("probe_down", "a health probe fails")
        events.register("probe_up", "a health probe recovers")
        register_system_schedule(
            "health: probe the plan's health-check URLs",
            "portal.tasks.run_probes",
            "* * * * *",
            "Check every due health-check URL; record results, alert on flips, update status components.",
        )


class PortalAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the dashboard on its index page."""

    default = False
    default_site = "portal.sites.PortalAdminSite"
