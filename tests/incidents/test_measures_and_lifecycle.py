"""An incident's measures come from its own scenario's targets; resolving stops the clock, is guarded,
tells the public and resets components; /status/'s banner follows the worst open impact. Over HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from backups.models import BackupRun, Location, Target, Verification
from incidents.models import Incident, Scenario, Severity, StatusComponent
from incidents.services import communicate

pytestmark = pytest.mark.django_db


def verified_run(target: Target, started, *, verified: bool = True) -> BackupRun:
    run = BackupRun.objects.create(
        target=target, status="succeeded", sha256="0" * 64, started_at=started, finished_at=started
    )
    if verified:
        Verification.objects.create(run=run, status="passed", finished_at=started)
    return run


def page(client, incident) -> str:
    response = client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))
    assert response.status_code == 200
    return response.content.decode()


def section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start : html.index("</div>", start)]


def report(client, incident) -> str:
    response = client.get(reverse("admin:incidents_incident_report", args=[incident.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def usr_share(plan_applied):
    target = Target.objects.create(name="usr-share", engine="files", source="env:USR_SHARE")
    target.locations.set([Location.objects.get(name="local")])
    return target


# --- the data-loss window -----------------------------------------------------------------------


def test_a_database_incident_is_unknown_when_only_another_target_has_backups(client, incident, commander, usr_share):
    """The issue: "4 min, from backup run #3 of usr-share" for a database that was never backed up."""
    other = verified_run(usr_share, incident.impact_started_at - timedelta(minutes=4))
    client.force_login(commander)

    html = page(client, incident)
    measures = section(html, "measures")
    assert "unknown (no verified backup of database before impact)" in measures
    assert "usr-share" not in measures and f"#{other.pk}" not in measures and "4 min" not in measures
    assert 'id="rpo-unknown-reason">no verified backup of database before impact<' in html  # the top box
    notice = html[html.index('id="loss-statement"') :]
    notice = notice[: notice.index("</span>")]
    assert "The data-loss window is unknown (no verified backup of database before impact)" in notice

    text = report(client, incident)
    assert "| RPO (data-loss window) | unknown (no verified backup of database before impact) |" in text
    assert "usr-share" not in text and "4 min" not in text
    assert "The data-loss window is unknown (no verified backup of database before impact)" in text


def test_the_window_runs_from_the_newest_verified_copy_of_the_scenarios_targets(client, incident, commander, usr_share):
    impact = incident.impact_started_at
    database = Target.objects.get(name="database")
    good = verified_run(database, impact - timedelta(minutes=40))
    verified_run(database, impact - timedelta(minutes=10), verified=False)  # never verified: not a known copy
    verified_run(database, impact + timedelta(minutes=2))  # after the impact: a copy of the damage
    verified_run(usr_share, impact - timedelta(minutes=4))  # another target: irrelevant
    client.force_login(commander)

    html = page(client, incident)
    measures = section(html, "measures")
    assert "40 min" in measures and f"backup run #{good.pk}" in measures and "of database" in measures
    statement = f"Data written between {good.started_at:%Y-%m-%d %H:%M} UTC and {impact:%Y-%m-%d %H:%M} UTC"
    assert statement in html
    text = report(client, incident)
    assert "| RPO (data-loss window) | 40 min |" in text
    assert f"backup run #{good.pk}" in text and statement in text and "usr-share" not in text


def test_without_a_scenario_or_with_a_scenario_protecting_nothing_the_window_is_unknown_and_says_why(
    client, plan_applied, commander
):
    client.force_login(commander)
    p1 = Severity.objects.get(key="P1")
    bare = Incident.open(title="Something broke", severity=p1, user=commander)
    assert "unknown (no scenario chosen, so it is not known which data is at risk)" in page(client, bare)
    frontend = Incident.open(
        title="Site down", severity=p1, scenario=Scenario.objects.get(key="frontend-failure"), user=commander
    )
    assert "unknown (scenario 3 protects no backed-up target)" in page(client, frontend)


def test_the_plan_links_every_shipped_scenario_to_the_targets_it_protects(plan_applied, admin_client):
    linked = {s.key: sorted(t.name for t in s.targets.all()) for s in Scenario.objects.all()}
    assert linked == {
        "database-corruption": ["database"],
        "backend-failure": ["configuration", "environment"],
        "frontend-failure": [],
        "redis-failure": [],
        "storage-failure": ["knowledge-base"],
        "security-incident": ["configuration", "database", "environment", "knowledge-base"],
    }
    scenario = Scenario.objects.get(key="database-corruption")
    html = admin_client.get(reverse("admin:incidents_scenario_change", args=[scenario.pk])).content.decode()
    assert 'name="targets"' in html


# --- resolving ---------------------------------------------------------------------------------


def change_form_data(incident: Incident, **changes) -> dict:
    """The incident page's form as the browser posts it, with its inline management forms."""
    data = {
        "title": incident.title,
        "severity": incident.severity_id,
        "scenario": incident.scenario_id or "",
        "status": incident.status,
        "resolved_without_recovery": "",
        "customer_facing": "on" if incident.customer_facing else "",
        "public_title": incident.public_title,
        "impact_started_at_0": f"{incident.impact_started_at:%Y-%m-%d}",
        "impact_started_at_1": f"{incident.impact_started_at:%H:%M:%S}",
        "detected_at_0": f"{incident.detected_at:%Y-%m-%d}",
        "detected_at_1": f"{incident.detected_at:%H:%M:%S}",
        "summary": "",
        "root_cause": "",
        "follow_up_actions": "",
        "_continue": "1",
    }
    for prefix, total in (
        ("role_assignments", 0),
        ("role_assignments-2", 0),
        ("checklist", incident.checklist.count()),
        ("steps", incident.steps.count()),
    ):
        data |= {f"{prefix}-TOTAL_FORMS": total, f"{prefix}-INITIAL_FORMS": total, f"{prefix}-MAX_NUM_FORMS": 1000}
    for i, item in enumerate(incident.checklist.all()):
        data[f"checklist-{i}-id"] = item.pk
        data[f"checklist-{i}-incident"] = incident.pk
        if item.done_at:
            data[f"checklist-{i}-done"] = "on"
    for i, step in enumerate(incident.steps.all()):
        data[f"steps-{i}-id"] = step.pk
        data[f"steps-{i}-incident"] = incident.pk
    data.update(changes)
    return data


def test_resolving_in_the_form_needs_recovery_or_a_reason_and_stops_the_rto_clock(client, incident, commander):
    url = reverse("admin:incidents_incident_change", args=[incident.pk])
    client.force_login(commander)

    refused = client.post(url, change_form_data(incident, status="resolved"))
    assert refused.status_code == 200
    assert "cannot be resolved yet: recovery is not verified" in refused.content.decode()
    incident.refresh_from_db()
    assert incident.status == "detected" and incident.resolved_at is None

    done = client.post(url, change_form_data(incident, status="resolved", resolved_without_recovery="false alarm"))
    assert done.status_code == 302, done.content.decode()[:2000]
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolved_without_recovery == "false alarm"
    assert "Resolved without verified recovery: false alarm" in incident.timeline.first().text

    # The clock stopped at resolution: move the resolution back and the measure follows it, not now.
    Incident.objects.filter(pk=incident.pk).update(resolved_at=incident.impact_started_at + timedelta(minutes=7))
    html = page(client, incident)
    assert "7 min (stopped: resolved without verified recovery)" in section(html, "measures")
    text = report(client, incident)
    rto_row = "| RTO (impact → recovery verified or resolved) | 7 min (stopped at resolved without verified recovery"
    assert rto_row in text
    assert "Resolved without verified recovery: false alarm" in text

    # Recovery verified only afterwards does not restart or extend the clock: it ended at resolution.
    incident.refresh_from_db()
    incident.tick_checklist(incident.checklist.get(key="recovery-verified"), commander, evidence_note="checked later")
    assert "7 min (stopped: resolved)" in section(page(client, incident), "measures")


def test_a_resolved_status_update_is_refused_without_recovery_then_resolves_the_incident(client, incident, commander):
    api = StatusComponent.objects.get(name="API")
    communicate.post_update(incident, "API down.", phase="identified", components={"API": "major"}, user=commander)
    url = reverse("admin:incidents_incident_status_update", args=[incident.pk])
    client.force_login(commander)

    response = client.post(
        url, {"message": "All fixed.", "phase": "resolved", f"component-{api.pk}": "operational"}, follow=True
    )
    assert "A “Resolved” update resolves the incident, and it was refused" in response.content.decode()
    incident.refresh_from_db()
    assert incident.is_open
    assert not incident.status_updates.filter(phase="resolved").exists()
    assert StatusComponent.objects.get(pk=api.pk).state == "major"  # nothing changed

    incident.tick_checklist(incident.checklist.get(key="recovery-verified"), commander, evidence_note="counts match")
    response = client.post(url, {"message": "All fixed.", "phase": "resolved", f"component-{api.pk}": "operational"})
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolved_at is not None
    assert incident.status_updates.filter(phase="resolved").count() == 1
    assert StatusComponent.objects.get(pk=api.pk).state == "operational"


def test_resolve_posts_the_public_resolution_and_resets_the_affected_components(client, incident, commander):
    api, whatsapp = StatusComponent.objects.get(name="API"), StatusComponent.objects.get(name="WhatsApp bots")
    communicate.post_update(incident, "API down.", phase="identified", components={"API": "major"}, user=commander)
    StatusComponent.objects.filter(pk=whatsapp.pk).update(state="degraded")  # set by hand, not by this incident
    client.force_login(commander)
    html = page(client, incident)
    offer = section(html, "resolve")
    assert f'value="{api.pk}" checked' in offer and f'value="{whatsapp.pk}">' in offer  # offered, not pre-ticked
    assert "This incident has been resolved." in offer

    url = reverse("admin:incidents_incident_resolve", args=[incident.pk])
    refused = client.post(url, {"message": "Resolved.", "reset": [api.pk]}, follow=True)
    assert "cannot be resolved yet" in refused.content.decode()
    assert Incident.objects.get(pk=incident.pk).is_open and StatusComponent.objects.get(pk=api.pk).state == "major"

    incident.tick_checklist(incident.checklist.get(key="recovery-verified"), commander, evidence_note="counts match")
    response = client.post(url, {"message": "Message history is back.", "reset": [api.pk]})
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == "resolved"
    update = incident.status_updates.get(phase="resolved")
    assert update.message == "Message history is back." and update.component_states == {"API": "operational"}
    assert StatusComponent.objects.get(pk=api.pk).state == "operational"
    assert StatusComponent.objects.get(pk=whatsapp.pk).state == "degraded"

    status = client.get("/status/").content.decode()
    assert "ongoing incident" not in status
    history = status[status.index("Past incidents") :]
    assert "Message history is back." in history and "Resolved" in history


def test_a_resolution_from_the_form_offers_the_public_update_with_one_click(client, incident, commander):
    communicate.post_update(incident, "API down.", phase="identified", components={"API": "major"}, user=commander)
    incident.change_status("resolved", commander, without_recovery="the provider fixed it")
    client.force_login(commander)
    offer = section(page(client, incident), "resolve")
    assert "Publish the resolution" in offer and "This incident has been resolved." in offer
    api = StatusComponent.objects.get(name="API")
    response = client.post(
        reverse("admin:incidents_incident_resolve", args=[incident.pk]),
        {"message": "This incident has been resolved.", "reset": [api.pk]},
    )
    assert response.status_code == 302
    assert incident.status_updates.filter(phase="resolved").exists()
    assert StatusComponent.objects.get(pk=api.pk).state == "operational"
    assert 'id="resolve"' not in page(client, incident)  # offered once: it was published


def test_a_viewer_cannot_resolve(client, incident):
    from .conftest import staff_with

    viewer = staff_with("viewer2", "view_incident")
    client.force_login(viewer)
    response = client.post(
        reverse("admin:incidents_incident_resolve", args=[incident.pk]), {"without_recovery": "x", "message": "y"}
    )
    assert response.status_code == 403
    assert Incident.objects.get(pk=incident.pk).is_open


# --- the status page's banner ----------------------------------------------------------------------


def banner(client) -> str:
    html = client.get("/status/").content.decode()
    start = html.index('class="overall')
    return html[start : html.index("</div>", start)]


def test_an_ongoing_p1_is_never_green_on_the_status_page(client, incident, commander):
    assert StatusComponent.objects.exclude(state="operational").count() == 0
    assert "state-major" in banner(client)  # P1, all components still operational

    Incident.objects.filter(pk=incident.pk).update(severity=Severity.objects.get(key="P2"))
    assert "state-partial" in banner(client)
    StatusComponent.objects.filter(name="API").update(state="major")
    assert "state-major" in banner(client)  # a component's worse state wins

    StatusComponent.objects.filter(name="API").update(state="operational")
    Incident.objects.filter(pk=incident.pk).update(customer_facing=False)  # internal: not on the page
    assert "state-operational" in banner(client) and "All systems operational" in banner(client)
