"""A target's restore tests (the monthly ones and an automated drill's) run on a worker of its queue.

Two real workers on two queues; one target's source is an ``env:`` name only the worker of its
queue has, so a restore test anywhere else could not restore it. The verification records the
worker that ran it.
"""

from __future__ import annotations

import secrets
import socket
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from backups.models import BackupRun, Verification
from drills.models import Drill, TestActivity
from drills.services import schedule
from tests.conftest import start_worker, stop_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def backed_up(client, target) -> BackupRun:
    client.post(
        reverse("admin:backups_target_changelist"),
        {"action": "back_up_now", "_selected_action": [target.pk]},
        follow=True,
    )
    run = BackupRun.objects.filter(target=target).latest("queued_at")
    wait_for(lambda: BackupRun.objects.get(pk=run.pk).is_finished, message=f"backup of {target.name}")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return run


def finished(verification_ids) -> bool:
    return all(v.is_finished for v in Verification.objects.filter(pk__in=verification_ids))


def test_monthly_and_drill_restore_tests_run_on_the_worker_of_the_targets_queue(
    admin_client, admin_user, tmp_path, source_db, local_location, make_target, _flush_test_broker, age_key
):
    from backups.tasks import monthly_restore_tests
    from drills.tasks import enqueue_drill

    tag = secrets.token_hex(3)
    near, far = f"near-{tag}", f"far-{tag}"
    variable = f"DRILL_SOURCE_{tag.upper()}"
    a = make_target("db-near", f"env:{variable}", [local_location], queue=near)
    b = make_target("db-far", source_db, [local_location], queue=far)
    host = socket.gethostname()
    # The shared queue (where the drill itself waits and records) is served by the far worker only.
    worker_a = start_worker(tmp_path / "a.log", {variable: source_db}, queues=[near], name=f"near-{tag}")
    worker_b = start_worker(tmp_path / "b.log", queues=["celery", far], name=f"far-{tag}")
    try:
        run_a, run_b = backed_up(admin_client, a), backed_up(admin_client, b)

        # The backups app's monthly restore tests: each on its target's queue.
        monthly = monthly_restore_tests()
        assert len(monthly) == 2
        wait_for(lambda: finished(monthly), timeout=120, message="the monthly restore tests")
        tests = {v.target_id: v for v in Verification.objects.filter(pk__in=monthly)}
        for target, run, worker in ((a, run_a, f"near-{tag}@{host}"), (b, run_b, f"far-{tag}@{host}")):
            check = tests[target.pk]
            assert (check.kind, check.run_id, check.status) == ("restore_test", run.pk, "passed"), check.error
            assert check.worker == worker
            assert {t["name"]: t["restored"] for t in check.tables}["public.messages"] == 508

        # A person performs the drill over every database target: fresh restore tests, each sent to
        # its target's queue; the drill (on the shared queue) waits for them and records them.
        activity = TestActivity.objects.create(
            key=f"verify-{tag}",
            name="Backup Verification",
            cadence="monthly",
            starts_at=datetime(2026, 1, 1, 4, tzinfo=UTC),
            automation="restore_test",
        )
        drill, _ = schedule.create_occurrence(activity, datetime(2026, 1, 1, 4, tzinfo=UTC))
        enqueue_drill(drill, admin_user.pk)
        wait_for(
            lambda: Drill.objects.get(pk=drill.pk).status == "done", timeout=180, message="the drill to be performed"
        )
        drill.refresh_from_db()
        assert drill.result == "pass", (drill.went_badly, drill.error)
        assert drill.performed_by == admin_user
        fresh = Verification.objects.filter(kind="restore_test").exclude(pk__in=monthly)
        assert {(v.target_id, v.worker, v.trigger, v.status) for v in fresh} == {
            (a.pk, f"near-{tag}@{host}", "manual", "passed"),
            (b.pk, f"far-{tag}@{host}", "manual", "passed"),
        }
        assert drill.verification_id in {v.pk for v in fresh}
        assert "db-near" in drill.went_well and "db-far" in drill.went_well
        # The far worker never restored the near target: it cannot even read its source's name.
        assert variable not in worker_b.log()
    finally:
        stop_worker(worker_a)
        stop_worker(worker_b)


def test_a_restore_test_the_broker_cannot_take_is_removed_and_the_drill_says_why(
    admin_user, local_location, make_target, source_db, monkeypatch, django_capture_on_commit_callbacks
):
    """With the broker down nothing is left looking queued: the drill stays scheduled with the reason."""
    from backups.services import backup
    from drills.tasks import enqueue_drill
    from drportal.celery import app
    from tests.conftest import free_port

    target = make_target("db-x", source_db, [local_location], queue="elsewhere")
    assert backup.execute(backup.start_backup(target, trigger="command")).status == "succeeded"
    activity = TestActivity.objects.create(
        key="verify-x",
        name="Backup Verification",
        cadence="monthly",
        starts_at=datetime(2026, 1, 1, 4, tzinfo=UTC),
        automation="restore_test",
        target=target,
    )
    drill, _ = schedule.create_occurrence(activity, datetime(2026, 1, 1, 4, tzinfo=UTC))
    monkeypatch.setitem(app.conf, "broker_write_url", f"redis://127.0.0.1:{free_port()}/0")
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_drill(drill, admin_user.pk)
    drill.refresh_from_db()
    assert drill.status == "scheduled" and drill.error.startswith("queue unreachable: ")
    assert not Verification.objects.filter(kind="restore_test").exists()


def test_a_drill_whose_restore_tests_went_to_the_queues_never_restores_in_its_own_process(
    admin_user, local_location, make_target, source_db
):
    """A backup that lands after the drill began has no restore test on its queue: the drill says so
    and fails that target, rather than restoring it on the shared queue's worker."""
    from django.utils import timezone

    from backups.services import backup
    from drills.services import automated

    target = make_target("db-late", source_db, [local_location], queue="far-away")
    activity = TestActivity.objects.create(
        key="verify-late",
        name="Backup Verification",
        cadence="monthly",
        starts_at=datetime(2026, 1, 1, 4, tzinfo=UTC),
        automation="restore_test",
        target=target,
    )
    drill, _ = schedule.create_occurrence(activity, datetime(2026, 1, 1, 4, tzinfo=UTC))
    since = timezone.now()
    assert automated.start_restore_tests(drill, user=admin_user, now=since) == []  # nothing to restore yet
    late = backup.execute(backup.start_backup(target, trigger="command"))
    assert late.status == "succeeded", late.error

    drill = automated.perform(drill, user=admin_user, since=since)

    assert (drill.status, drill.result) == ("done", "fail")
    assert f"no restore test was started for this drill (its backup #{late.pk} landed after" in drill.went_badly
    assert not Verification.objects.filter(kind="restore_test").exists()
