from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class DRPortalConfig(AppConfig):
    default = True
    name = "drportal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import plan_sections, roles  # noqa: F401  [health_checks] plan section
        from .schedules import ensure_system_schedules, register_system_schedule

        post_migrate.connect(roles.sync_role_permissions, dispatch_uid="drportal.sync_roles")
        # Every app registers its housekeeping entries in its ready(); they are created after migrate.
        post_migrate.connect(ensure_system_schedules, sender=self, dispatch_uid="drportal.system_schedules")
        # The probes task is the core's until the portal app owns it (then it registers it there).
        register_system_schedule(
            "health: probe the plan's health-check URLs",
            "drportal.tasks.run_probes",
            "* * * * *",
            "Check every due health-check URL; record results, alert on flips, update status components.",
        )


class PortalAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the dashboard on its index page."""

    default = False
    default_site = "drportal.sites.PortalAdminSite"
