"""The incident commander's journey, below the browser: opening with the title and severity alone, the
scenario suggested from the title, the working area's one form, and the report flow."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.incidents.conftest import staff_with

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Redis is down", "redis-failure"),
        ("Messages table corrupted", "database-corruption"),
        ("Database corruption after migration", "database-corruption"),
        ("Frontend returns 502", "frontend-failure"),
        ("Supabase storage unreachable", "storage-failure"),
        ("Leaked API key, suspected security breach", "security-incident"),
    ],
)
def test_scenario_suggested_from_the_title(plan_applied, title, expected):
    from incidents.services.opening import suggest_scenarios

    assert suggest_scenarios(title)[0].key == expected


def test_nothing_suggested_for_a_title_that_names_no_scenario(plan_applied):
    from incidents.services.opening import suggest_scenarios

    assert suggest_scenarios("something odd") == []
    assert suggest_scenarios("  ") == []


def test_the_suggestion_url_needs_the_add_permission(plan_applied, client):
    url = reverse("admin:incidents_incident_suggest_scenario") + "?title=redis"
    client.force_login(staff_with("viewer", "view_incident"))
    assert client.get(url).status_code == 403
    client.force_login(staff_with("opener", "view_incident", "add_incident"))
    response = client.get(url)
    assert response.status_code == 200
    assert response.json()["scenarios"][0]["label"] == "Scenario 4: Redis Cache Failure"


def test_open_with_title_and_severity_alone_through_the_admin(plan_applied, client, commander):
    from incidents.models import Incident, Severity

    client.force_login(commander)
    response = client.post(
        reverse("admin:incidents_incident_add"),
        {
            "title": "Everything is down",
            "severity": Severity.objects.get(key="P1").pk,
            "detected_at_0": "",
            "detected_at_1": "",
            "role_assignments-TOTAL_FORMS": "0",
            "role_assignments-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    incident = Incident.objects.get()
    assert incident.impact_started_at == incident.detected_at


def test_a_timeline_entry_is_saved_with_the_rest_of_the_page(client, incident, commander):
    from tests.incidents.test_admin import change_url, form_data

    client.force_login(commander)
    data = form_data(client.get(change_url(incident)))
    data.update(summary="A migration truncated messages.", timeline_kind="decision", timeline_text="Restore it")
    data["_continue"] = "timeline"
    response = client.post(change_url(incident), data)
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.summary == "A migration truncated messages."
    assert incident.timeline.get(text="Restore it").kind == "decision"


def test_a_refused_save_keeps_the_typed_entry_and_summary_on_the_page(client, incident, commander):
    from tests.incidents.test_admin import change_url, form_data

    client.force_login(commander)
    data = form_data(client.get(change_url(incident)))
    # Resolving without recovery verified and without a reason is refused: the whole page comes back.
    data.update(status="resolved", summary="typed summary", timeline_text="typed entry", update_message="typed update")
    response = client.post(change_url(incident), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "cannot be resolved yet" in html
    assert 'value="typed entry"' in html and "typed summary</textarea>" in html and "typed update</textarea>" in html
    incident.refresh_from_db()
    assert incident.summary == "" and not incident.timeline.filter(text="typed entry").exists()
    assert not incident.status_updates.exists()


@pytest.mark.parametrize(("kind", "saved"), [("decision", True), ("action", True), ("status", False), ("x", False)])
def test_the_timeline_url_takes_the_kinds_a_commander_writes(client, incident, commander, kind, saved):
    client.force_login(commander)
    url = reverse("admin:incidents_incident_timeline", args=[incident.pk])
    client.post(url, {"text": "typed by hand", "kind": kind})
    assert incident.timeline.filter(text="typed by hand", kind=kind).exists() is saved
    if not saved:
        assert not incident.timeline.filter(text="typed by hand").exists()


def test_add_note_refuses_automatic_kinds(incident):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="Unknown timeline entry kind"):
        incident.add_note("forged", kind="system")


# --- the report flow ----------------------------------------------------------------------------


def resolve(incident, user):
    incident.change_status("resolved", user, without_recovery="false alarm")


def test_submitting_the_report_needs_a_resolved_incident_and_its_fields(incident, commander):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="not resolved"):
        incident.submit_report(commander)
    resolve(incident, commander)
    with pytest.raises(ValidationError, match="summary, root cause"):
        incident.submit_report(commander)
    incident.summary = "A migration truncated messages."
    incident.root_cause = "   "
    with pytest.raises(ValidationError, match="root cause"):
        incident.submit_report(commander)
    incident.root_cause = "An unreviewed migration."
    incident.save()
    incident.submit_report(commander)
    incident.refresh_from_db()
    assert incident.report_submitted_at is not None
    # Reopened: it is no longer resolved, so its report is no longer submitted either (a new one is due later).
    incident.change_status("investigating", commander)
    incident.refresh_from_db()
    assert incident.report_submitted_at is None and incident.report_problem().startswith(f"Incident #{incident.pk}")


def test_the_submit_url_refuses_an_open_incident_or_an_empty_report(client, incident, commander):
    client.force_login(commander)
    url = reverse("admin:incidents_incident_submit_report", args=[incident.pk])
    page = client.get(reverse("admin:incidents_incident_change", args=[incident.pk])).content.decode()
    assert "Mark report submitted" not in page  # not offered before resolution
    response = client.post(url, follow=True)
    assert "not resolved" in response.content.decode()
    resolve(incident, commander)
    page = client.get(reverse("admin:incidents_incident_change", args=[incident.pk])).content.decode()
    assert "Mark report submitted" in page
    response = client.post(url, follow=True)
    assert "needs its summary, root cause" in response.content.decode()
    incident.refresh_from_db()
    assert incident.report_submitted_at is None


def test_the_overdue_reminder_goes_to_the_commander_and_the_channel(settings, incident, commander, deliver_alerts):
    from django.contrib.auth.models import User
    from django.core import mail

    from alerts.models import Channel, Notification
    from incidents.models import Contact, ResponseRole
    from incidents.services import reminders

    Channel.objects.create(name="ops", kind="email", email_to="ops@example.com")
    ic = ResponseRole.objects.get(name="Incident Commander")
    incident.assign_role(ic, contact=Contact.objects.create(name="Ann", email="ann@example.com"), by=commander)
    resolve(incident, commander)
    assert reminders.remind_overdue_reports(now=incident.report_due_at + timedelta(minutes=5)) == 1
    deliver_alerts()
    to = [m.to for m in mail.outbox]
    assert ["ann@example.com"] in to and ["ops@example.com"] in to  # the commander and the channel
    record = Notification.objects.get(event="incident_report_overdue", channel="commander:ann@example.com")
    assert record.status == "delivered" and record.object_ref == f"incident:{incident.pk}"

    # Handed over to a portal user without a contact: their user email.
    bob = User.objects.create_user("bob", "bob@example.com", "pw")
    incident.assign_role(ic, person=bob, by=commander)
    mail.outbox.clear()
    assert reminders.remind_overdue_reports(now=incident.report_due_at + timedelta(hours=5)) == 1
    deliver_alerts()
    to = [m.to for m in mail.outbox]
    assert ["bob@example.com"] in to and ["ops@example.com"] in to and ["ann@example.com"] not in to


def test_the_incidents_list_shows_and_filters_due_and_overdue_reports(client, plan_applied, commander):
    from incidents.models import Incident, Severity

    p1 = Severity.objects.get(key="P1")
    now = timezone.now()

    def make(title, due, submitted=None):
        i = Incident.open(title=title, severity=p1, impact_started_at=now - timedelta(days=3))
        Incident.objects.filter(pk=i.pk).update(
            status="resolved", resolved_at=now - timedelta(days=2), report_due_at=due, report_submitted_at=submitted
        )

    make("late one", now - timedelta(hours=3))
    make("due one", now + timedelta(hours=3))
    make("done one", now - timedelta(hours=3), submitted=now - timedelta(hours=4))
    Incident.open(title="open one", severity=p1)
    client.force_login(commander)
    url = reverse("admin:incidents_incident_changelist")
    page = client.get(url).content.decode()
    assert "report-overdue" in page and "OVERDUE" in page
    overdue = client.get(url + "?report=overdue").content.decode()
    assert "late one" in overdue and "due one" not in overdue and "done one" not in overdue
    due = client.get(url + "?report=due").content.decode()
    assert "due one" in due and "late one" in due and "done one" not in due and "open one" not in due
    submitted = client.get(url + "?report=submitted").content.decode()
    assert "done one" in submitted and "late one" not in submitted


# --- restore proposals, the status-page item, the restore helper's default ------------------------


@pytest.fixture
def good_run(incident):
    from backups.models import Artifact, BackupRun, Location, Target

    target = incident.scenario.targets.first()
    run = BackupRun.objects.create(
        target=target,
        status="succeeded",
        sha256="0" * 64,
        started_at=timezone.now() - timedelta(hours=2),
        finished_at=timezone.now() - timedelta(hours=2),
        trigger="command",
    )
    Artifact.objects.create(
        run=run, location=Location.objects.get(name="local"), key="x", url="file:///x", size=1, sha256="0" * 64
    )
    assert Target.objects.exclude(engine="portal").order_by("name").first() != target  # not first alphabetically
    return run


def proposals(incident):
    return incident.timeline.filter(text__contains="proposed")


def test_a_restore_proposal_is_closed_when_the_incident_resolves(incident, commander, good_run):
    from incidents.services import security

    security.restore_before_url(incident, good_run.target, timezone.now(), commander)
    entry = proposals(incident).get()
    assert entry.proposal_state == "awaiting"
    assert "expires after 1 h 00 min or when the incident is resolved" in entry.text
    resolve(incident, commander)
    entry.refresh_from_db()
    assert entry.proposal_state == "closed"
    assert incident.timeline.filter(text__contains="never confirmed", kind="system").exists()


def test_an_abandoned_restore_proposal_expires(incident, commander, good_run):
    from incidents.services import security

    security.restore_before_url(incident, good_run.target, timezone.now(), commander)
    entry = proposals(incident).get()
    assert security.expire_restore_proposals(now=timezone.now()) == 0  # still fresh
    assert security.expire_restore_proposals(now=timezone.now() + security.RESTORE_PROPOSAL_TTL * 2) == 1
    entry.refresh_from_db()
    assert entry.proposal_state == "expired"
    assert security.expire_restore_proposals(now=timezone.now() + security.RESTORE_PROPOSAL_TTL * 3) == 0


def test_the_expiry_runs_with_the_incident_beat_task(incident, commander, good_run):
    from incidents.models import TimelineEntry
    from incidents.services import security
    from incidents.tasks import remind_overdue_reports

    security.restore_before_url(incident, good_run.target, timezone.now(), commander)
    TimelineEntry.objects.filter(proposal_state="awaiting").update(at=timezone.now() - timedelta(days=1))
    remind_overdue_reports()
    assert proposals(incident).get().proposal_state == "expired"


def test_a_confirmed_restore_closes_its_proposal(incident, commander, good_run):
    from backups.models import Restore
    from incidents.services import security

    security.restore_before_url(incident, good_run.target, timezone.now(), commander)
    restore = Restore.objects.create(run=good_run, status="running", triggered_by=commander)
    incident.link_job(restore=restore, user=commander)
    assert proposals(incident).get().proposal_state == "confirmed"


def test_publishing_a_status_update_ticks_status_page_updated(incident, commander):
    from incidents.services import communicate

    item = incident.checklist.get(key="status-page-updated")
    assert item.done_at is None
    communicate.post_update(incident, "We are investigating.", user=commander)
    item.refresh_from_db()
    assert item.done_at is not None and item.done_by == commander
    assert incident.timeline.filter(text__startswith="Checklist ✓ Status page updated").exists()


def test_an_update_on_an_internal_incident_does_not_claim_the_status_page_was_updated(incident, commander):
    from incidents.services import communicate

    incident.customer_facing = False
    incident.save()
    communicate.post_update(incident, "Internal only.", user=commander)
    assert incident.checklist.get(key="status-page-updated").done_at is None


def test_the_restore_helper_defaults_to_the_scenarios_target(client, incident, commander, good_run):
    import re

    client.force_login(commander)
    page = client.get(reverse("admin:incidents_incident_change", args=[incident.pk])).content.decode()
    form = page[page.index('id="restore-before"') :]
    selected = re.search(r'<option value="(\d+)" selected>', form)
    assert selected and int(selected.group(1)) == good_run.target_id
