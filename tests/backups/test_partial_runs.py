"""A run with one failed location is "partial": its landed copies are verified, restorable, count for RPO,
and survive prune; the run's error still names the location that failed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from backups.models import Artifact, BackupRun, Location, Objective
from backups.services import backup, rpo, verify
from drportal import roles
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead_s3(db):
    return Location.objects.create(
        name="s3-down", url="s3://nowhere/daily", endpoint_url=f"http://127.0.0.1:{free_port()}"
    )


@pytest.fixture
def partial_run(source_db, local_location, dead_s3, make_target):
    target = make_target("db", source_db, [local_location, dead_s3])
    return backup.execute(backup.start_backup(target, trigger="command"))


def test_a_run_whose_copy_landed_in_one_location_only_is_partial(partial_run, local_location):
    run = partial_run
    assert run.status == "partial"
    assert run.is_finished
    assert "location s3-down: cannot upload" in run.error
    assert list(run.artifacts.values_list("location__name", "status")) == [("local", "stored")]


def test_a_run_with_no_copy_anywhere_is_still_failed(source_db, dead_s3, make_target):
    run = backup.execute(backup.start_backup(make_target("db", source_db, [dead_s3]), trigger="command"))
    assert run.status == "failed"
    assert not run.artifacts.exists()


def test_the_partial_runs_copy_is_verified_and_counts_for_rpo(partial_run):
    objective = Objective.objects.create(name="database", rpo=timedelta(hours=1))
    objective.targets.set([partial_run.target])

    verification = verify.verify(verify.start_verification(partial_run, kind="integrity", trigger="command"))

    assert verification.ok, verification.checks
    result = rpo.evaluate_one(objective, partial_run.started_at + timedelta(minutes=5))
    assert result.state == "ok" and result.last_good_at == partial_run.started_at


def test_the_partial_run_offers_a_restore_to_devops(client, partial_run):
    user = User.objects.create_user("dev-ops", password="pw")
    roles.assign(user, roles.DEVOPS)
    client.force_login(user)
    page = client.get(reverse("admin:backups_backuprun_change", args=[partial_run.pk])).content.decode()
    assert reverse("admin:backups_backuprun_restore", args=[partial_run.pk]) in page
    assert "partial" in page
    changelist = client.get(reverse("admin:backups_backuprun_changelist") + "?status__exact=partial")
    assert changelist.status_code == 200 and f">{partial_run.pk}<" in changelist.content.decode()


def test_backup_command_says_partial_and_exits_non_zero(source_db, local_location, dead_s3, make_target, capsys):
    make_target("db", source_db, [local_location, dead_s3])
    with pytest.raises(SystemExit) as exit_:
        call_command("backup", "db", "--verify", "now")
    assert exit_.value.code == 1  # a location failed: scripts and cron must notice
    err = capsys.readouterr().err
    assert "partial" in err and "s3-down" in err and "stored in local" in err
    assert "verification #" in err and ": passed" in err  # the copy that landed is checked at once


def test_prune_keeps_the_only_copy_of_a_partly_failed_run(partial_run, local_location, capsys):
    """The issue's case: the local copy of a partly failed run, aged past retention_days, was pruned."""
    Location.objects.filter(pk=local_location.pk).update(retention_days=1)
    old = timezone.now() - timedelta(days=5)
    BackupRun.objects.filter(pk=partial_run.pk).update(queued_at=old, started_at=old, finished_at=old)
    Artifact.objects.filter(run=partial_run).update(created_at=old)

    call_command("prune", "--json")

    copies = json.loads(capsys.readouterr().out)["copies"]
    assert [(c["run"], c["action"]) for c in copies] == [(partial_run.pk, "keep")]
    assert Artifact.objects.get(run=partial_run).status == "stored"
    assert local_location.backend().size(Artifact.objects.get(run=partial_run).key) > 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_worker_verifies_a_partial_run(
    celery_worker, admin_client, source_db, local_location, dead_s3, make_target
):
    target = make_target("db", source_db, [local_location, dead_s3])
    admin_client.post(
        reverse("admin:backups_target_changelist"), {"action": "back_up_now", "_selected_action": [target.pk]}
    )
    run = BackupRun.objects.get(target=target)
    wait_for(lambda: BackupRun.objects.get(pk=run.pk).is_finished, message="the worker to finish the run")
    run.refresh_from_db()
    assert run.status == "partial", run.error
    wait_for(lambda: run.verifications.filter(status="passed").exists(), message="the verification to pass")


def test_partial_counts_wherever_a_good_backup_is_looked_for(partial_run, local_location):
    """Each place that looked for "succeeded" decided: a partial run's landed copy is a good backup."""
    from drills.services import export
    from incidents.services.security import newest_good_run_before
    from portal import dashboard

    verify.verify(verify.start_verification(partial_run, kind="integrity", trigger="command"))
    target = partial_run.target
    later = partial_run.started_at + timedelta(minutes=1)

    row = next(r for r in dashboard.targets(later) if r["target"] == target)
    assert row["target"].last_ok_at == partial_run.started_at and row["target"].last_status == "partial"
    assert f"run #{partial_run.pk}" in export._newest_good_backup([target])
    assert newest_good_run_before(target, later) == partial_run


def test_runs_recorded_as_failed_with_a_stored_copy_become_partial_on_migrate(local_location, make_target):
    """Catalogues from before "partial" existed: a failed run that kept a complete copy is partial."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("backups.migrations.0014_partial_runs")
    target = make_target("db", "postgresql://x/y", [local_location])
    kept = BackupRun.objects.create(target=target, status="failed", sha256="a" * 64, error="location s3: down")
    Artifact.objects.create(run=kept, location=local_location, key="k", url="file:///k", size=1, sha256="a" * 64)
    pruned = BackupRun.objects.create(target=target, status="failed", sha256="b" * 64)
    Artifact.objects.create(
        run=pruned, location=local_location, key="p", url="file:///p", size=1, sha256="b" * 64, status="deleted"
    )
    nothing = BackupRun.objects.create(target=target, status="failed", error="pg_dump failed")

    migration.failed_runs_with_copies_are_partial(apps, None)

    statuses = dict(BackupRun.objects.values_list("pk", "status"))
    assert statuses == {kept.pk: "partial", pruned.pk: "failed", nothing.pk: "failed"}
    assert BackupRun.objects.get(pk=kept.pk).error == "location s3: down"  # still names the failed location


def test_rebuildcatalog_keeps_a_partial_run_partial(partial_run, capsys):
    """The index rewritten when the run ended says "partial": a rebuilt catalogue must not call it unfinished."""
    Artifact.objects.all().delete()
    BackupRun.objects.all().delete()

    call_command("rebuildcatalog", "local")

    rebuilt = BackupRun.objects.get()
    assert rebuilt.status == "partial"
    assert "location s3-down: cannot upload" in rebuilt.error
