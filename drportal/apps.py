from django.apps import AppConfig


class DRPortalConfig(AppConfig):
    default = True
    name = "drportal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from django.db.models.signals import m2m_changed, post_migrate, pre_save

        from . import roles
        from .plan import guard_managed_relations, guard_managed_save
        from .schedules import ensure_system_schedules

        post_migrate.connect(roles.sync_role_permissions, dispatch_uid="drportal.sync_roles")
        # Every app registers its housekeeping entries in its ready(); they are created after migrate.
        post_migrate.connect(ensure_system_schedules, sender=self, dispatch_uid="drportal.system_schedules")
        # The plan file is the one place of change of what applyplan manages (see drportal.plan).
        pre_save.connect(guard_managed_save, dispatch_uid="drportal.plan_managed_save")
        m2m_changed.connect(guard_managed_relations, dispatch_uid="drportal.plan_managed_relations")
