"""The incident admin: opening, the commander's form (status, roles, checklist, steps), the list, viewers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from incidents.models import Contact, Incident, ResponseRole, Scenario, Severity

from .conftest import staff_with

pytestmark = pytest.mark.django_db


def form_data(response) -> dict:
    """What the browser would post back: every field's current value, plus the inline management forms."""
    data = {}

    def add(form):
        for name in form.fields:
            value = form[name].value()
            key = form.add_prefix(name)
            if value is None or value is False or value == "":
                continue
            if value is True:
                data[key] = "on"
            elif hasattr(value, "tzinfo"):  # split date and time inputs
                local = timezone.localtime(value) if timezone.is_aware(value) else value
                data[f"{key}_0"], data[f"{key}_1"] = f"{local:%Y-%m-%d}", f"{local:%H:%M:%S}"
            else:
                data[key] = value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[formset.management_form.add_prefix(name)] = value
        for form in formset.forms:
            add(form)
    return data


def change_url(incident) -> str:
    return reverse("admin:incidents_incident_change", args=[incident.pk])


def test_opening_an_incident_in_the_admin_snapshots_steps_and_checklist(client, plan_applied, commander):
    client.force_login(commander)
    now = timezone.now()
    response = client.post(
        reverse("admin:incidents_incident_add"),
        {
            "title": "Database Corruption",
            "severity": Severity.objects.get(key="P1").pk,
            "scenario": Scenario.objects.get(key="database-corruption").pk,
            "impact_started_at_0": f"{now:%Y-%m-%d}",
            "impact_started_at_1": f"{now - timedelta(minutes=5):%H:%M:%S}",
            "detected_at_0": f"{now:%Y-%m-%d}",
            "detected_at_1": f"{now:%H:%M:%S}",
            "role_assignments-TOTAL_FORMS": "1",
            "role_assignments-INITIAL_FORMS": "0",
            "role_assignments-0-role": ResponseRole.objects.get(name="Incident Commander").pk,
            "role_assignments-0-user": commander.pk,
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    incident = Incident.objects.get()
    assert incident.steps.count() == 7 and incident.checklist.count() == 10
    assert incident.opened_by == commander
    assert [a.holder for a in incident.current_roles()] == ["commander"]


def test_the_commanders_form_writes_the_timeline_for_every_change(client, incident, commander):
    client.force_login(commander)
    url = change_url(incident)
    data = form_data(client.get(url))
    data.update(
        {
            "status": "recovering",
            "severity": Severity.objects.get(key="P2").pk,
            "checklist-0-done": "on",
            "checklist-1-done": "on",
            "steps-0-done": "on",
            "role_assignments-2-0-role": ResponseRole.objects.get(name="Technical Lead").pk,
            "role_assignments-2-0-contact": Contact.objects.get(key="cto").pk,
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    incident.refresh_from_db()
    assert incident.status == "recovering" and incident.severity.key == "P2" and incident.acknowledged_at
    texts = list(incident.timeline.values_list("kind", "text"))
    assert ("status", "Status: detected → recovering.") in texts
    assert ("severity", "Severity: P1 – Critical → P2 – High.") in texts
    assert ("checklist", "Checklist ✓ Incident detected and severity assessed.") in texts
    assert ("checklist", "Checklist ✓ Incident Commander notified.") in texts
    assert ("step", "Runbook step 1 done: Assess the Damage") in texts
    assert any(kind == "role" and text.startswith("Technical Lead: ") for kind, text in texts)
    assert not any(text.startswith("Impact start corrected") for _kind, text in texts)
    done = incident.checklist.filter(done_at__isnull=False)
    assert [(i.key, i.done_by) for i in done] == [("detected", commander), ("commander-notified", commander)]


def test_ticking_recovery_verified_without_evidence_is_refused_with_a_message(client, incident, commander):
    client.force_login(commander)
    url = change_url(incident)
    data = form_data(client.get(url))
    data["checklist-6-done"] = "on"  # Recovery verified
    response = client.post(url, data)
    assert response.status_code == 200
    assert "can only be ticked with evidence" in response.content.decode()
    assert incident.checklist.get(key="recovery-verified").done_at is None

    data["checklist-6-evidence_note"] = "Counts match the backup; dashboard loads"
    assert client.post(url, data).status_code == 302
    incident.refresh_from_db()
    assert incident.recovered_at is not None


def test_add_to_timeline_box_and_page_shows_the_timeline_newest_first(client, incident, commander):
    client.force_login(commander)
    client.post(reverse("admin:incidents_incident_timeline", args=[incident.pk]), {"text": "first note"})
    client.post(reverse("admin:incidents_incident_timeline", args=[incident.pk]), {"text": "second note"})
    page = client.get(change_url(incident)).content.decode()
    assert page.index("second note") < page.index("first note")
    assert 'id="rto-clock"' in page and "of 1 h 00 min" in page
    assert "Force logout of all portal users" in page


def test_link_a_job_from_the_incident_page(client, incident, commander, plan_applied):
    from backups.models import BackupRun, Target

    run = BackupRun.objects.create(target=Target.objects.get(name="database"))
    client.force_login(commander)
    client.post(
        reverse("admin:incidents_incident_link_job", args=[incident.pk]), {"kind": "run", "job_id": str(run.pk)}
    )
    assert incident.jobs.get().run == run
    assert f"Linked backup run #{run.pk} (queued)." in incident.timeline.first().text


def test_list_shows_open_incidents_first_with_severity_age_and_rto(client, incident, commander):
    old = Incident.open(title="Old resolved one", severity=Severity.objects.get(key="P3"), user=commander)
    old.change_status("resolved", commander, without_recovery="false alarm")
    newer = Incident.open(title="Newest, resolved", severity=Severity.objects.get(key="P4"), user=commander)
    newer.change_status("resolved", commander, without_recovery="false alarm")
    client.force_login(commander)
    page = client.get(reverse("admin:incidents_incident_changelist")).content.decode()
    assert page.index("Messages table corrupted") < page.index("Newest, resolved")
    assert "severity-badge" in page and "on track" in page
    filtered = client.get(reverse("admin:incidents_incident_changelist") + "?status__exact=resolved").content.decode()
    assert "Messages table corrupted" not in filtered


def test_a_viewer_cannot_change_incidents(client, incident):
    viewer = staff_with("viewer", "view_incident", "view_severity", "view_scenario")
    client.force_login(viewer)
    url = change_url(incident)
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "add-to-timeline" not in html and 'name="_save"' not in html
    assert client.post(url, {"title": "changed", "status": "resolved"}).status_code == 403
    for name in ("timeline", "link_job", "status_update", "submit_report"):
        response = client.post(reverse(f"admin:incidents_incident_{name}", args=[incident.pk]), {"text": "x"})
        assert response.status_code == 403, name
    assert client.get(reverse("admin:incidents_incident_report", args=[incident.pk])).status_code == 200
    incident.refresh_from_db()
    assert incident.status == "detected" and incident.timeline.count() == 1
