"""Alerts: email through Django's mail and a Slack-compatible webhook to a real local HTTP server.

Emitting writes outbox rows; ``deliver_alerts()`` delivers them as a worker would (tests/alerts/test_outbox.py
covers the worker itself, retries and the sweep)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from alerts.models import Channel, Notification
from backups.models import Objective
from backups.services import backup, rpo
from tests.conftest import WEBHOOK_PATH, posted

pytestmark = pytest.mark.django_db


@pytest.fixture
def channels(webhook, deliver_alerts):
    Channel.objects.create(name="ops", kind="email", email_to="devops@example.com, oncall@example.com")
    Channel.objects.create(name="slack", kind="webhook", webhook_url=webhook.url(WEBHOOK_PATH))


def test_a_failed_backup_sends_an_email_and_a_webhook_post(
    channels, webhook, local_location, make_target, deliver_alerts
):
    target = make_target("db", "postgresql://postgres@127.0.0.1:1/nothing", [local_location])
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "failed"

    deliver_alerts()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["devops@example.com", "oncall@example.com"]
    assert "Backup of db FAILED" in mail.outbox[0].subject
    assert "pg_dump failed" in mail.outbox[0].body
    assert len(posted(webhook)) == 1 and "Backup of db FAILED" in posted(webhook)[0]["text"]
    assert set(Notification.objects.values_list("channel", "status")) == {("ops", "delivered"), ("slack", "delivered")}


def test_the_next_success_sends_a_recovery_alert(
    channels, webhook, source_db, local_location, make_target, deliver_alerts
):
    target = make_target("db", "postgresql://postgres@127.0.0.1:1/nothing", [local_location])
    backup.execute(backup.start_backup(target, trigger="command"))
    deliver_alerts()
    target.source = source_db
    target.save()
    backup.execute(backup.start_backup(target, trigger="command"))
    deliver_alerts()
    assert "succeed again" in mail.outbox[-1].subject
    assert Notification.objects.filter(event="backup_recovered").count() == 2


def test_a_partial_backup_alerts_naming_the_failed_location(
    channels, webhook, source_db, local_location, make_target, deliver_alerts
):
    """A location that failed is an alert even though a copy landed elsewhere (the run is "partial")."""
    from backups.models import Location
    from tests.conftest import free_port

    dead = Location.objects.create(name="s3-down", url="s3://nowhere/x", endpoint_url=f"http://127.0.0.1:{free_port()}")
    target = make_target("db", source_db, [local_location, dead])
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "partial"
    deliver_alerts()
    assert len(mail.outbox) == 1
    assert "Backup of db PARTLY FAILED" in mail.outbox[0].subject
    assert "s3-down" in mail.outbox[0].body and "Copies stored in: local" in mail.outbox[0].body
    assert Notification.objects.filter(event="backup_failed").count() == 2

    # Fixed: the next full success says so.
    target.locations.set([local_location])
    backup.execute(backup.start_backup(target, trigger="command"))
    deliver_alerts()
    assert "succeed again" in mail.outbox[-1].subject


def test_a_failing_webhook_is_recorded_with_the_error_and_email_still_goes(
    channels, webhook, local_location, make_target, deliver_alerts
):
    webhook.default = 500
    target = make_target("db", "postgresql://postgres@127.0.0.1:1/nothing", [local_location])
    backup.execute(backup.start_backup(target, trigger="command"))
    deliver_alerts()
    failed = Notification.objects.get(channel="slack")
    # Not lost: it will be tried again (tests/alerts/test_outbox.py follows the retries to the end).
    assert failed.status == "retrying" and failed.last_error == "webhook answered HTTP 500"
    assert failed.attempts == 1 and failed.next_attempt_at > failed.created_at
    assert "secret-token" not in failed.last_error
    assert Notification.objects.get(channel="ops").status == "delivered"


def test_unreachable_webhook_is_recorded(local_location, make_target, deliver_alerts):
    from tests.conftest import free_port

    Channel.objects.create(name="slack", kind="webhook", webhook_url=f"http://127.0.0.1:{free_port()}/x")
    target = make_target("db", "postgresql://postgres@127.0.0.1:1/nothing", [local_location])
    backup.execute(backup.start_backup(target, trigger="command"))
    deliver_alerts()
    record = Notification.objects.get()
    assert record.status == "retrying" and record.last_error.startswith("webhook unreachable")


def test_settings_channels_work_without_any_in_the_database(
    settings, webhook, local_location, make_target, deliver_alerts
):
    settings.ALERT_EMAIL_TO = ["ops@example.com"]
    settings.ALERT_WEBHOOK_URL = webhook.url(WEBHOOK_PATH)
    target = make_target("db", "postgresql://postgres@127.0.0.1:1/nothing", [local_location])
    backup.execute(backup.start_backup(target, trigger="command"))
    deliver_alerts()
    assert mail.outbox[0].to == ["ops@example.com"] and len(posted(webhook)) == 1


def test_objective_alerts_on_late_breached_reminders_and_recovery(settings, channels, webhook, deliver_alerts):
    settings.ALERT_REMINDER_SECONDS = 600
    objective = Objective.objects.create(name="logs", rpo=timedelta(minutes=10), ping=True)
    ping = rpo.record_ping(objective, remote_addr=None, user_agent="", body="")
    t0 = ping.received_at
    deliver_alerts()
    assert mail.outbox == []  # unknown → ok is not news

    rpo.evaluate_one(objective, t0 + timedelta(minutes=10, seconds=30))
    rpo.evaluate_one(objective, t0 + timedelta(minutes=12))
    rpo.evaluate_one(objective, t0 + timedelta(minutes=15))  # still breached, no reminder yet
    rpo.evaluate_one(objective, t0 + timedelta(minutes=23))  # reminder due
    rpo.evaluate_one(objective, t0 + timedelta(minutes=24))
    objective.refresh_from_db()
    rpo.record_ping(objective, remote_addr=None, user_agent="", body="")

    deliver_alerts()
    subjects = [m.subject for m in mail.outbox]
    assert subjects == [
        "[DR Portal] RPO logs is LATE",
        "[DR Portal] RPO logs is BREACHED",
        "[DR Portal] Reminder: RPO logs is BREACHED",
        "[DR Portal] RPO logs is met again",
    ]
    assert len(posted(webhook)) == 4


def test_channel_event_filter(webhook, local_location, make_target, deliver_alerts):
    Channel.objects.create(
        name="slack", kind="webhook", webhook_url=webhook.url(WEBHOOK_PATH), events=["objective_breached"]
    )
    target = make_target("db", "postgresql://postgres@127.0.0.1:1/nothing", [local_location])
    backup.execute(backup.start_backup(target, trigger="command"))
    deliver_alerts()
    assert posted(webhook) == [] and not Notification.objects.exists()


def test_webhook_url_never_shown_in_the_admin(admin_client, webhook):
    channel = Channel.objects.create(name="slack", kind="webhook", webhook_url=webhook.url(WEBHOOK_PATH))
    from django.urls import reverse

    for url in (
        reverse("admin:alerts_channel_changelist"),
        reverse("admin:alerts_channel_change", args=[channel.pk]),
    ):
        assert "secret-token" not in admin_client.get(url).content.decode()


def test_evaluate_uses_now_by_default():
    objective = Objective.objects.create(name="x", rpo=timedelta(minutes=10), ping=True)
    result = rpo.evaluate()
    assert [o.pk for o in result] == [objective.pk]
    assert result[0].evaluated_at <= timezone.now()
