"""Plan as code both ways: plans/botflow.toml applies idempotently; exportplan renders it back, with live figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from backups.models import Location, Objective, Verification
from backups.services import backup, verify
from drills.models import Drill, PlanDocument, TestActivity
from drills.services import schedule
from incidents.models import Contact, Scenario, ServiceProvider, Severity

pytestmark = pytest.mark.django_db


# That the plan applies twice with the same result: tests/core/test_plan.py (one test for every app's sections).


def test_the_shipped_plan_makes_nine_tests_and_the_plan_document(plan_applied):
    # The DR Plan Review is the plan document's own review (one next-review date), not a tenth test.
    tests = list(TestActivity.objects.values_list("name", "cadence"))
    assert tests == [
        ("Backup Verification", "monthly"),
        ("Failover Test", "monthly"),
        ("Security Test", "monthly"),
        ("Full DR Drill", "quarterly"),
        ("Load Test", "quarterly"),
        ("Penetration Test", "quarterly"),
        ("Multi-Region Failover", "annual"),
        ("Compliance Audit", "annual"),
        ("Business Continuity Test", "annual"),
    ]
    verification = TestActivity.objects.get(key="backup-verification")
    assert verification.automated and verification.target.name == "database"
    assert TestActivity.objects.get(key="full-dr-drill").scenario.key == "backend-failure"

    document = PlanDocument.objects.get(key="botflow-dr-plan")
    assert (document.version, document.owner, document.review_cadence) == ("1.0", "DevOps Team", "quarterly")
    assert str(document.last_reviewed_at) == "2026-01-17" and str(document.next_review_at) == "2026-04-17"
    assert list(document.change_log.values_list("date", "version", "changes", "author")) == [
        (datetime(2026, 1, 17).date(), "1.0", "Initial disaster recovery plan", "DevOps Team")
    ]


def test_each_of_the_nine_tests_gets_its_next_occurrence(plan_applied):
    def utc(*args):
        return datetime(*args, tzinfo=UTC)

    created = schedule.ensure_next_occurrences(utc(2026, 12, 20))
    due = {d.activity.key: d.due_at for d in created}
    assert due == {
        "backup-verification": utc(2027, 1, 1, 4),  # over the year end
        "failover-test": utc(2027, 1, 8, 9),
        "security-test": utc(2027, 1, 15, 9),
        "full-dr-drill": utc(2027, 1, 10, 9),
        "load-test": utc(2027, 1, 3, 9),
        "penetration-test": utc(2027, 1, 24, 9),
        "multi-region-failover": utc(2027, 6, 15, 9),
        "compliance-audit": utc(2027, 7, 1, 9),
        "business-continuity-test": utc(2027, 9, 15, 9),
    }
    assert schedule.ensure_next_occurrences(utc(2026, 12, 20)) == []
    # The Full DR Drill is measured against its scenario's targets.
    full = Drill.objects.get(activity__key="full-dr-drill")
    assert full.target_rto == timedelta(hours=1)


def ensure_incident_rows() -> None:
    """The seed's incident-response rows, for a plan file that does not (yet) define them."""
    if Severity.objects.filter(key="P1").exists():
        return
    p1 = Severity.objects.create(
        key="P1",
        name="Critical",
        description="Complete outage, data loss",
        target_rto=timedelta(hours=1),
        examples="Database down, API unavailable",
    )
    scenario = Scenario.objects.create(
        key="backend-failure", number=2, title="Complete Backend Failure", severity=p1, target_rto=timedelta(hours=1)
    )
    scenario.steps.create(order=1, text="Assess the Failure", command="railway status")
    Contact.objects.create(
        name="[Name]", title="CTO / Technical Lead", phone="+27 xx xxx xxxx", email="cto@botflow.co.za"
    )
    ServiceProvider.objects.create(
        name="Supabase", service="Database", support_url="https://supabase.com/support", contact="support@supabase.com"
    )


def export() -> str:
    out = StringIO()
    call_command("exportplan", stdout=out)
    return out.getvalue()


def test_exportplan_renders_every_section_with_the_seed_values(plan_applied, tmp_path):
    ensure_incident_rows()
    text = export()
    for heading in (
        "# BotFlow Disaster Recovery Plan",
        "## Overview",
        "## Recovery Objectives",
        "### RTO (Recovery Time Objective)",
        "### RPO (Recovery Point Objective)",
        "## Backup Strategy",
        "## Recovery Procedures",
        "## Incident Response",
        "### Incident Severity Levels",
        "### Incident Response Team",
        "### Communication Protocol",
        "## Testing Schedule",
        "### Monthly Tests",
        "### Quarterly Tests",
        "### Annual Tests",
        "## Contact Information",
        "### Service Providers",
        "## Document Change Log",
        "## Next Review Date",
    ):
        assert heading in text, heading
    for value in (
        "**Version:** 1.0",
        "**Last Updated:** 2026-01-17",
        "**Owner:** DevOps Team",
        "**Review Schedule:** Quarterly",
        "This document outlines the disaster recovery procedures for BotFlow",
        "| **Critical** (P1) | 1 hour | Complete outage, data loss |",
        "| **database** | Database: 1 hour (daily + WAL archiving). | 1 hour | database: 0 * * * *",
        "| **logs** |",
        "5 minutes",
        "s3://botflow-backups/archive",
        "| 365 days |",
        "### Scenario 2: Complete Backend Failure",
        "railway status",
        "**P1 - Critical**",
        "| **Backup Verification** | Restore backup to test environment. | Monthly | the portal (restore test) |",
        "| **Compliance Audit** | POPIA compliance review. | Annual |",
        "cto@botflow.co.za",
        "| Supabase | Database | https://supabase.com/support | support@supabase.com |",
        "| 2026-01-17 | 1.0 | Initial disaster recovery plan | DevOps Team |",
        "**Scheduled Review:** 2026-04-17 (3 months)",
        "devops@botflow.co.za",
    ):
        assert value in text, value
    assert "never performed" in text

    path = tmp_path / "plan.md"
    call_command("exportplan", "--format", "md", "--output", str(path), stderr=StringIO())
    assert path.read_text().startswith("# BotFlow Disaster Recovery Plan")


def test_exportplan_shows_live_figures_after_a_backup_and_a_restore_test(plan_applied, source_db, make_target):
    ensure_incident_rows()
    # The plan's own "local" location (a folder under the test's tmp_path).
    target = make_target("botflow-db", source_db, [Location.objects.get(name="local")])
    objective = Objective.objects.create(name="botflow-db", rpo=timedelta(hours=1), description="Live database")
    objective.targets.set([target])
    before = export()
    assert (
        "| **botflow-db** | Live database | 1 hour | botflow-db: not scheduled | "
        "not safe: no verified copy yet (data at risk now: no good copy)" in before
    )

    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    check = verify.verify(verify.start_verification(run, kind=Verification.Kind.RESTORE_TEST, trigger="command"))
    assert check.ok, check.checks

    after = export()
    row = next(line for line in after.splitlines() if line.startswith("| **botflow-db** |"))
    assert "| Ok (data at risk now:" in row
    assert f"botflow-db: run #{run.pk} at {run.started_at:%Y-%m-%d %H:%M} UTC" in row
    assert f"- Last restore test: passed (botflow-db run #{run.pk}" in after
