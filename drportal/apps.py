from django.apps import AppConfig


class DRPortalConfig(AppConfig):
    default = True
    name = "drportal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import roles

        post_migrate.connect(roles.sync_role_permissions, dispatch_uid="drportal.sync_roles")
