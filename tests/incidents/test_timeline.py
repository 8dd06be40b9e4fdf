"""Incidents: opening snapshots the runbook; every change goes on the timeline; evidence for recovery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from backups.models import Restore
from backups.services import backup
from backups.services import restore as restores
from incidents.models import Contact, ResponseRole, ScenarioStep, Severity, TimelineEntry

pytestmark = pytest.mark.django_db


def kinds(incident) -> list[tuple[str, str]]:
    return [(e.kind, e.text) for e in incident.timeline.order_by("at", "id")]


def test_opening_snapshots_the_scenarios_steps_and_the_checklist(incident):
    assert [s.text for s in incident.steps.all()][:2] == ["Assess the Damage", "List Available Backups"]
    assert incident.steps.count() == 7 and incident.checklist.count() == 10
    assert incident.checklist.get(key="recovery-verified").requires_evidence
    assert "Incident opened as P1 – Critical" in incident.timeline.get().text

    # Editing the runbook afterwards does not rewrite the incident's copy.
    ScenarioStep.objects.filter(scenario=incident.scenario, order=1).update(text="Something else")
    assert incident.steps.get(order=1).text == "Assess the Damage"


def test_status_changes_set_their_timestamps_and_write_the_timeline(incident, commander):
    assert incident.change_status("investigating", commander)
    assert not incident.change_status("investigating", commander)  # no change, no entry
    assert incident.acknowledged_at is not None
    incident.change_status("recovering", commander)
    incident.change_status("resolved", commander, without_recovery="the index rebuilt itself")
    assert incident.report_due_at == incident.resolved_at + timedelta(hours=24)
    incident.change_status("closed", commander)
    assert incident.closed_at is not None
    entries = [t for k, t in kinds(incident) if k == "status"][1:]
    assert entries[:3] == ["Status: detected → investigating.", "Status: investigating → recovering.", entries[2]]
    assert entries[2].startswith("Status: recovering → resolved. Post-incident report due")
    assert entries[3] == "Status: resolved → closed."
    assert all(e.author == commander for e in incident.timeline.filter(kind="status")[:4])


def test_severity_change_writes_the_timeline(incident, commander):
    incident.change_severity(Severity.objects.get(key="P2"), commander)
    assert ("severity", "Severity: P1 – Critical → P2 – High.") in kinds(incident)


def test_role_hand_off_keeps_history(incident, commander):
    ic = ResponseRole.objects.get(name="Incident Commander")
    ceo, cto = Contact.objects.get(key="ceo"), Contact.objects.get(key="cto")
    first = incident.assign_role(ic, contact=ceo, by=commander)
    second = incident.assign_role(ic, contact=cto, by=commander)
    incident.assign_role(ResponseRole.objects.get(name="Technical Lead"), person=commander, by=commander)
    first.refresh_from_db()
    assert first.ended_at == second.started_at and second.ended_at is None
    assert [a.role.name for a in incident.current_roles()] == ["Incident Commander", "Technical Lead"]
    roles = [t for k, t in kinds(incident) if k == "role"]
    assert roles == [
        f"Incident Commander: {ceo}.",
        f"Incident Commander: {cto} (was {ceo}).",
        "Technical Lead: commander.",
    ]
    with pytest.raises(ValidationError):
        incident.assign_role(ic, by=commander)


def test_checklist_ticks_and_steps_write_the_timeline(incident, commander):
    item = incident.checklist.get(key="detected")
    incident.tick_checklist(item, commander)
    assert item.done_by == commander and item.done_at
    step = incident.steps.get(order=1)
    incident.complete_step(step, commander)
    assert ("checklist", "Checklist ✓ Incident detected and severity assessed.") in kinds(incident)
    assert ("step", "Runbook step 1 done: Assess the Damage") in kinds(incident)


def test_recovery_verified_needs_evidence(incident, commander):
    item = incident.checklist.get(key="recovery-verified")
    with pytest.raises(ValidationError, match="can only be ticked with evidence"):
        incident.tick_checklist(item, commander)
    item.refresh_from_db()
    assert item.done_at is None and incident.recovered_at is None
    incident.tick_checklist(item, commander, evidence_note="Dashboard loads; message counts match")
    assert incident.recovered_at == item.done_at
    assert "evidence: Dashboard loads" in incident.timeline.filter(kind="checklist").first().text


def test_a_linked_restore_writes_system_entries_and_verifies_recovery(
    incident, commander, source_db, plan_location, make_target, scratch_db_name
):
    target = make_target("botflow-db", source_db, [plan_location])
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    record = Restore.objects.create(run=run, source=str(run.pk), location=plan_location, triggered_by=commander)
    incident.link_job(restore=record, user=commander)
    from tests.conftest import pg_url

    restores.execute(record, to=pg_url(scratch_db_name("drp_incident")))
    record.refresh_from_db()
    assert record.status == "succeeded", record.error

    system = [t for k, t in kinds(incident) if k == "system"]
    assert system[0] == f"Linked restore #{record.pk} (queued)."
    assert system[1].startswith(f"Restore #{record.pk} into") and system[1].endswith("started.")
    assert system[2].endswith("succeeded.")
    incident.refresh_from_db()
    assert incident.recovered_at == record.finished_at
    item = incident.checklist.get(key="recovery-verified")
    assert item.evidence_restore == record and item.done_at


def test_a_failed_linked_backup_is_a_system_entry(incident, commander, plan_location, make_target):
    target = make_target("gone-db", "postgresql://postgres@127.0.0.1:5432/drp_does_not_exist", [plan_location])
    run = backup.start_backup(target, trigger="command")
    incident.link_job(run=run, user=commander)
    backup.execute(run)
    run.refresh_from_db()
    assert run.status == "failed"
    texts = [t for k, t in kinds(incident) if k == TimelineEntry.Kind.SYSTEM]
    assert texts[1] == f"Backup run #{run.pk} of gone-db started."
    assert texts[2].startswith(f"Backup run #{run.pk} of gone-db FAILED: ")


def test_time_since_impact_and_rto_state(incident):
    assert incident.rto_state == "on track"
    incident.impact_started_at = timezone.now() - timedelta(minutes=50)
    assert incident.rto_state == "at risk"
    incident.impact_started_at = timezone.now() - timedelta(minutes=70)
    assert incident.rto_state == "breached"
