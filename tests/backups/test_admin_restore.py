"""Verify, restore test and "Restore…" through the admin, with a real worker and permissions."""

from __future__ import annotations

import psycopg
import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from backups.models import Restore, Verification
from backups.services import backup
from tests.conftest import table_rows, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(source_db, local_location, make_target):
    target = make_target("botflow-db", source_db, [local_location])
    finished = backup.execute(backup.start_backup(target, trigger="command"))
    assert finished.status == "succeeded", finished.error
    return finished


def staff_with(*codenames) -> User:
    user = User.objects.create_user(f"user-{'-'.join(codenames) or 'none'}", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def test_restore_confirmation_page_says_what_will_happen_then_restores(celery_worker, admin_client, run, source_db):
    before = table_rows(source_db)
    with psycopg.connect(source_db) as conn:
        conn.execute("DELETE FROM messages")
    url = reverse("admin:backups_backuprun_restore", args=[run.pk])
    dbname = source_db.rsplit("/", 1)[1]

    page = admin_client.get(url).content.decode()
    assert "botflow-db" in page
    assert f"replaces database {dbname}" in page
    assert f"{dbname}_pre_restore_" in page
    assert table_rows(source_db)["messages"] == []  # looking changes nothing

    response = admin_client.post(url, {"location": "local", "to": "", "confirm": "yes"})
    assert response.status_code == 302
    record = Restore.objects.get()
    assert record.triggered_by.username == "admin"
    wait_for(lambda: Restore.objects.get(pk=record.pk).is_finished, message="the restore to finish")
    record.refresh_from_db()
    assert record.status == "succeeded", record.error
    assert table_rows(source_db) == before
    detail = admin_client.get(reverse("admin:backups_restore_change", args=[record.pk])).content.decode()
    assert record.rollback_name in detail and "To roll back" in detail


def test_posting_without_confirm_only_reviews(admin_client, run, source_db):
    url = reverse("admin:backups_backuprun_restore", args=[run.pk])
    response = admin_client.post(url, {"location": "local", "to": "", "review": "Review again"})
    assert response.status_code == 200
    assert not Restore.objects.exists()


def test_verify_and_restore_test_buttons_queue_jobs_a_worker_runs(celery_worker, admin_client, run):
    verify_url = reverse("admin:backups_backuprun_verify", args=[run.pk])
    admin_client.post(verify_url, {"kind": "integrity"})
    admin_client.post(verify_url, {"kind": "restore_test"})

    wait_for(
        lambda: Verification.objects.filter(run=run, status__in=["passed", "failed"]).count() == 2,
        message="both verifications to finish",
    )
    results = {v.kind: v for v in Verification.objects.filter(run=run)}
    assert results["integrity"].ok, results["integrity"].checks
    assert results["restore_test"].ok, results["restore_test"].checks
    assert results["restore_test"].duration_seconds > 0
    page = admin_client.get(reverse("admin:backups_backuprun_change", args=[run.pk])).content.decode()
    assert "tables restored with matching row counts" in page


def test_without_the_restore_permission_restore_is_neither_shown_nor_reachable(client, run):
    user = staff_with("view_backuprun", "verify_backuprun")
    client.force_login(user)
    change = client.get(reverse("admin:backups_backuprun_change", args=[run.pk])).content.decode()
    listing = client.get(reverse("admin:backups_backuprun_changelist")).content.decode()

    assert "Restore…" not in change and "restore_run" not in listing
    assert "Verify" in change

    url = reverse("admin:backups_backuprun_restore", args=[run.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"location": "local", "to": "", "confirm": "yes"}).status_code == 403
    response = client.post(
        reverse("admin:backups_backuprun_changelist"), {"action": "restore_run", "_selected_action": [run.pk]}
    )
    assert response.status_code in (200, 302) and not Restore.objects.exists()


def test_viewer_cannot_verify(client, run):
    client.force_login(staff_with("view_backuprun"))
    response = client.post(reverse("admin:backups_backuprun_verify", args=[run.pk]), {"kind": "integrity"})
    assert response.status_code == 403
    assert not Verification.objects.exists()
