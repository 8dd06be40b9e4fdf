"""/status/: public (no login), read-only, shows only what customers may read; updates reach stakeholders."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from alerts.models import Notification
from incidents.models import Incident, Severity, StatusComponent
from incidents.services import communicate
from tests.conftest import WEBHOOK_PATH, posted

pytestmark = pytest.mark.django_db


def test_status_page_shows_an_open_incident_and_hides_internal_notes(client, incident, commander):
    incident.add_note("INTERNAL: the DBA dropped the index by hand", commander)
    Incident.objects.filter(pk=incident.pk).update(summary="SECRET SUMMARY", root_cause="SECRET ROOT CAUSE")
    communicate.post_update(
        incident,
        "We are restoring message history from backup.",
        phase="identified",
        components={"API": "major"},
        user=commander,
    )
    Incident.open(title="Internal only: disk alert", severity=Severity.objects.get(key="P4"), user=commander)

    response = client.get("/status/")
    assert response.status_code == 200  # anonymous
    page = response.content.decode()
    assert "Messages table corrupted" in page
    assert "We are restoring message history from backup." in page
    assert "Identified" in page and "Major outage" in page
    for secret in ("INTERNAL", "SECRET SUMMARY", "SECRET ROOT CAUSE", "Internal only", "Incident opened as"):
        assert secret not in page
    assert client.post("/status/").status_code == 405  # read-only


def test_resolved_incidents_move_to_the_history(client, incident, commander):
    Incident.objects.filter(pk=incident.pk).update(public_title="Message history unavailable")
    incident.refresh_from_db()
    incident.change_status("resolved", commander, without_recovery="no data was affected")
    page = client.get("/status/").content.decode()
    assert "All systems operational" in page
    assert "Past incidents" in page and "Message history unavailable" in page
    assert "Messages table corrupted" not in page  # the public title replaces the internal one


def test_an_update_emails_stakeholders_and_posts_to_the_webhook_with_results_recorded(
    incident, commander, webhook, deliver_alerts
):
    from alerts.models import Channel
    from drportal.plan import applying

    Channel.objects.filter(name="incidents-slack").update(enabled=True)
    channel = Channel.objects.get(name="incidents-slack")
    channel.webhook_url = webhook.url(WEBHOOK_PATH)
    with applying():  # the plan's channel: as the plan's ${...} variable would set it (edits elsewhere are refused)
        channel.save()
    update, records = communicate.post_update(
        incident, "Investigating slow message delivery.", components={"WhatsApp bots": "degraded"}, user=commander
    )
    assert StatusComponent.objects.get(name="WhatsApp bots").state == "degraded"
    assert {r.status for r in records} == {"pending"}  # queued: the commander does not wait for mail servers
    deliver_alerts()
    records = list(Notification.objects.filter(pk__in=[r.pk for r in records]))
    assert update.component_states == {"WhatsApp bots": "degraded"}
    stakeholders = sorted(m.to[0] for m in mail.outbox if "Investigating slow" in m.body)
    assert "ceo@botflow.co.za" in stakeholders and "cto@botflow.co.za" in stakeholders
    assert posted(webhook) and "Investigating slow message delivery." in posted(webhook)[0]["text"]
    assert {r.channel for r in records} >= {"stakeholder:ceo@botflow.co.za", "incidents-slack"}
    assert all(r.status == "delivered" and r.object_ref == f"incident:{incident.pk}" for r in records)

    webhook.default = 500
    _update, records = communicate.post_update(incident, "Still investigating.", user=commander)
    deliver_alerts()
    failed = list(Notification.objects.filter(pk__in=[r.pk for r in records], status=Notification.Status.RETRYING))
    assert [r.channel for r in failed] == ["incidents-slack"] and "HTTP 500" in failed[0].last_error
    assert "incidents-slack FAILED (webhook answered HTTP 500)" in incident.timeline.first().text


def test_status_update_from_the_incident_page(client, incident, commander):
    client.force_login(commander)
    api = StatusComponent.objects.get(name="API")
    response = client.post(
        reverse("admin:incidents_incident_status_update", args=[incident.pk]),
        {"message": "API errors are elevated.", "phase": "investigating", f"component-{api.pk}": "partial"},
    )
    assert response.status_code == 302
    assert incident.status_updates.get().message == "API errors are elevated."
    assert StatusComponent.objects.get(pk=api.pk).state == "partial"
