"""The living plan renders the portal's own procedures: real commands with the data's target and location
names, no seed placeholders, one next-review date, and the dashboard's words for every RPO state."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from backups.models import Location, Objective
from backups.services import rpo
from drportal.plan import PlanError, apply_plan

pytestmark = pytest.mark.django_db

SEED_PLACEHOLDERS = (
    "restore-database.sh",
    "botflow_backup_20260117_020000",
    "ls -lh /backups/botflow/",
    "Phase 2 Week 6 Day 7",
    "[Name]",
    "+27 xx xxx xxxx",
    "Claude",
    "manual intervention or custom script",
    "/path/to/",
    "your-org",
    "DEPLOYMENT_GUIDE.md",
    "<password>",
)


def export() -> str:
    out = StringIO()
    call_command("exportplan", stdout=out)
    return out.getvalue()


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = re.search(r"\n### |\n## ", text[start + len(heading) :])
    return text[start : start + len(heading) + (following.start() if following else len(text))]


def test_the_shipped_plan_has_no_seed_placeholder_and_scenario_one_names_manage_py_restore(plan_applied):
    text = export()
    for placeholder in SEED_PLACEHOLDERS:
        assert placeholder not in text, placeholder

    scenario = section(text, "### Scenario 1: Database Corruption or Data Loss")
    # The real commands, with the target and each of its locations from the data.
    assert "python manage.py listbackups --target database --limit 10" in scenario
    assert "python manage.py restore RUN_ID --location local" in scenario
    assert "python manage.py restore RUN_ID --location s3-daily" in scenario
    assert "python manage.py verify RUN_ID" in scenario
    assert "RECOVERY.md" in scenario
    assert f"ls -lt {plan_applied}/botflow/database/*/*/*/*.age" in scenario
    assert "aws s3 ls --recursive s3://botflow-backups/daily/database/" in scenario
    assert "{target}" not in text and "{location}" not in text and "{copies}" not in text

    # Scenario 5: the portal backs the knowledge base up, so the plan says how to restore it.
    storage = section(text, "### Scenario 5: Supabase Storage Failure")
    assert "python manage.py restore RUN_ID --location s3-daily --to s3://BUCKET/restored-knowledge-base/" in storage
    assert "python manage.py listbackups --target knowledge-base" in storage
    # Scenario 6 restores every target it puts at risk.
    security = section(text, "### Scenario 6: Security Incident")
    for target in ("configuration", "database", "environment", "knowledge-base"):
        assert f"python manage.py listbackups --target {target} --limit 10" in security


def test_commands_follow_the_data_when_a_location_is_added(plan_applied, tmp_path):
    from backups.models import Target
    from drportal.plan import applying

    extra = Location.objects.create(name="offsite", url=f"file://{tmp_path}/offsite")
    with applying():  # as a plan file that adds the location would (an edit elsewhere is refused)
        Target.objects.get(name="database").locations.add(extra)
    scenario = section(export(), "### Scenario 1: Database Corruption or Data Loss")
    assert "python manage.py restore RUN_ID --location offsite" in scenario
    assert f"ls -lt {tmp_path}/offsite/database/*/*/*/*.age" in scenario


def test_one_next_review_date(plan_applied):
    text = export()
    scheduled = next(line for line in text.splitlines() if line.startswith("**Scheduled Review:**"))
    assert scheduled == "**Scheduled Review:** 2026-04-17 (3 months) **OVERDUE**"
    review_rows = [line for line in text.splitlines() if "Review" in line and line.startswith("| **")]
    assert review_rows == [
        "| **Review: BotFlow Disaster Recovery Plan** | Review this plan and sign the review off in the portal "
        "(Plan reviews). | Quarterly | DevOps Team | - | reviewed on 2026-01-17 | 2026-04-17 **OVERDUE** |"
    ]
    assert "DR Plan Review" not in text  # no second schedule for the same review


def test_every_rpo_state_in_the_export_is_the_dashboards(plan_applied, admin_client):
    """Today's main: the export said UNKNOWN for a never-pinged objective the dashboard called breached."""
    rpo.evaluate()
    text = export()
    html = admin_client.get(reverse("admin:index")).content.decode()
    for objective in Objective.objects.all():
        row = html[html.index(f'data-objective="{objective.name}"') :]
        row = row[: row.index("</tr>")]
        shown = re.search(r'<span class="rpo-state[^>]*>([^<]+)</span>', row).group(1)
        line = next(line for line in text.splitlines() if line.startswith(f"| **{objective.name}** |"))
        assert f"| {shown} (data at risk now:" in line, (objective.name, shown, line)
    assert "UNKNOWN" not in text
    logs = next(line for line in text.splitlines() if line.startswith("| **logs** |"))
    assert "not safe: never fed: no ping received yet" in logs


def test_an_incident_gets_the_rendered_commands(plan_applied):
    from django.contrib.auth.models import User

    from incidents.models import Incident, Scenario, Severity

    user = User.objects.create_superuser("ic", "ic@example.com", "pw")
    incident = Incident.open(
        title="Database corrupted",
        severity=Severity.objects.get(key="P1"),
        scenario=Scenario.objects.get(key="database-corruption"),
        user=user,
    )
    commands = "\n".join(incident.steps.values_list("command", flat=True))
    assert "python manage.py restore RUN_ID --location s3-daily" in commands
    assert "{target}" not in commands and "{location}" not in commands


def test_an_unknown_placeholder_in_a_step_is_refused_by_name(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        """
[severities.P1]
name = "Critical"
target_rto = "1h"

[scenarios.db]
number = 1
title = "Database"
severity = "P1"

[[scenarios.db.steps]]
text = "Restore"
command = "python manage.py restore RUN_ID --location {locaton}"
"""
    )
    with pytest.raises(PlanError, match=r"scenarios\.db\.steps.*unknown placeholder\(s\) locaton"):
        apply_plan(plan)


def test_an_unknown_placeholder_typed_in_the_admin_is_a_form_error(plan_applied):
    from django.core.exceptions import ValidationError

    from incidents.models import Scenario, ScenarioStep

    scenario = Scenario.objects.get(key="database-corruption")
    step = ScenarioStep(scenario=scenario, order=99, text="x", command="{targets}")
    with pytest.raises(ValidationError, match=r"Unknown placeholder\(s\) targets"):
        step.full_clean()
