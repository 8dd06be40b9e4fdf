"""The testing schedule: cadence arithmetic, the next occurrence always exists, overdue flips and reminders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from alerts import delivery
from alerts.models import Channel, Notification
from drills.cadence import next_cron, occurrence
from drills.models import Drill, Finding, PlanDocument, TestActivity
from drills.services import schedule


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def series(cadence: str, anchor: datetime, count: int, cron: str = "") -> list[datetime]:
    found, after = [], anchor - timedelta(seconds=1)
    for _ in range(count):
        after = occurrence(cadence, anchor, after=after, cron=cron)
        found.append(after)
    return found


def test_monthly_on_the_31st_clamps_to_month_end_and_comes_back():
    assert series("monthly", utc(2026, 1, 31, 4), 5) == [
        utc(2026, 1, 31, 4),
        utc(2026, 2, 28, 4),
        utc(2026, 3, 31, 4),
        utc(2026, 4, 30, 4),
        utc(2026, 5, 31, 4),
    ]
    assert occurrence("monthly", utc(2028, 1, 31), after=utc(2028, 2, 1)) == utc(2028, 2, 29)  # leap year


def test_monthly_across_the_year_end():
    assert occurrence("monthly", utc(2026, 2, 1, 4), after=utc(2026, 12, 1, 4)) == utc(2027, 1, 1, 4)


def test_quarterly_from_a_month_end():
    assert series("quarterly", utc(2025, 11, 30, 9), 4) == [
        utc(2025, 11, 30, 9),
        utc(2026, 2, 28, 9),
        utc(2026, 5, 30, 9),
        utc(2026, 8, 30, 9),
    ]


def test_annual_on_february_29():
    assert series("annual", utc(2024, 2, 29), 5) == [
        utc(2024, 2, 29),
        utc(2025, 2, 28),
        utc(2026, 2, 28),
        utc(2027, 2, 28),
        utc(2028, 2, 29),
    ]


def test_cron_cadences():
    assert next_cron("0 4 1 * *", utc(2026, 12, 15)) == utc(2027, 1, 1, 4)
    assert next_cron("0 0 1 1 *", utc(2026, 12, 31, 23, 59)) == utc(2027, 1, 1)
    assert next_cron("30 2 * * 1", utc(2026, 3, 4)) == utc(2026, 3, 9, 2, 30)  # the next Monday
    assert next_cron("0 9 28-31 2 *", utc(2026, 3, 1)) == utc(2027, 2, 28, 9)
    assert next_cron("0 0 29 2 *", utc(2026, 3, 4)) == utc(2028, 2, 29)
    # Strictly after: a time that fires exactly now gives the next one.
    assert next_cron("*/15 * * * *", utc(2026, 1, 1, 10, 15)) == utc(2026, 1, 1, 10, 30)


@pytest.fixture
def activity(db):
    return TestActivity.objects.create(
        key="security-test", name="Security Test", cadence="monthly", starts_at=utc(2026, 1, 31, 9)
    )


@pytest.mark.django_db
def test_next_occurrence_always_exists_and_is_idempotent(activity):
    now = utc(2026, 2, 10)
    created = schedule.ensure_next_occurrences(now)
    assert [d.due_at for d in created] == [utc(2026, 2, 28, 9)]
    assert schedule.ensure_next_occurrences(now) == []
    assert schedule.ensure_next_occurrences(utc(2026, 2, 20)) == []
    assert Drill.objects.count() == 1

    # Done early: the next one (Mar 31, back on the 31st) exists straight away.
    drill = Drill.objects.get()
    schedule.complete(drill, "pass", now=utc(2026, 2, 25), performed_at=utc(2026, 2, 25))
    assert list(Drill.objects.values_list("due_at", "status")) == [
        (utc(2026, 2, 28, 9), "done"),
        (utc(2026, 3, 31, 9), "scheduled"),
    ]
    # Never done and long past: the next one is in the future, the old one stays (overdue).
    schedule.ensure_next_occurrences(utc(2026, 6, 5))
    assert list(Drill.objects.filter(status="scheduled").values_list("due_at", flat=True)) == [
        utc(2026, 3, 31, 9),
        utc(2026, 6, 30, 9),
    ]


@pytest.mark.django_db
def test_disabled_activities_get_nothing(activity):
    activity.enabled = False
    activity.save()
    assert schedule.ensure_next_occurrences(utc(2026, 2, 10)) == []


def outbox() -> list:
    """The mail sent, once the alerts outbox is delivered here as a worker would (see ``deliver_alerts``)."""
    delivery.deliver_due()
    return mail.outbox


@pytest.fixture
def ops_channel(db, settings, deliver_alerts):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ALERT_REMINDER_SECONDS = 3600
    settings.ALERT_EMAIL_TO = []
    settings.ALERT_WEBHOOK_URL = ""
    return Channel.objects.create(name="ops", kind="email", email_to="devops@example.com")


@pytest.mark.django_db
def test_overdue_drill_flips_and_reminds_once_per_interval(activity, ops_channel):
    schedule.ensure_next_occurrences(utc(2026, 2, 10))
    drill = Drill.objects.get()
    assert not drill.is_overdue(utc(2026, 2, 28, 8))
    assert schedule.remind_overdue(utc(2026, 2, 28, 8)).drills == []

    first = schedule.remind_overdue(utc(2026, 2, 28, 10))
    drill.refresh_from_db()
    assert first.drills == [drill.pk]
    assert drill.overdue_since == utc(2026, 2, 28, 10) and drill.is_overdue(utc(2026, 2, 28, 10))
    assert len(outbox()) == 1
    assert "Drill overdue: Security Test (due 2026-02-28)" in outbox()[0].subject
    assert outbox()[0].to == ["devops@example.com"]
    assert Notification.objects.get().event == "drill_overdue"

    assert schedule.remind_overdue(utc(2026, 2, 28, 10, 30)).drills == []  # within the interval
    assert schedule.remind_overdue(utc(2026, 2, 28, 11, 1)).drills == [drill.pk]
    assert len(outbox()) == 2

    schedule.complete(drill, "partial", now=utc(2026, 2, 28, 12), performed_at=utc(2026, 2, 28, 12))
    assert schedule.remind_overdue(utc(2026, 3, 1)).drills == []
    drill.refresh_from_db()
    assert drill.overdue_since is None and len(outbox()) == 2


@pytest.mark.django_db
def test_overdue_findings_and_reviews_remind(activity, ops_channel):
    schedule.ensure_next_occurrences(utc(2026, 2, 10))
    drill = Drill.objects.get()
    schedule.complete(drill, "fail", now=utc(2026, 2, 28, 12), performed_at=utc(2026, 2, 28, 12))
    finding = Finding.objects.create(drill=drill, title="Rotate the audit key", due_at=utc(2026, 3, 10))
    document = PlanDocument.objects.create(
        key="plan", title="DR Plan", owner="DevOps Team", last_reviewed_at=utc(2026, 1, 17).date()
    )
    document.next_review_at = document.next_review_after(document.last_reviewed_at)
    document.save()
    assert document.next_review_at == utc(2026, 4, 17).date()

    sent = schedule.housekeeping(utc(2026, 4, 18, 9))
    assert sent["reminded_findings"] == [finding.pk]
    assert sent["reminded_documents"] == [document.pk]
    events = sorted(Notification.objects.values_list("event", flat=True))
    assert events.count("finding_overdue") == 1 and events.count("review_overdue") == 1
    assert any("Plan review overdue: DR Plan" in m.subject for m in outbox())

    finding.status = Finding.Status.DONE
    finding.save()
    assert finding.closed_at is not None
    sent = schedule.housekeeping(utc(2026, 4, 18, 11))
    assert sent["reminded_findings"] == [] and sent["reminded_documents"] == [document.pk]
