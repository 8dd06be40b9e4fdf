"""One enqueue policy (drportal/enqueue.py): on commit, one quick try, and the row says so when the broker is down."""

from __future__ import annotations

import time

import pytest

from backups.models import BackupRun, Restore, Verification
from backups.tasks import enqueue_backup, enqueue_restore, enqueue_verification, queue_verification_after_backup
from tests.conftest import free_port


@pytest.fixture
def broker_down(monkeypatch):
    """The Celery app publishes to a port where nothing listens."""
    from drportal.celery import app

    monkeypatch.setitem(app.conf, "broker_write_url", f"redis://127.0.0.1:{free_port()}/0")


@pytest.fixture
def run(make_target, local_location):
    target = make_target("db", "env:NOWHERE_DATABASE_URL", [local_location])
    return BackupRun.enqueue(target, trigger=BackupRun.Trigger.MANUAL)


def test_nothing_is_sent_before_the_transaction_commits(run, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr("backups.tasks.run_backup.apply_async", lambda args, **options: sent.append((args, options)))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue_backup(run)
    assert sent == [] and len(callbacks) == 1
    callbacks[0]()
    assert sent == [((run.pk,), {"queue": run.target.queue, "retry": False, "connection": sent[0][1]["connection"]})]


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_each_job_fails_at_once_and_says_why(run, broker_down):
    verification = Verification.objects.create(run=run, kind=Verification.Kind.INTEGRITY, trigger="manual")
    restore = Restore.objects.create(run=run, source=str(run.pk), destination="file:///tmp/x", trigger="manual")

    started = time.monotonic()
    enqueue_backup(run)  # no transaction: sent (or refused) at once
    enqueue_verification(verification)
    enqueue_restore(restore)
    assert time.monotonic() - started < 10  # no retry loop

    for job in (run, verification, restore):
        job.refresh_from_db()
        assert job.status == "failed", job
        assert job.error.startswith("queue unreachable: "), job.error
        assert job.finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_the_check_after_a_backup_is_not_left_queued(run, broker_down):
    assert queue_verification_after_backup(run, trigger="manual") is None
    assert not Verification.objects.exists()
