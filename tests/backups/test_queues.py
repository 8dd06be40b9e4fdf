"""Workers near the data: each target's jobs go to its queue, served by the workers started with -Q."""

from __future__ import annotations

import secrets
import socket

import pytest
from django.core import mail
from django.urls import reverse

from backups.models import BackupRun, Verification, WatchedQueue
from drportal.models import Heartbeat
from tests.conftest import start_worker, stop_worker, target_form, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def back_up_now(client, *targets):
    response = client.post(
        reverse("admin:backups_target_changelist"),
        {"action": "back_up_now", "_selected_action": [t.pk for t in targets]},
        follow=True,
    )
    assert response.status_code == 200
    return [BackupRun.objects.filter(target=t).latest("queued_at") for t in targets]


def test_each_target_runs_only_on_the_worker_of_its_queue(
    admin_client, tmp_path, source_db, local_location, make_target, _flush_test_broker, age_key, s3_endpoint
):
    """Two workers on two queues; the source of one is an env: name only its own worker has."""
    tag = secrets.token_hex(3)
    near, far = f"near-{tag}", f"far-{tag}"
    variable = f"FLEET_SOURCE_{tag.upper()}"
    a = make_target("db-near", f"env:{variable}", [local_location], queue=near)
    b = make_target("db-far", source_db, [local_location], queue=far)
    worker_a = start_worker(tmp_path / "a.log", {variable: source_db}, queues=[near], name=f"near-{tag}")
    worker_b = start_worker(tmp_path / "b.log", queues=[far], name=f"far-{tag}")
    try:
        # Two backups of a at once: the second waits (Celery retries it) and must stay on a's queue,
        # since the other worker cannot read a's source.
        run_a, run_b = back_up_now(admin_client, a, b)
        second_a = back_up_now(admin_client, a)[0]
        for run in (run_a, run_b, second_a):
            wait_for(lambda run=run: BackupRun.objects.get(pk=run.pk).is_finished, message=f"run #{run.pk}")
            run.refresh_from_db()
            assert run.status == "succeeded", run.error
        host = socket.gethostname()
        assert (run_a.queue, run_a.worker) == (near, f"near-{tag}@{host}")
        assert (second_a.queue, second_a.worker) == (near, f"near-{tag}@{host}")
        assert (run_b.queue, run_b.worker) == (far, f"far-{tag}@{host}")
        # The verification each backup queues goes to the same queue: its worker can read the copy.
        wait_for(
            lambda: Verification.objects.filter(run__in=[run_a, run_b], status="passed").count() == 2,
            message="both verifications to pass",
        )
        # Heartbeats say where each worker runs, what it serves and which env: names it sees (not values).
        beats = {h.name: h for h in Heartbeat.objects.filter(kind="worker")}
        assert beats[f"near-{tag}@{host}"].queues == [near] and beats[f"near-{tag}@{host}"].host == host
        assert beats[f"near-{tag}@{host}"].env_names == [variable]
        assert beats[f"far-{tag}@{host}"].queues == [far] and beats[f"far-{tag}@{host}"].env_names == []
        assert "postgresql://" not in str(list(Heartbeat.objects.values()))
        # The dashboard's card shows each queue with its target and its worker.
        page = admin_client.get(reverse("admin:index")).content.decode()
        card = page[page.index('id="dash-fleet"') :]
        card = card[: card.index("</section>")]
        assert f"<strong>{near}</strong>" in card and "db-near" in card and f"near-{tag}@{host}" in card
        assert f"sees {variable}" in card
    finally:
        stop_worker(worker_a)
        stop_worker(worker_b)
    assert not Heartbeat.objects.filter(name__endswith=tag + "@" + socket.gethostname()).exists()


def test_a_queue_without_a_worker_says_so_then_fails_its_runs(
    admin_client, client, settings, tmp_path, source_db, local_location, make_target, _flush_test_broker, deliver_alerts
):
    tag = secrets.token_hex(3)
    nobody = f"nobody-{tag}"
    settings.ALERT_EMAIL_TO = ["oncall@example.com"]
    target = make_target("db-far", source_db, [local_location], queue=nobody)

    response = admin_client.post(
        reverse("admin:backups_target_changelist"),
        {"action": "back_up_now", "_selected_action": [target.pk]},
        follow=True,
    )
    run = BackupRun.objects.get(target=target)

    assert run.status == "queued" and run.queue == nobody
    assert f"is waiting for a worker on queue {nobody}" in response.content.decode()  # said when pressed
    page = admin_client.get(reverse("admin:backups_backuprun_change", args=[run.pk])).content.decode()
    assert f"waiting for a worker on queue {nobody}" in page
    health = client.get(reverse("health"))
    assert health.status_code == 503
    worker = health.json()["checks"]["worker"]
    assert worker["ok"] is False
    assert worker["queues"][nobody] == {"ok": False, "alive": 0, "targets": ["db-far"]}
    assert f"queue {nobody}: no live worker" in health.json()["failing"]
    dashboard = admin_client.get(reverse("admin:index")).content.decode()
    assert f"<strong>{nobody}</strong>" in dashboard and "no live worker" in dashboard
    assert f"#{run.pk}</a> of db-far" in dashboard and f"waiting for a worker on queue {nobody}</span>" in dashboard

    # The minute's watch alerts once; the run is not failed before BACKUP_QUEUE_WAIT_SECONDS.
    from backups.tasks import watch_queues

    settings.BACKUP_QUEUE_WAIT_SECONDS = 3600
    assert watch_queues()[nobody] is False
    watch_queues()
    deliver_alerts()
    alerts = [m for m in mail.outbox if f"No live worker on queue {nobody}" in m.subject]
    assert len(alerts) == 1 and "db-far" in alerts[0].body
    run.refresh_from_db()
    assert run.status == "queued"

    settings.BACKUP_QUEUE_WAIT_SECONDS = 0
    watch_queues()
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error.startswith(f"waiting for a worker on queue {nobody}: no live worker consumed it")
    deliver_alerts()
    assert any(f"Backup of db-far FAILED (run #{run.pk})" in m.subject for m in mail.outbox)

    # A worker for the queue turns up later: the old message is a no-op, a new run succeeds, all clear.
    worker = start_worker(tmp_path / "late.log", queues=[nobody], name=f"late-{tag}")
    try:
        (second,) = back_up_now(admin_client, target)
        wait_for(lambda: BackupRun.objects.get(pk=second.pk).is_finished, message="the new run")
        second.refresh_from_db()
        assert second.status == "succeeded", second.error
        run.refresh_from_db()
        assert run.status == "failed"
        assert watch_queues()[nobody] is True
        assert WatchedQueue.objects.get(queue=nobody).served is True
        deliver_alerts()
        assert any(f"Queue {nobody} has a live worker again" in m.subject for m in mail.outbox)
    finally:
        stop_worker(worker)


def test_after_a_worker_is_killed_the_next_run_succeeds_on_the_other_worker_of_the_queue(
    settings, tmp_path, source_db, local_location, make_target, _flush_test_broker, age_key, s3_endpoint
):
    """SIGKILL the worker mid-backup: the run is reaped as failed, nothing stays locked, and the next
    run of the target goes to the other worker of the same queue and succeeds."""
    import os
    import signal

    import psycopg

    from backups.services.backup import reap_stale_runs
    from backups.tasks import enqueue_backup

    tag = secrets.token_hex(3)
    queue = f"pair-{tag}"
    target = make_target("db-pair", source_db, [local_location], queue=queue)
    workers = {
        f"{n}-{tag}@{socket.gethostname()}": start_worker(
            tmp_path / f"{n}.log", concurrency=1, queues=[queue], name=f"{n}-{tag}"
        )
        for n in ("first", "second")
    }
    blocker = psycopg.connect(source_db)
    blocker.execute("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")  # pg_dump waits: the run stays running
    try:
        run = BackupRun.enqueue(target, trigger="manual")
        enqueue_backup(run)
        wait_for(lambda: BackupRun.objects.get(pk=run.pk).status == "running", message="the run to start")
        run.refresh_from_db()
        victim = workers.pop(run.worker)
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        blocker.rollback()

        settings.BACKUP_STALE_SECONDS = 0
        assert reap_stale_runs() == 1
        run.refresh_from_db()
        assert run.status == "failed" and "presumed dead" in run.error
        assert not run.artifacts.exists()

        (survivor,) = workers
        following = BackupRun.enqueue(target, trigger="schedule")
        enqueue_backup(following)
        wait_for(lambda: BackupRun.objects.get(pk=following.pk).is_finished, message="the next run")
        following.refresh_from_db()
        assert following.status == "succeeded", following.error
        assert (following.worker, following.queue) == (survivor, queue)
    finally:
        blocker.close()
        for worker in workers.values():
            stop_worker(worker)


def test_a_redelivered_beat_message_reuses_its_run(source_db, local_location, make_target, _flush_test_broker):
    """A worker killed between making a scheduled run and sending it: the message comes back, and the
    same run is sent (once), not a second run made beside a first one queued forever."""
    from backups.tasks import backup_target

    target = make_target("db", source_db, [local_location], queue=f"redelivery-{secrets.token_hex(3)}")
    first = backup_target.apply(args=[target.name], task_id="beat-message-1").get()
    again = backup_target.apply(args=[target.name], task_id="beat-message-1").get()
    other = backup_target.apply(args=[target.name], task_id="beat-message-2").get()

    assert first == again != other
    assert BackupRun.objects.filter(target=target).count() == 2
    assert BackupRun.objects.get(pk=first).sent_as == "beat-message-1"


def test_the_admin_takes_a_queue_refuses_a_bad_one_and_blank_means_the_shared_queue(admin_client, local_location):
    from backups.models import Target

    form = target_form(local_location, source="env:ORDERS_DATABASE_URL")
    url = reverse("admin:backups_target_add")
    page = admin_client.post(url, {**form, "queue": "db-eu,db-us"}).content.decode()
    assert "A queue name uses letters, digits" in page and not Target.objects.exists()

    assert admin_client.post(url, {**form, "queue": "db-eu"}).status_code == 302
    assert Target.objects.get(name="db").queue == "db-eu"
    assert admin_client.post(url, {**form, "name": "other", "queue": ""}).status_code == 302
    assert Target.objects.get(name="other").queue == "celery"


def test_verifications_and_restores_on_a_queue_without_a_worker_fail_after_the_wait(
    settings, local_location, make_target
):
    from backups.models import Restore
    from backups.services.queues import fail_unserved_runs

    target = make_target("db", "env:X", [local_location], queue=f"nobody-{secrets.token_hex(3)}")
    run = BackupRun.objects.create(target=target, queue=target.queue, status="succeeded", sha256="0" * 64)
    check = Verification.objects.create(run=run, kind="restore_test")
    restore = Restore.objects.create(run=run, source=str(run.pk))

    settings.BACKUP_QUEUE_WAIT_SECONDS = 3600
    assert fail_unserved_runs() == 0
    settings.BACKUP_QUEUE_WAIT_SECONDS = 0
    assert fail_unserved_runs() == 2

    for job in (check, restore):
        job.refresh_from_db()
        assert job.status == "failed"
        assert job.error.startswith(f"waiting for a worker on queue {target.queue}: no live worker consumed it")
    assert fail_unserved_runs() == 0  # once


def test_a_worker_killed_mid_copy_leaves_no_partial_copy_and_the_next_run_succeeds_on_the_other_worker(
    settings, tmp_path, s3_endpoint, s3_bucket, make_target, _flush_test_broker, age_key
):
    """SIGKILL a worker while its backup is half uploaded (a multipart upload under the temporary
    prefix, a spool file on disk): after the reaper (beat's `reap_stale_jobs`), the run is failed
    with the cause, no copy, spool or unfinished upload is left, the target is free (no run holds
    it), and the next run succeeds on the other worker of the same queue."""
    import os
    import signal
    from urllib.parse import urlsplit

    from django.utils import timezone

    from backups.models import Location
    from backups.tasks import enqueue_backup, reap_stale_jobs
    from tests.backups.test_storage import objects, random_folder, unfinished_uploads
    from tests.killpoints import PART_MB
    from tests.loopback_proxy import LoopbackProxy

    tag = secrets.token_hex(3)
    queue = f"copy-{tag}"
    host = socket.gethostname()
    with LoopbackProxy("127.0.0.1", urlsplit(s3_endpoint).port) as proxy:
        location = Location.objects.create(name="far-s3", url=f"s3://{s3_bucket}/{tag}", endpoint_url=proxy.url)
        target = make_target("uploads", str(random_folder(tmp_path / "tree")), [location], engine="files", queue=queue)
        env = {"BACKUP_S3_PART_SIZE_MB": str(PART_MB)}  # a 12 MB artifact: a three-part upload
        workers = {
            f"{n}-{tag}@{host}": start_worker(
                tmp_path / f"{n}.log", env, concurrency=1, queues=[queue], name=f"{n}-{tag}"
            )
            for n in ("first", "second")
        }
        try:
            run = BackupRun.enqueue(target, trigger="schedule")
            enqueue_backup(run)
            # Hang the server once the first part went through: the run is mid-multipart.
            wait_for(lambda: proxy.bytes_up > (PART_MB + 1) << 20, timeout=120, interval=0.01, message="the upload")
            proxy.stall()
            run.refresh_from_db()
            assert run.status == "running" and run.phase.startswith("copy"), (run.status, run.phase)
            victim = workers.pop(run.worker)
            os.killpg(victim.proc.pid, signal.SIGKILL)
            victim.proc.wait(10)
            # The premise: partial output exists, on the S3 server and in the spool.
            assert unfinished_uploads(s3_endpoint, s3_bucket), "the kill landed mid-upload"
            assert list(settings.BACKUP_SPOOL_DIR.glob(f"run{run.pk}-*")), "the spool file was there"
            proxy.resume()

            # Not judged dead while its silence is within the limit...
            settings.BACKUP_STALE_SECONDS = settings.BACKUP_COPY_STALE_SECONDS = 3600
            reap_stale_jobs()
            run.refresh_from_db()
            assert run.status == "running"
            # ...then beat's reaper fails it with the cause and cleans up after it.
            settings.BACKUP_STALE_SECONDS = settings.BACKUP_COPY_STALE_SECONDS = 10
            BackupRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(minutes=5))
            reap_stale_jobs()
            run.refresh_from_db()
            assert run.status == "failed" and "presumed dead" in run.error and "during copy" in run.error, run.error
            assert run.worker in run.error
            assert not run.artifacts.exists()
            assert unfinished_uploads(s3_endpoint, s3_bucket) == []
            assert [key for key in objects(s3_endpoint, s3_bucket) if key.startswith(f"{tag}/")] == []
            assert not list(settings.BACKUP_SPOOL_DIR.glob(f"run{run.pk}-*"))
            assert not BackupRun.objects.filter(target=target, status="running").exists()  # the lock is free

            (survivor,) = workers
            following = BackupRun.enqueue(target, trigger="schedule")
            enqueue_backup(following)
            wait_for(lambda: BackupRun.objects.get(pk=following.pk).is_finished, timeout=120, message="the next run")
            following.refresh_from_db()
            assert following.status == "succeeded", following.error
            assert (following.worker, following.queue) == (survivor, queue)
            assert following.artifacts.get().status == "stored"
        finally:
            for worker in workers.values():
                stop_worker(worker)
