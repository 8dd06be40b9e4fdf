"""The incident commander's journey, below the browser: opening with the title and severity alone, the
scenario suggested from the title, the working area's one form, and the report flow."""

from __future__ import annotations

import pytest
from django.urls import reverse

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
def test_scenario_suggested_from_the_title(plan, title, expected):
    from incidents.services.opening import suggest_scenarios

    assert suggest_scenarios(title)[0].key == expected


def test_nothing_suggested_for_a_title_that_names_no_scenario(plan):
    from incidents.services.opening import suggest_scenarios

    assert suggest_scenarios("something odd") == []
    assert suggest_scenarios("  ") == []


def test_the_suggestion_url_needs_the_add_permission(plan, client):
    url = reverse("admin:incidents_incident_suggest_scenario") + "?title=redis"
    client.force_login(staff_with("viewer", "view_incident"))
    assert client.get(url).status_code == 403
    client.force_login(staff_with("opener", "view_incident", "add_incident"))
    response = client.get(url)
    assert response.status_code == 200
    assert response.json()["scenarios"][0]["label"] == "Scenario 4: Redis Cache Failure"


def test_open_with_title_and_severity_alone_through_the_admin(plan, client, commander):
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
