from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class DRPortalConfig(AppConfig):
    default = True
    name = "drportal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import plan_sections, roles  # noqa: F401  [health_checks] plan section

        post_migrate.connect(roles.sync_role_permissions, dispatch_uid="drportal.sync_roles")


class PortalAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the dashboard on its index page."""

    default = False
    default_site = "drportal.sites.PortalAdminSite"
