"""Beat entries follow the plan: created by applyplan, changed when the plan changes."""

from __future__ import annotations

import json
import textwrap

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from backups.models import Target

pytestmark = pytest.mark.django_db


def write(tmp_path, schedule: str, tz: str = "UTC"):
    path = tmp_path / "plan.toml"
    path.write_text(
        textwrap.dedent(f"""
        [locations.disk]
        url = "file://{tmp_path}/b"

        [targets.db]
        engine = "postgresql"
        source = "env:DB_URL"
        locations = ["disk"]
        schedule = "{schedule}"
        timezone = "{tz}"
    """)
    )
    return path


def entry(name="db") -> PeriodicTask:
    return PeriodicTask.objects.select_related("crontab").get(name=f"backup {name}")


def cron(task: PeriodicTask) -> str:
    c = task.crontab
    return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"


def test_applyplan_creates_a_beat_entry_per_scheduled_target(tmp_path):
    call_command("applyplan", str(write(tmp_path, "0 * * * *")))
    task = entry()
    assert task.task == "backups.tasks.backup_target"
    assert json.loads(task.args) == ["db"]
    assert cron(task) == "0 * * * *" and str(task.crontab.timezone) == "UTC"
    assert task.enabled


def test_changing_the_plan_changes_the_entry(tmp_path):
    call_command("applyplan", str(write(tmp_path, "0 * * * *")))
    call_command("applyplan", str(write(tmp_path, "0 2 * * *", tz="Africa/Johannesburg")))
    task = entry()
    assert cron(task) == "0 2 * * *"
    assert str(task.crontab.timezone) == "Africa/Johannesburg"
    assert PeriodicTask.objects.filter(name__startswith="backup ").count() == 1


def test_removing_the_schedule_removes_the_entry(tmp_path):
    call_command("applyplan", str(write(tmp_path, "0 * * * *")))
    call_command("applyplan", str(write(tmp_path, "")))
    assert not PeriodicTask.objects.filter(name="backup db").exists()


def test_disabling_a_target_disables_its_entry(tmp_path):
    # A plan-managed target is disabled in its plan file (an edit elsewhere is refused: tests/test_plan_managed.py).
    path = write(tmp_path, "0 * * * *")
    call_command("applyplan", str(path))
    assert entry().enabled is True
    path.write_text(path.read_text().replace('timezone = "UTC"', 'timezone = "UTC"\nenabled = false'))
    call_command("applyplan", str(path))
    assert Target.objects.get(name="db").enabled is False
    assert entry().enabled is False


def test_disabling_a_target_made_in_the_admin_disables_its_entry(local_location):
    target = Target.objects.create(name="adhoc", engine="postgresql", source="env:X", schedule="0 * * * *")
    assert entry("adhoc").enabled is True
    target.enabled = False
    target.save()
    assert entry("adhoc").enabled is False


@pytest.mark.parametrize(
    ("schedule", "tz", "message"),
    [
        ("every hour", "UTC", "key 'schedule': 'every hour' is not a cron expression"),
        ("61 * * * *", "UTC", "key 'schedule': '61 * * * *' is not a valid cron expression"),
        ("0 * * * *", "Mars/Olympus", "key 'timezone': 'Mars/Olympus' is not a time zone name"),
    ],
)
def test_bad_schedules_are_refused_naming_the_key(tmp_path, schedule, tz, message):
    with pytest.raises(CommandError, match=message.replace("*", r"\*").replace("(", r"\(")):
        call_command("applyplan", str(write(tmp_path, schedule, tz)))
    assert not PeriodicTask.objects.filter(name="backup db").exists()


def test_shipped_plan_schedules_the_database_hourly_and_the_rest_nightly(plan_applied):
    assert cron(entry("database")) == "0 * * * *"
    for name in ("knowledge-base", "configuration", "environment"):
        assert cron(entry(name)) == "0 2 * * *", name
    housekeeping = set(PeriodicTask.objects.exclude(name__startswith="backup ").values_list("task", flat=True))
    assert {
        "backups.tasks.evaluate_objectives",
        "backups.tasks.prune_expired",
        "backups.tasks.monthly_restore_tests",
        "backups.tasks.reap_stale_jobs",
    } <= housekeeping
