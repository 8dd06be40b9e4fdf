"""DevOps' journey in the admin, as the DevOps role user (not a superuser): buttons on targets and runs,
the last result and next scheduled time in the targets list, schedules edited on the target only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from backups.models import BackupRun, Target, Verification
from tests.conftest import role_client, target_form

pytestmark = pytest.mark.django_db

PASSWORD = "Journ3y-pw-51ab"


@pytest.fixture
def devops(db):
    return role_client("DevOps")


@pytest.fixture
def target(local_location):
    target = Target.objects.create(
        name="db", engine="postgresql", source=f"postgresql://u:{PASSWORD}@db.internal:5432/botflow"
    )
    target.locations.set([local_location])
    return target


def stored_run(target) -> BackupRun:
    return BackupRun.objects.create(target=target, status="succeeded", sha256="a" * 64, bytes_out=10)


@pytest.mark.parametrize(
    "model", ["periodictask", "intervalschedule", "crontabschedule", "clockedschedule", "solarschedule"]
)
def test_raw_beat_screens_are_hidden_from_devops(devops, admin_client, model):
    index = devops.get(reverse("admin:index")).content.decode()
    assert "Periodic tasks" not in index and "Crontabs" not in index
    assert devops.get(reverse(f"admin:django_celery_beat_{model}_changelist")).status_code == 403
    assert admin_client.get(reverse(f"admin:django_celery_beat_{model}_changelist")).status_code == 200


def test_back_up_now_button_on_target_row_and_page(devops, target):
    url = reverse("admin:backups_target_backup", args=[target.pk])
    for page in (reverse("admin:backups_target_changelist"), reverse("admin:backups_target_change", args=[target.pk])):
        assert url in devops.get(page).content.decode()
    assert devops.get(url).status_code in (403, 405)  # a GET never starts a backup
    assert not BackupRun.objects.exists()
    response = devops.post(url, {"csrfmiddlewaretoken": devops.token})
    run = BackupRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:backups_backuprun_change", args=[run.pk]
    )
    assert run.target == target and run.trigger == "manual" and run.triggered_by.username == "devops"


def test_back_up_now_needs_csrf_and_permission(target):
    devops = role_client("DevOps")
    assert devops.post(reverse("admin:backups_target_backup", args=[target.pk])).status_code == 403  # no token
    viewer = role_client("Viewer")
    page = viewer.get(reverse("admin:backups_target_changelist")).content.decode()
    assert reverse("admin:backups_target_backup", args=[target.pk]) not in page
    response = viewer.post(
        reverse("admin:backups_target_backup", args=[target.pk]), {"csrfmiddlewaretoken": viewer.token}
    )
    assert response.status_code == 403
    assert not BackupRun.objects.exists()


def test_verify_and_restore_buttons_on_target_row_and_page_use_the_newest_stored_run(devops, target):
    older = stored_run(target)
    newest = stored_run(target)
    BackupRun.objects.create(target=target, status="failed", error="x")  # newer, but nothing to verify
    verify_url = reverse("admin:backups_backuprun_verify", args=[newest.pk])
    restore_url = reverse("admin:backups_backuprun_restore", args=[newest.pk])
    for page in (reverse("admin:backups_target_changelist"), reverse("admin:backups_target_change", args=[target.pk])):
        html = devops.get(page).content.decode()
        assert verify_url in html and restore_url in html
        assert reverse("admin:backups_backuprun_verify", args=[older.pk]) not in html
    devops.post(verify_url, {"csrfmiddlewaretoken": devops.token, "kind": "integrity"})
    assert Verification.objects.get().run == newest


def test_buttons_on_run_rows_and_run_page(devops, target):
    run = stored_run(target)
    backup_url = reverse("admin:backups_target_backup", args=[target.pk])
    for page in (
        reverse("admin:backups_backuprun_changelist"),
        reverse("admin:backups_backuprun_change", args=[run.pk]),
    ):
        html = devops.get(page).content.decode()
        assert backup_url in html
        assert reverse("admin:backups_backuprun_verify", args=[run.pk]) in html
        assert reverse("admin:backups_backuprun_restore", args=[run.pk]) in html
    devops.post(backup_url, {"csrfmiddlewaretoken": devops.token})
    assert BackupRun.objects.filter(status="queued", target=target).count() == 1


def test_targets_list_shows_last_result_and_next_scheduled_time_in_the_targets_zone(devops, target, monkeypatch):
    from datetime import UTC, datetime

    from django.utils import timezone

    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 12:00 in Johannesburg
    monkeypatch.setattr(timezone, "now", lambda: now)  # the module the targets admin reads the time from
    target.schedule, target.timezone = "30 14 * * *", "Africa/Johannesburg"
    target.save()
    Target.objects.create(name="never", engine="postgresql", source="env:NEVER_DB")
    BackupRun.objects.create(
        target=target,
        status="failed",
        error="x",
        queued_at=now - timezone.timedelta(hours=3),
        finished_at=now - timezone.timedelta(minutes=45),
    )
    html = devops.get(reverse("admin:backups_target_changelist")).content.decode()
    assert 'run-status-failed">Failed</span></a> 45 min ago' in html
    # 14:30 in Johannesburg (UTC+2) is 12:30 UTC: two and a half hours away, shown in the target's zone.
    assert "in 2 h 30 min" in html and "2026-03-02 14:30 SAST" in html
    assert "never run" in html and "not scheduled" in html


def test_targets_list_query_count_does_not_grow_with_targets(devops, local_location):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert devops.get(reverse("admin:backups_target_changelist")).status_code == 200
        return len(queries)

    def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            t = Target.objects.create(name=f"t{i}", engine="postgresql", source="env:DB", schedule="0 * * * *")
            t.locations.set([local_location])
            stored_run(t)
            BackupRun.objects.create(target=t, status="failed", error="x")

    add(2, 0)
    few = count()
    add(20, 2)
    assert count() == few


NEW_PASSWORD = "Typed-0nce-pw-7d3e"


def db2_form(local_location, **fields) -> dict:
    source = f"postgresql://u:{NEW_PASSWORD}@db.internal:5432/botflow"
    return target_form(local_location, **{"name": "db2", "source": source, "schedule": "0 * * * *", **fields})


def test_source_secret_is_kept_across_a_form_error_without_being_rendered(devops, local_location):
    import html as htmllib
    import re

    add = reverse("admin:backups_target_add")
    # A form error elsewhere (a bad schedule): the typed source is not lost, and not in the page either.
    response = devops.post(add, {**db2_form(local_location, schedule="every day"), "csrfmiddlewaretoken": devops.token})
    assert response.status_code == 200
    page = htmllib.unescape(response.content.decode())
    assert "not a cron expression" in page
    assert NEW_PASSWORD not in page, page[page.index(NEW_PASSWORD) - 300 : page.index(NEW_PASSWORD) + 50]
    assert "u:***@db.internal" in page  # the redacted form, as on the saved target's page
    token = re.search(r'name="source__kept" value="([^"]+)"', response.content.decode())
    assert token, "the typed source is kept (sealed) for the next post"
    # The operator fixes the schedule and posts again, leaving the (blanked) source empty.
    response = devops.post(
        add,
        {**db2_form(local_location, source=""), "source__kept": token.group(1), "csrfmiddlewaretoken": devops.token},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Target.objects.get(name="db2").source == f"postgresql://u:{NEW_PASSWORD}@db.internal:5432/botflow"


def test_a_forged_or_foreign_kept_token_is_not_accepted(devops, local_location, target):
    from django.db import connection

    with connection.cursor() as cursor:  # another target's encrypted source, as stored in the database
        cursor.execute("SELECT source FROM backups_target WHERE id = %s", [target.pk])
        stored = cursor.fetchone()[0]
    for forged in (stored, "nonsense"):
        response = devops.post(
            reverse("admin:backups_target_add"),
            {**db2_form(local_location, source=""), "source__kept": forged, "csrfmiddlewaretoken": devops.token},
        )
        assert response.status_code == 200 and "This engine needs a source" in response.content.decode()
    assert not Target.objects.filter(name="db2").exists()


@pytest.mark.parametrize(
    "source, words",
    [
        ("postgresql://", "names no database"),
        ("postgres:/x", "postgresql://"),
        ("http://db.internal/botflow", "postgresql://"),
        ("postgresql://u@db/x?target_session_attrs=any", "Unsupported PostgreSQL connection parameter"),
        ("postgresql://u@db/x?bogus=1", "not a valid postgresql:// URL"),
        ("env:", "env:NAME"),
        ("env:not a name", "env:NAME"),
    ],
)
def test_nonsense_postgresql_source_is_a_form_error_in_words(devops, local_location, source, words):
    response = devops.post(
        reverse("admin:backups_target_add"),
        {**db2_form(local_location, source=source), "csrfmiddlewaretoken": devops.token},
    )
    assert response.status_code == 200
    assert words in response.content.decode()
    assert not Target.objects.filter(name="db2").exists()


@pytest.mark.parametrize("source", ["env:BOTFLOW_DATABASE_URL", "postgres://u:p@db:5432/x", "postgresql:///local"])
def test_env_and_real_postgresql_sources_are_accepted(devops, local_location, source):
    response = devops.post(
        reverse("admin:backups_target_add"),
        {**db2_form(local_location, source=source), "csrfmiddlewaretoken": devops.token},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Target.objects.get(name="db2").source == source


def test_next_cron_reads_the_schedule_in_the_targets_time_zone_across_a_dst_change():
    from datetime import UTC, datetime

    from drportal.cron import next_cron

    # New York moves to daylight time on Sunday 2026-03-08: 09:00 is 14:00 UTC before, 13:00 UTC after.
    assert next_cron("0 9 * * *", datetime(2026, 3, 7, 12, 0, tzinfo=UTC), "America/New_York") == datetime(
        2026, 3, 7, 14, 0, tzinfo=UTC
    )
    assert next_cron("0 9 * * *", datetime(2026, 3, 7, 15, 0, tzinfo=UTC), "America/New_York") == datetime(
        2026, 3, 8, 13, 0, tzinfo=UTC
    )
    assert next_cron("0 9 * * *", datetime(2026, 3, 7, 15, 0, tzinfo=UTC)) == datetime(2026, 3, 8, 9, 0, tzinfo=UTC)
