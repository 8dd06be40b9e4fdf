"""Each role can do what it should over the admin, and is refused the rest."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.urls import reverse

from backups.models import BackupRun, Location, Restore, Target
from backups.services import backup
from drportal import roles

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(source_db, local_location, make_target):
    target = make_target("db", source_db, [local_location])
    return backup.execute(backup.start_backup(target, trigger="command"))


def as_(client, user):
    client.force_login(user)
    return client


def test_groups_exist_from_the_migration_with_their_permissions():
    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ROLES)
    devops = set(Group.objects.get(name="DevOps").permissions.values_list("codename", flat=True))
    assert {"run_backup", "verify_backuprun", "restore_backuprun", "change_target", "add_location"} <= devops
    commander = set(Group.objects.get(name="Incident Commander").permissions.values_list("codename", flat=True))
    assert {"change_incident", "restore_via_incident", "view_backuprun"} <= commander
    assert not {"restore_backuprun", "run_backup", "change_target"} & commander
    viewer = Group.objects.get(name="Viewer").permissions.values_list("codename", flat=True)
    assert viewer and all(codename.startswith("view_") for codename in viewer)


@pytest.mark.parametrize(
    ("role", "url_name", "expected"),
    [
        ("DevOps", "admin:backups_target_changelist", 200),
        ("DevOps", "admin:backups_location_add", 200),
        ("Viewer", "admin:backups_target_changelist", 200),
        ("Viewer", "admin:backups_location_add", 403),
        ("Viewer", "admin:incidents_incident_changelist", 200),
        ("Viewer", "admin:incidents_incident_add", 403),
        ("Viewer", "admin:auth_user_changelist", 403),
        ("Incident Commander", "admin:incidents_incident_add", 200),
        ("Incident Commander", "admin:backups_location_add", 403),
        ("Incident Commander", "admin:backups_backuprun_changelist", 200),
        ("DevOps", "admin:admin_logentry_changelist", 200),
    ],
)
def test_pages_by_role(client, people, role, url_name, expected):
    assert as_(client, people[role]).get(reverse(url_name)).status_code == expected


def test_viewer_cannot_change_a_target(client, people, local_location):
    target = Target.objects.create(name="t", engine="postgresql", source="env:X")
    target.locations.set([local_location])
    response = as_(client, people["Viewer"]).post(
        reverse("admin:backups_target_change", args=[target.pk]), {"name": "renamed", "engine": "postgresql"}
    )
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.name == "t"


@pytest.mark.parametrize(("role", "allowed"), [("DevOps", True), ("Viewer", False), ("Incident Commander", False)])
def test_back_up_now_by_role(client, people, role, allowed, local_location):
    target = Target.objects.create(name="t", engine="postgresql", source="env:X")
    target.locations.set([local_location])
    as_(client, people[role]).post(
        reverse("admin:backups_target_changelist"), {"action": "back_up_now", "_selected_action": [target.pk]}
    )
    assert BackupRun.objects.exists() is allowed


@pytest.mark.parametrize(("role", "status"), [("DevOps", 200), ("Viewer", 403), ("Incident Commander", 403)])
def test_restore_page_by_role(client, people, run, role, status):
    url = reverse("admin:backups_backuprun_restore", args=[run.pk])
    c = as_(client, people[role])
    assert c.get(url).status_code == status
    if status == 403:
        assert c.post(url, {"location": "local", "to": "", "confirm": "yes"}).status_code == 403
        assert not Restore.objects.exists()


@pytest.mark.parametrize(("role", "status"), [("DevOps", 302), ("Viewer", 403), ("Incident Commander", 403)])
def test_verify_by_role(client, people, run, role, status):
    response = as_(client, people[role]).post(
        reverse("admin:backups_backuprun_verify", args=[run.pk]), {"kind": "integrity"}
    )
    assert response.status_code == status


def test_nobody_edits_or_deletes_the_audit_trail(client, people, local_location):
    as_(client, people["DevOps"]).post(
        reverse("admin:backups_location_add"), {"name": "disk2", "url": "file:///tmp/x", "enabled": "on"}
    )
    entry = LogEntry.objects.get(object_repr="disk2")
    assert entry.user == people["DevOps"]
    for role in roles.ROLES:
        c = as_(client, people[role])
        assert c.post(reverse("admin:admin_logentry_delete", args=[entry.pk]), {"post": "yes"}).status_code in (
            403,
            302,
        )
    assert LogEntry.objects.filter(pk=entry.pk).exists()


def test_started_jobs_are_in_the_audit_trail(client, people, local_location):
    target = Target.objects.create(name="t", engine="postgresql", source="env:X")
    target.locations.set([local_location])
    as_(client, people["DevOps"]).post(
        reverse("admin:backups_target_changelist"), {"action": "back_up_now", "_selected_action": [target.pk]}
    )
    run = BackupRun.objects.get()
    assert LogEntry.objects.filter(user=people["DevOps"], change_message=f"Started backup run #{run.pk}").exists()


def test_assignrole_command(capsys):
    user = User.objects.create_user("alice")
    call_command("assignrole", "alice", "Incident Commander")
    user.refresh_from_db()
    assert user.is_staff and list(user.groups.values_list("name", flat=True)) == ["Incident Commander"]
    call_command("assignrole", "alice", "Incident Commander", "--remove")
    assert not user.groups.exists()


def test_location_delete_needs_its_permission(client, people):
    location = Location.objects.create(name="x", url="file:///tmp/x")
    url = reverse("admin:backups_location_delete", args=[location.pk])
    assert as_(client, people["Viewer"]).post(url, {"post": "yes"}).status_code == 403
    assert Location.objects.filter(pk=location.pk).exists()


@pytest.mark.django_db(transaction=True)  # flush cannot run inside the test's transaction
def test_a_flushed_database_gets_its_role_groups_back_at_migrate():
    """A database flushed and migrated again (a reset, a transactional test) must not be left without its roles:
    assigning one then failed with Group.DoesNotExist."""
    call_command("flush", interactive=False, verbosity=0)  # emits post_migrate, as after a migrate
    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ROLES)
    user = User.objects.create_user("after-flush", password="pw")
    roles.assign(user, roles.DEVOPS)
    assert user.has_perm("backups.add_target")
