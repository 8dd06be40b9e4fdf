"""The backups admin: secrets stay write-only, actions are permission-gated, lists stay cheap."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from backups.models import Artifact, BackupRun, Location, Target
from tests.conftest import target_form

pytestmark = pytest.mark.django_db

PASSWORD = "Sup3r-S3cret-pw"
AWS_SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def secret_target(local_location):
    target = Target.objects.create(
        name="db", engine="postgresql", source=f"postgresql://botflow:{PASSWORD}@db.internal:5432/botflow"
    )
    target.locations.set([local_location])
    return target


def test_source_password_is_encrypted_at_rest_and_never_in_html(admin_client, secret_target):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT source FROM backups_target WHERE id = %s", [secret_target.pk])
        stored = cursor.fetchone()[0]
    assert PASSWORD not in stored and stored.startswith("gAAAA")  # a Fernet token

    for url in (
        reverse("admin:backups_target_changelist"),
        reverse("admin:backups_target_change", args=[secret_target.pk]),
    ):
        html = admin_client.get(url).content.decode()
        assert PASSWORD not in html
        assert "botflow:***@db.internal" in html


def test_blank_secret_on_save_keeps_the_stored_one(admin_client, secret_target, local_location):
    response = admin_client.post(
        reverse("admin:backups_target_change", args=[secret_target.pk]),
        target_form(local_location, source="", schedule="0 * * * *"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    secret_target.refresh_from_db()
    assert PASSWORD in secret_target.source
    assert secret_target.schedule == "0 * * * *"


def test_location_secret_key_is_never_shown(admin_client):
    location = Location.objects.create(
        name="s3", url="s3://bucket/prefix", access_key_id="AKIAEXAMPLE", secret_access_key=AWS_SECRET
    )
    html = admin_client.get(reverse("admin:backups_location_change", args=[location.pk])).content.decode()
    assert AWS_SECRET not in html and "AKIAEXAMPLE" not in html


def test_malformed_location_form_is_refused_with_a_message(admin_client):
    response = admin_client.post(
        reverse("admin:backups_location_add"), {"name": "Bad Name!", "url": "ftp://x", "enabled": "on"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Location URL must start with file:/// or s3://" in html
    assert "Use lowercase letters" in html
    assert not Location.objects.exists()


def test_back_up_now_needs_its_own_permission(client, secret_target):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_target", "change_target"]))
    client.force_login(viewer)

    page = client.get(reverse("admin:backups_target_changelist")).content.decode()
    assert "back_up_now" not in page

    client.post(
        reverse("admin:backups_target_changelist"), {"action": "back_up_now", "_selected_action": [secret_target.pk]}
    )
    assert not BackupRun.objects.exists()


def test_run_list_query_count_does_not_grow_with_rows(admin_client, django_assert_max_num_queries, secret_target):
    admin = User.objects.get(username="admin")
    runs = BackupRun.objects.bulk_create(
        BackupRun(target=secret_target, status="succeeded", sha256="a" * 64, bytes_out=10, triggered_by=admin)
        for _ in range(150)
    )
    Artifact.objects.bulk_create(
        Artifact(run=run, location=secret_target.locations.get(), key="k", url="u", size=1, sha256="a" * 64)
        for run in runs
    )
    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse("admin:backups_backuprun_changelist"))
    assert response.status_code == 200
    assert response.content.decode().count('class="run-status run-status-succeeded"') == 100


def test_run_detail_shows_artifacts_error_and_tables(admin_client, secret_target):
    run = BackupRun.objects.create(
        target=secret_target,
        status="failed",
        error="pg_dump failed: connection refused",
        tables={"public.messages": 42},
    )
    html = admin_client.get(reverse("admin:backups_backuprun_change", args=[run.pk])).content.decode()
    assert "pg_dump failed: connection refused" in html
    assert "public.messages" in html and "42" in html


def test_progress_endpoint_reports_bytes(admin_client, secret_target):
    run = BackupRun.objects.create(target=secret_target, status="running", bytes_in=5_000_000, bytes_out=100)
    data = admin_client.get(reverse("admin:backups_backuprun_progress", args=[run.pk])).json()
    assert data["status"] == "running" and data["bytes_in"] == 5_000_000
    assert "4.8\xa0MB read" in data["html"]
