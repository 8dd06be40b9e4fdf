"""Backups through a real Celery worker process over Redis."""

from __future__ import annotations

import os
import signal
import socket

import pytest
from django.urls import reverse

from backups.leases import Owner
from backups.models import BackupRun
from tests.conftest import manage_env, manage_py, start_worker, stop_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_back_up_now_in_the_admin_queues_a_job_that_a_worker_runs(
    celery_worker, admin_client, source_db, local_location, make_target
):
    target = make_target("botflow-db", source_db, [local_location])

    response = admin_client.post(
        reverse("admin:backups_target_changelist"),
        {"action": "back_up_now", "_selected_action": [target.pk]},
        follow=True,
    )

    assert response.status_code == 200
    run = BackupRun.objects.get(target=target)
    assert "queued as" in response.content.decode()
    assert run.trigger == "manual" and run.triggered_by.username == "admin"
    wait_for(lambda: BackupRun.objects.get(pk=run.pk).is_finished, message="the worker to finish the run")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.worker.startswith("celery@") or "test-" in run.worker
    assert run.artifacts.count() == 1
    # The worker then checks the copies on behalf of the same person.
    wait_for(lambda: run.verifications.filter(status="passed").exists(), message="the verification to pass")
    verification = run.verifications.get()
    assert (verification.trigger, verification.triggered_by.username) == ("manual", "admin")


def test_backup_command_with_queue_waits_for_the_worker(celery_worker, source_db, local_location, make_target):
    import json

    make_target("botflow-db", source_db, [local_location])

    env = manage_env(LOGNAME="alice", SUDO_USER=None)
    result = manage_py("backup", "botflow-db", "--queue", "--json", "--timeout", "60", env=env)

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "succeeded"
    assert data["target"] == "botflow-db"
    assert len(data["sha256"]) == 64
    assert data["artifacts"][0]["location"] == "local"
    run = BackupRun.objects.get(pk=data["id"])
    assert run.worker and str(os.getpid()) not in run.worker  # ran in the worker, not here
    # The verification the worker queues after it names alice too, not "schedule".
    wait_for(lambda: run.verifications.exists(), message="the worker to queue the verification")
    verification = run.verifications.get()
    assert (verification.trigger, verification.command_user) == ("command", f"alice@{socket.gethostname()}")


def test_a_killed_worker_leaves_a_run_that_says_so(
    settings,
    tmp_path,
    source_db,
    local_location,
    make_target,
    _flush_test_broker,
    age_key,
    s3_endpoint,
    no_other_workers,
):
    """SIGKILL the worker mid-backup: the run must end up failed with the reason, never 'running' forever.

    Alone with its victim worker: had the session's shared worker taken the job, killing the victim would
    leave the run alive, and the reaper rightly leaves a live run alone.
    """
    target = make_target("botflow-db", source_db, [local_location])
    # A source that never finishes: pg_dump waits on a table lock held by this test.
    import psycopg

    blocker = psycopg.connect(source_db)
    blocker.execute("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
    worker = start_worker(tmp_path / "victim.log", concurrency=1)
    try:
        run = BackupRun.enqueue(target, trigger="manual")
        from backups.tasks import run_backup

        run_backup.delay(run.pk)
        wait_for(lambda: BackupRun.objects.get(pk=run.pk).status == "running", message="the run to start")
        runner = Owner.parse(BackupRun.objects.get(pk=run.pk).lease_owner).pid
        assert os.getpgid(runner) == worker.proc.pid, "a worker other than the victim took the job"
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(10)
    finally:
        blocker.close()
        stop_worker(worker)

    run.refresh_from_db()
    assert run.status == "running"  # nobody has noticed yet
    from backups.services.backup import reap_stale_runs

    settings.BACKUP_STALE_SECONDS = 0
    assert reap_stale_runs() == 1
    run.refresh_from_db()
    assert run.status == "failed"
    assert "stopped reporting" in run.error and "presumed dead" in run.error
    assert not run.artifacts.exists()
    assert list(settings.BACKUP_SPOOL_DIR.glob(f"run{run.pk}-*")) == []
    assert [p for p in local_location.backend().list() if p.endswith(".age")] == []


def test_two_backups_of_one_target_never_interleave(celery_worker, source_db, local_location, make_target):
    """The second waits for the first (the worker retries it), then runs; they never overlap."""
    import psycopg

    from backups.tasks import run_backup

    target = make_target("botflow-db", source_db, [local_location])
    blocker = psycopg.connect(source_db)
    blocker.execute("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
    try:
        first = BackupRun.enqueue(target, trigger="manual")
        run_backup.delay(first.pk)
        wait_for(lambda: BackupRun.objects.get(pk=first.pk).status == "running", message="the first run to start")
        second = BackupRun.enqueue(target, trigger="manual")
        run_backup.delay(second.pk)
        # The worker has a free process, yet the second stays queued while the first holds the target.
        wait_for(lambda: "another backup of botflow-db is running" in celery_worker.log(), message="a retry")
        assert BackupRun.objects.get(pk=second.pk).status == "queued"
    finally:
        blocker.close()

    wait_for(lambda: BackupRun.objects.get(pk=second.pk).is_finished, message="the second run to finish")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == "succeeded", (first.error, second.error)
    assert second.started_at >= first.finished_at
