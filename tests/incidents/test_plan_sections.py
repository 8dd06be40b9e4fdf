"""applyplan: the plan's severities, six scenarios with every step, checklist, roles, contacts, providers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from drportal.plan import PlanError, apply_plan
from incidents.models import (
    ChecklistItemTemplate,
    Contact,
    Incident,
    ResponseRole,
    Scenario,
    ServiceProvider,
    Severity,
    StatusComponent,
)
from tests.conftest import PLAN

pytestmark = pytest.mark.django_db


def test_plan_creates_four_severities_and_six_scenarios_with_their_steps(plan_applied):
    severities = {s.key: s for s in Severity.objects.all()}
    assert list(severities) == ["P1", "P2", "P3", "P4"]
    assert [s.response_time_display for s in severities.values()] == ["immediate", "< 1 h", "< 4 h", "< 24 h"]
    assert [s.target_rto for s in severities.values()] == [
        timedelta(hours=1),
        timedelta(hours=4),
        timedelta(hours=24),
        timedelta(days=7),
    ]
    assert severities["P1"].name == "Critical" and "Database down" in severities["P1"].examples

    scenarios = list(Scenario.objects.select_related("severity").prefetch_related("steps"))
    assert [(s.number, s.key, s.severity.key, s.steps.count()) for s in scenarios] == [
        (1, "database-corruption", "P1", 7),
        (2, "backend-failure", "P1", 5),
        (3, "frontend-failure", "P2", 3),
        (4, "redis-failure", "P3", 4),
        (5, "storage-failure", "P3", 4),
        (6, "security-incident", "P1", 5),
    ]
    db = scenarios[0]
    assert (db.target_rto, db.target_rpo, db.estimated_recovery) == (
        timedelta(hours=1),
        timedelta(hours=1),
        "30-60 minutes",
    )
    restore = db.steps.get(order=4)
    assert restore.text.splitlines()[0] == "Restore Database"
    # The portal's own restore, with the location filled in from the data when rendered (incidents/runbook.py).
    assert "python manage.py restore RUN_ID --location {location}" in restore.command
    assert scenarios[5].target_rto is None  # "Immediate"
    assert scenarios[2].target_rto == timedelta(minutes=30)


def test_plan_creates_checklist_roles_contacts_providers_and_components(plan_applied):
    items = list(ChecklistItemTemplate.objects.all())
    assert len(items) == 10
    assert [i.key for i in items if i.requires_evidence] == ["recovery-verified"]
    assert [r.name for r in ResponseRole.objects.all()] == [
        "Incident Commander",
        "Technical Lead",
        "Communications Lead",
        "Database Administrator",
    ]
    ceo = Contact.objects.get(key="ceo")
    assert (ceo.title, ceo.email, ceo.phone, ceo.default_role.name, ceo.stakeholder) == (
        "CEO / Incident Commander",
        "ceo@botflow.co.za",
        "",  # BOTFLOW_CEO_PHONE unset: no phone rather than a placeholder
        "Incident Commander",
        True,
    )
    assert Contact.objects.count() == 3
    assert sorted(ServiceProvider.objects.values_list("name", flat=True)) == [
        "Cloudflare",
        "Railway",
        "Sentry",
        "Supabase",
        "Vercel",
    ]
    assert [c.name for c in StatusComponent.objects.all()] == [
        "API",
        "Dashboard / Frontend",
        "WhatsApp bots",
        "Knowledge base",
    ]


# That a second apply changes nothing: tests/core/test_plan.py (one test for every app's sections).


def test_a_runbook_edit_keeps_open_incidents_history(plan_applied, tmp_path, commander):
    incident = Incident.open(
        title="corrupt",
        severity=Severity.objects.get(key="P1"),
        scenario=Scenario.objects.get(key="database-corruption"),
        user=commander,
    )
    edited = tmp_path / "edited.toml"
    edited.write_text(PLAN.read_text().replace('text = "Assess the Damage"', 'text = "Assess the damage first"'))
    changes = apply_plan(edited)
    assert "replaced 7 steps of scenario database-corruption" in changes
    assert Scenario.objects.get(key="database-corruption").steps.get(order=1).text == "Assess the damage first"
    assert incident.steps.get(order=1).text == "Assess the Damage"  # the incident's own copy


def test_a_scenario_naming_an_unknown_severity_is_refused(plan_applied, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenarios.x]\ntitle = "X"\nseverity = "P9"\n')
    with pytest.raises(PlanError, match=r"\[scenarios.x\] key 'severity': no severity 'P9'"):
        apply_plan(bad)
