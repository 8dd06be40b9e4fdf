"""The outbox: emitting never waits for the network; a worker delivers with retries and backoff.

Real pieces throughout: Celery worker processes (tests/conftest.py), a loopback HTTP server as the
webhook (tests/http_stub.py), a real backup run as the emitter, and Redis gone for real (a free port).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.urls import reverse
from django.utils import timezone

import alerts
from alerts import delivery, tasks
from alerts.models import Channel, Notification
from backups.services import backup
from tests.conftest import ROOT, free_port, pg_url, start_worker, stop_worker, wait_for
from tests.http_stub import Answer

DEAD_SOURCE = "postgresql://postgres@127.0.0.1:1/nothing"  # the backup fails: a backup_failed alert


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_webhook_failing_twice_is_delivered_on_the_third_try_and_the_backup_does_not_wait(
    http_stub, local_location, make_target, tmp_path, age_key, _flush_test_broker, no_other_workers
):
    # The first answer stalls 5 s, then 500; then 500; then the default 200.
    http_stub.script(Answer(500, delay=5), 500)
    Channel.objects.create(name="slack", kind="webhook", webhook_url=http_stub.url("/services/T0/B0/secret-token"))
    worker = start_worker(tmp_path / "alerts.log", extra_env={"ALERT_RETRY_SECONDS": "1"})
    try:
        target = make_target("db", DEAD_SOURCE, [local_location])
        started = time.monotonic()
        run = backup.execute(backup.start_backup(target, trigger="command"))
        took = time.monotonic() - started
        assert run.status == "failed"
        notification = Notification.objects.get(event="backup_failed")
        # The backup is over while the webhook still holds its first request: it never waited for it.
        assert took < 5, took
        assert notification.status in ("pending", "retrying") and notification.delivered_at is None

        wait_for(
            lambda: Notification.objects.get(pk=notification.pk).status == "delivered",
            timeout=60,
            message="delivery on the third try",
        )
        notification.refresh_from_db()
        assert notification.attempts == 3 and notification.last_error == ""
        assert notification.next_attempt_at is None and notification.delivered_at is not None
        assert [r.method for r in http_stub.requests] == ["POST"] * 3
        assert "Backup of db FAILED" in http_stub.requests[-1].json()["text"]
        assert "secret-token" not in worker.log()  # the URL is a secret, even in the worker's log
    finally:
        stop_worker(worker)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_two_workers_do_not_deliver_twice(http_stub, tmp_path, age_key, _flush_test_broker, no_other_workers):
    http_stub.stall = 2.0  # long enough for every copy of the job to meet the first one's claim
    Channel.objects.create(name="slack", kind="webhook", webhook_url=http_stub.url("/hook"))
    workers = [start_worker(tmp_path / f"w{i}.log", name=f"alerts-{i}-{os.getpid()}") for i in range(2)]
    try:
        (notification,) = alerts.emit("backup_failed", "subject", "body")  # queued once at commit ...
        tasks.enqueue_deliveries([notification.pk] * 5)  # ... and five more times: a redelivery, the sweep
        wait_for(lambda: Notification.objects.get(pk=notification.pk).status == "delivered", timeout=60)
        time.sleep(3)  # any copy still running would have posted by now
        assert len(http_stub.requests) == 1
        assert Notification.objects.get(pk=notification.pk).attempts == 1
    finally:
        for worker in workers:
            stop_worker(worker)


@pytest.mark.django_db
def test_with_the_webhook_down_for_an_hour_nothing_is_lost_and_the_row_says_so(settings, http_stub, deliver_alerts):
    settings.ALERT_RETRY_SECONDS = 30
    settings.ALERT_DELIVERY_ATTEMPTS = 12
    http_stub.default = 503
    Channel.objects.create(name="slack", kind="webhook", webhook_url=http_stub.url("/hook"))
    (notification,) = alerts.emit("objective_breached", "RPO logs is BREACHED", "body")
    t0 = notification.created_at

    # Beat's sweep every minute for an hour, the clock moved instead of waited for.
    for minute in range(61):
        delivery.deliver_due(t0 + timedelta(minutes=minute))
    notification.refresh_from_db()
    # The minute's sweep tries at 0, 1, 2, 4, 8, 16 and 32 min (the wait doubles from 30 s); next at 64 min.
    assert notification.status == "retrying"
    assert notification.attempts == 7 and len(http_stub.requests) == 7
    assert notification.last_error == "webhook answered HTTP 503"
    assert notification.next_attempt_at == t0 + timedelta(seconds=3840)
    assert delivery.due_ids(t0 + timedelta(minutes=61)) == []  # not due yet: the sweep leaves it alone
    assert delivery.due_ids(t0 + timedelta(seconds=3840 + 60)) == [notification.pk]

    # The webhook is back: the next due attempt delivers it.
    http_stub.default = 200
    delivery.deliver_due(t0 + timedelta(seconds=3840))
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.last_error) == ("delivered", 8, "")
    assert notification.delivered_at == t0 + timedelta(seconds=3840)


@pytest.mark.django_db
def test_a_notification_that_gave_up_says_so_and_retry_now_sends_it(settings, http_stub, admin_client, deliver_alerts):
    settings.ALERT_RETRY_SECONDS = 1
    settings.ALERT_DELIVERY_ATTEMPTS = 3
    http_stub.default = 500
    Channel.objects.create(name="slack", kind="webhook", webhook_url=http_stub.url("/services/T0/B0/secret-token"))
    (notification,) = alerts.emit("backup_failed", "subject", "body")
    now = notification.created_at
    for second in range(0, 30):
        delivery.deliver_due(now + timedelta(seconds=second))
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("failed", 3)
    assert notification.next_attempt_at is None and notification.last_error == "webhook answered HTTP 500"

    page = admin_client.get(reverse("admin:alerts_notification_changelist") + "?status=failed").content.decode()
    assert "failed (gave up)" in page and "webhook answered HTTP 500" in page and "secret-token" not in page

    http_stub.default = 200
    response = admin_client.post(
        reverse("admin:alerts_notification_changelist"),
        {"action": "retry_now", "_selected_action": [notification.pk]},
        follow=True,
    )
    assert "1 notification(s) queued for one more attempt" in response.content.decode()
    delivery.deliver_due()
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("delivered", 4)


@pytest.mark.django_db
def test_emit_writes_one_pending_row_per_wanting_channel_and_sends_nothing(settings, http_stub, deliver_alerts):
    settings.ALERT_EMAIL_TO = ["oncall@example.com"]
    Channel.objects.create(name="slack", kind="webhook", webhook_url=http_stub.url("/hook"))
    Channel.objects.create(name="drills", kind="email", email_to="a@example.com", events=["drill_overdue"])
    records = alerts.emit("backup_failed", "subject", "body", object_ref="backuprun:1")
    assert sorted(r.channel for r in records) == ["settings:email", "slack"]
    assert {r.status for r in records} == {"pending"} and all(r.attempts == 0 for r in records)
    assert http_stub.requests == [] and mail.outbox == []
    one = alerts.email("status_update", "stakeholder:ceo@example.com", "ceo@example.com", "s", "b", "incident:1")
    assert (one.kind, one.recipient, one.status) == ("email", "ceo@example.com", "pending")
    delivery.deliver_due()
    assert sorted(m.to[0] for m in mail.outbox) == ["ceo@example.com", "oncall@example.com"]


@pytest.mark.django_db
def test_channel_events_are_checked_against_the_registry():
    from django.core.exceptions import ValidationError

    from alerts import events

    assert {"backup_failed", "status_update", "drill_overdue"} <= events.names()  # each app registered its own
    channel = Channel(name="ops", kind="email", email_to="a@example.com", events=["backup_failed", "no_such_event"])
    with pytest.raises(ValidationError, match="no_such_event"):
        channel.full_clean()


@pytest.mark.django_db(transaction=True)
def test_the_broker_down_at_emit_leaves_the_row_pending_and_raises_nothing(local_location, make_target):
    Channel.objects.create(name="ops", kind="email", email_to="oncall@example.com")
    make_target("db", DEAD_SOURCE, [local_location])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": pg_url(connection.settings_dict["NAME"]),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # Redis gone
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "backup", "db"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in result.stderr, result.stderr
    notification = Notification.objects.get(event="backup_failed")
    assert notification.status == "pending" and notification.attempts == 0
    assert notification.last_error.startswith("not queued (") and "the sweep sends it" in notification.last_error
    # The broker is back: the sweep's pass delivers it.
    assert notification.pk in delivery.due_ids(timezone.now() + timedelta(minutes=1))
