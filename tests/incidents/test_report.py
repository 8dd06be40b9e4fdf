"""Measured RTO/RPO against targets, the Markdown report (command and admin download), overdue reminders."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse

from alerts.models import Channel, Notification
from backups.models import BackupRun, Target, Verification
from incidents.models import Incident, ResponseRole
from incidents.services import measure, reminders, report

pytestmark = pytest.mark.django_db


def good_run(target: Target, started, **fields) -> BackupRun:
    """A succeeded run with a passed verification: only verified copies count for the data-loss window."""
    run = BackupRun.objects.create(
        target=target, status="succeeded", sha256="0" * 64, started_at=started, finished_at=started, **fields
    )
    Verification.objects.create(run=run, status="passed", finished_at=started)
    return run


@pytest.fixture
def target(plan_applied):
    return Target.objects.get(name="database")


def test_rto_and_rpo_are_measured_and_compared_with_the_targets(incident, target):
    impact = incident.impact_started_at
    good_run(target, impact - timedelta(hours=3))
    newest = good_run(target, impact - timedelta(minutes=40))
    good_run(target, impact + timedelta(minutes=5))  # after the impact: not a copy of the good data
    BackupRun.objects.create(target=target, status="failed", started_at=impact - timedelta(minutes=10))
    incident.mark_recovered(impact + timedelta(minutes=45))

    m = measure.measure(incident)
    assert m.rto == timedelta(minutes=45) and not m.rto_running
    assert [c.text for c in m.rto_comparisons] == ["scenario 1 target 1 h 00 min: met", "P1 target 1 h 00 min: met"]
    assert m.rpo_run == newest and m.rpo == timedelta(minutes=40)
    assert not m.rpo_breached
    assert m.loss_statement == (
        f"Data written between {newest.started_at:%Y-%m-%d %H:%M} UTC and {impact:%Y-%m-%d %H:%M} UTC may be lost."
    )

    # Recovered late, and the newest good copy 3 hours old: both flagged.
    newest.delete()
    Incident.objects.filter(pk=incident.pk).update(recovered_at=impact + timedelta(minutes=75))
    incident.refresh_from_db()
    m = measure.measure(incident)
    assert m.rto_breached and m.rpo_breached and m.rpo == timedelta(hours=3)
    assert incident.rto_state == "breached"


def test_without_any_good_backup_the_rpo_is_unknown_and_breached(incident):
    m = measure.measure(incident)
    assert m.rpo is None and m.rpo_breached and m.rto_running
    assert "The data-loss window is unknown (no verified backup of database before impact)" in m.loss_statement


def test_report_markdown_has_every_section(incident, commander, target, tmp_path):
    good_run(target, incident.impact_started_at - timedelta(minutes=30))
    incident.assign_role(ResponseRole.objects.get(name="Incident Commander"), person=commander, by=commander)
    incident.add_note("Found corrupt index on messages", commander, pinned=True)
    incident.tick_checklist(incident.checklist.get(key="detected"), commander)
    incident.tick_checklist(incident.checklist.get(key="recovery-verified"), commander, evidence_note="counts match")
    incident.change_status("resolved", commander)
    Incident.objects.filter(pk=incident.pk).update(
        summary="Messages were unreadable for 20 minutes.",
        root_cause="A failed migration left a broken index.",
        follow_up_actions="- Test migrations against a restored copy",
    )
    text = report.render(incident)
    for heading in (
        f"# Post-incident report: #{incident.pk} Messages table corrupted",
        "## Summary",
        "## Recovery time and data loss (RTO / RPO)",
        "## Timeline",
        "## Response checklist",
        "## Runbook steps",
        "## Roles",
        "## Linked backups, verifications and restores",
        "## Status-page updates",
        "## Root cause",
        "## Follow-up actions",
    ):
        assert heading in text, heading
    assert "Messages were unreadable for 20 minutes." in text
    assert "A failed migration left a broken index." in text
    assert "| [x] | Recovery verified |" in text and "counts match" in text
    assert "| [ ] | Root cause identified |" in text
    assert "| Incident Commander | commander |" in text
    assert "Found corrupt index on messages" in text
    assert "scenario 1 target 1 h 00 min: met" in text
    assert "may be lost." in text

    out = tmp_path / "report.md"
    call_command("incidentreport", str(incident.pk), "--output", str(out))
    assert out.read_text() == text


def test_admin_download_of_the_report(client, incident, commander):
    client.force_login(commander)
    response = client.get(reverse("admin:incidents_incident_report", args=[incident.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="incident-{incident.pk}-report.md"'
    assert b"## Timeline" in response.content


def test_an_overdue_report_sends_a_reminder_once_per_interval(settings, incident, commander, deliver_alerts):
    Channel.objects.create(name="ops", kind="email", email_to="ops@example.com")
    settings.ALERT_REMINDER_SECONDS = 3600
    incident.change_status("resolved", commander, without_recovery="false alarm")
    assert reminders.remind_overdue_reports() == 0  # due in 24 hours

    later = incident.report_due_at + timedelta(minutes=5)
    assert reminders.remind_overdue_reports(now=later) == 1
    assert reminders.remind_overdue_reports(now=later + timedelta(minutes=15)) == 0  # within the interval
    assert reminders.remind_overdue_reports(now=later + timedelta(minutes=65)) == 1
    deliver_alerts()
    sent = Notification.objects.filter(event="incident_report_overdue", channel="ops")
    assert sent.count() == 2 and {n.status for n in sent} == {"delivered"}
    assert any(m.to == ["ops@example.com"] and "is overdue" in m.subject for m in mail.outbox)

    # Submitting needs the report's summary and root cause (issue #14: an empty report is refused).
    incident.summary, incident.root_cause = "A false alarm.", "A broken disk on a replica."
    incident.save()
    incident.submit_report(commander)
    assert reminders.remind_overdue_reports(now=later + timedelta(hours=5)) == 0


def test_the_reminder_task_is_in_the_beat_schedule(db):
    from drportal.schedules import SYSTEM_SCHEDULES

    task, cron, _ = SYSTEM_SCHEDULES["incidents: remind overdue reports"]
    assert (task, cron) == ("incidents.tasks.remind_overdue_reports", "*/15 * * * *")
    from incidents.tasks import remind_overdue_reports

    assert remind_overdue_reports.name == task  # the beat entry names this very task, not a stale path
    assert remind_overdue_reports() == 0
