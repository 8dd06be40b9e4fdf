from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PortalConfig(AppConfig):
    """The roof: the dashboard, /health, probes and the admin site. The only app that imports all the others."""

    default = True
    name = "portal"
    verbose_name = "Portal status"

    def ready(self) -> None:
        from . import plan_sections  # noqa: F401  the [health_checks] plan section


class PortalAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the dashboard on its index page."""

    default = False
    default_site = "portal.sites.PortalAdminSite"
