"""The portal's roles: groups created by a migration, their permissions kept in sync here.

Permissions are listed as ``app_label.codename`` patterns (fnmatch). They are
re-applied after every ``migrate``, so a role stays exact as apps add models:
what a group may do is this file, reviewed like code.
"""

from __future__ import annotations

from fnmatch import fnmatch

DEVOPS = "DevOps"
INCIDENT_COMMANDER = "Incident Commander"
VIEWER = "Viewer"

ROLES: dict[str, dict[str, list[str]]] = {
    DEVOPS: {
        "allow": [
            "backups.*",
            "django_celery_beat.*",
            "drills.*",
            "drportal.*",
            "incidents.view_*",
            "alerts.*",
            "admin.view_logentry",
        ],
        "deny": [],
    },
    INCIDENT_COMMANDER: {
        "allow": [
            "incidents.*",
            "alerts.view_notification",
            "alerts.retry_notification",
            "backups.view_*",
            "drills.view_*",
            "drills.add_*",
            "drills.change_*",
            "drportal.view_*",
            "django_celery_beat.view_*",
            "admin.view_logentry",
        ],
        # A commander restores only through an incident (incidents.restore_via_incident).
        "deny": ["incidents.delete_*"],
    },
    VIEWER: {
        "allow": ["*.view_*"],
        "deny": ["auth.*", "axes.*", "sessions.*", "contenttypes.*"],
    },
}


def permission_names_for(role: str, available: list[str]) -> list[str]:
    spec = ROLES[role]
    return [
        name
        for name in available
        if any(fnmatch(name, pattern) for pattern in spec["allow"])
        and not any(fnmatch(name, pattern) for pattern in spec["deny"])
    ]


def sync_role_permissions(sender=None, **kwargs) -> None:
    """post_migrate: make each role group's permissions exactly what ROLES says."""
    from django.contrib.auth.models import Group, Permission

    # The groups are created here too, not only by the migration that first made them: a database flushed
    # and re-migrated (a test, a reset) must not be left without its roles, and assign() never fails for one.
    groups = {name: Group.objects.get_or_create(name=name)[0] for name in ROLES}
    permissions = {
        f"{p.content_type.app_label}.{p.codename}": p for p in Permission.objects.select_related("content_type")
    }
    for role, group in groups.items():
        wanted = [permissions[name] for name in permission_names_for(role, sorted(permissions))]
        group.permissions.set(wanted)


def assign(user, role: str, *, remove: bool = False) -> None:
    from django.contrib.auth.models import Group

    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    group = Group.objects.get(name=role)
    if remove:
        user.groups.remove(group)
        return
    user.groups.add(group)
    if not user.is_staff:
        user.is_staff = True  # the admin is the portal: a role is useless without staff access
        user.save(update_fields=["is_staff"])
