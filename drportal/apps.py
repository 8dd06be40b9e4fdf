from django.apps import AppConfig


class DRPortalConfig(AppConfig):
    default = True
    name = "drportal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import roles
        from .schedules import ensure_system_schedules

        post_migrate.connect(roles.sync_role_permissions, dispatch_uid="drportal.sync_roles")
        # Every app registers its housekeeping entries in its ready(); they are created after migrate.
        post_migrate.connect(ensure_system_schedules, sender=self, dispatch_uid="drportal.system_schedules")
