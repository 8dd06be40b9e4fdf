"""prune: keep_last, retention_days, --as-of, --dry-run, and the last verified copy always survives."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from backups.models import Artifact, BackupRun, Location, Verification
from backups.services import backup

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(source_db, tmp_path, make_target):
    """Five real backups of one target, made to look a day apart (oldest first)."""
    location = Location.objects.create(name="disk", url=f"file://{tmp_path / 'b'}", keep_last=2, retention_days=3)
    target = make_target("db", source_db, [location])
    runs = []
    now = timezone.now()
    for age_days in (4, 3.5, 2, 1, 0):
        run = backup.execute(backup.start_backup(target, trigger="command"))
        assert run.status == "succeeded", run.error
        when = now - timedelta(days=age_days)
        BackupRun.objects.filter(pk=run.pk).update(queued_at=when, started_at=when, finished_at=when)
        Artifact.objects.filter(run=run).update(created_at=when)
        runs.append(run)
    return location, runs


def prune(capsys, *args) -> dict:
    call_command("prune", "--json", *args)
    return json.loads(capsys.readouterr().out)


def stored_runs() -> list[int]:
    return sorted(Artifact.objects.filter(status="stored").values_list("run_id", flat=True))


def test_dry_run_reports_and_deletes_nothing(history, capsys):
    location, runs = history
    result = prune(capsys, "--dry-run")
    assert result["dry_run"] is True
    deletions = {c["run"] for c in result["copies"] if c["action"] == "delete"}
    assert deletions == {runs[0].pk, runs[1].pk}  # older than 3 days, not among the newest 2
    assert stored_runs() == sorted(r.pk for r in runs)
    assert all(location.backend().size(a.key) > 0 for a in Artifact.objects.all())


def test_prune_deletes_expired_copies_and_keeps_them_as_history(history, capsys):
    location, runs = history
    prune(capsys)
    assert stored_runs() == sorted(r.pk for r in runs[2:])
    gone = Artifact.objects.get(run=runs[0])
    assert gone.status == "deleted" and gone.deleted_at is not None
    keys = set(location.backend().list())
    assert gone.key not in keys and gone.key + ".json" not in keys
    index = json.loads(location.backend().read_bytes("db/manifest.json"))
    assert {entry["run_id"] for entry in index["runs"]} == {r.pk for r in runs[2:]}


def test_as_of_in_the_future_expires_more_but_keep_last_holds(history, capsys):
    _location, runs = history
    prune(capsys, "--as-of", (timezone.now() + timedelta(days=30)).isoformat())
    assert stored_runs() == sorted(r.pk for r in runs[-2:])


def test_the_last_verified_copy_survives_any_retention(history, capsys):
    location, runs = history
    Location.objects.filter(pk=location.pk).update(keep_last=None, retention_days=1)
    oldest = runs[0]
    Verification.objects.create(run=oldest, kind="integrity", status="passed")

    result = prune(capsys, "--as-of", (timezone.now() + timedelta(days=365)).isoformat())

    assert stored_runs() == [oldest.pk]
    kept = next(c for c in result["copies"] if c["run"] == oldest.pk)
    assert kept["action"] == "keep" and kept["reason"] == "the target's last verified copy"


def test_with_nothing_verified_the_newest_copy_survives(history, capsys):
    location, runs = history
    Location.objects.filter(pk=location.pk).update(keep_last=None, retention_days=1)
    prune(capsys, "--as-of", (timezone.now() + timedelta(days=365)).isoformat())
    assert stored_runs() == [runs[-1].pk]


def test_keep_last_alone(history, capsys):
    location, runs = history
    Location.objects.filter(pk=location.pk).update(keep_last=3, retention_days=None)
    prune(capsys)
    assert stored_runs() == sorted(r.pk for r in runs[-3:])


def test_bad_as_of_is_refused(history):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="is not a date-time"):
        call_command("prune", "--as-of", "next tuesday")
