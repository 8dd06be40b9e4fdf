"""Each app registers its own housekeeping beat entries; the core creates them after migrate."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from drportal.schedules import SYSTEM_SCHEDULES, ensure_system_schedules, register_system_schedule

pytestmark = pytest.mark.django_db

EXPECTED_TASKS = {
    "backups.tasks.evaluate_objectives",
    "backups.tasks.reap_stale_jobs",
    "backups.tasks.watch_queues",
    "backups.tasks.prune_expired",
    "backups.tasks.monthly_restore_tests",
    "drills.tasks.housekeeping",
    "drills.tasks.run_due_automated_drills",
    "incidents.tasks.remind_overdue_reports",
    "portal.tasks.run_probes",
    "alerts.tasks.sweep",
}


def test_every_apps_entries_are_registered_and_created_at_migrate():
    assert {entry.task for entry in SYSTEM_SCHEDULES.values()} == EXPECTED_TASKS
    rows = PeriodicTask.objects.filter(name__in=SYSTEM_SCHEDULES).select_related("crontab")
    assert {row.task for row in rows} == EXPECTED_TASKS


def test_an_edited_time_is_kept_and_a_new_entry_is_added(monkeypatch):
    monkeypatch.setattr("drportal.schedules.SYSTEM_SCHEDULES", dict(SYSTEM_SCHEDULES))
    row = PeriodicTask.objects.get(name="retention: prune expired copies")
    row.description = "edited in the admin"
    row.save()
    register_system_schedule("test: extra", "tests.extra", "0 1 * * *", "An entry registered by a test.")
    ensure_system_schedules()
    assert PeriodicTask.objects.get(name="retention: prune expired copies").description == "edited in the admin"
    extra = PeriodicTask.objects.select_related("crontab").get(name="test: extra")
    assert extra.task == "tests.extra" and extra.crontab.minute == "0" and extra.crontab.hour == "1"
