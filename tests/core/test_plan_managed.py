"""Plan-managed rows: the plan file is their one place of change (choice (a) of issue #14).

applyplan records which rows and fields it sets; an edit to one of them anywhere else (the admin by a
DevOps user posting by hand, the ORM as a command or a view would do it) is refused with "managed by
<file>: change it there and run applyplan"; their admin pages say "Managed by the plan file"; a row
the file no longer lists is released."""

from __future__ import annotations

import textwrap

import pytest
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse

from backups.models import Location, Objective, Target
from drportal import roles
from drportal.models import PlanManaged
from drportal.plan import PlanManagedError
from tests.conftest import ROOT, role_client

pytestmark = pytest.mark.django_db

REFUSAL = "change it there and run applyplan"


def plan_text(tmp_path, *, with_target: bool = True) -> str:
    target = (
        """
        [targets.db]
        engine = "postgresql"
        source = "env:PLAN_DB_URL"
        locations = ["disk"]
        schedule = "0 2 * * *"

        [objectives.database]
        rpo = "1 day"
        targets = ["db"]
        """
        if with_target
        else ""
    )
    return textwrap.dedent(
        f"""
        [locations.disk]
        url = "file://{tmp_path}/backups"
        retention_days = 7

        [severities.P1]
        name = "Critical"
        description = "Complete outage"
        response_time = "immediate"
        target_rto = "1h"
        report_due = "24h"
        color = "#c0392b"
        order = 1
        {target}
        """
    )


@pytest.fixture
def applied(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(plan_text(tmp_path))
    call_command("applyplan", str(path))
    return path


def target_post(target: Target, **changes) -> dict:
    data = {
        "name": target.name,
        "engine": target.engine,
        "source": "",  # blank: the stored source is kept
        "locations": [loc.pk for loc in target.locations.all()],
        "enabled": "on",
        "schedule": target.schedule,
        "timezone": target.timezone,
        "compression": target.compression,
        "compression_level": "",
        "queue": target.queue,
        "description": target.description,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_applyplan_records_what_it_manages(applied):
    target = Target.objects.get(name="db")
    record = PlanManaged.objects.get(object_id=target.pk, content_type__model="target")
    assert record.file == str(applied)  # outside the project: as applyplan was given it
    assert {"name", "engine", "source", "schedule", "queue", "locations", "enabled"} <= set(record.fields)
    assert PlanManaged.objects.count() == 4  # location, severity, target, objective
    call_command("applyplan", str(applied))  # a second apply changes nothing and keeps the records
    assert PlanManaged.objects.count() == 4


def test_a_devops_users_hand_typed_edit_is_refused_and_the_page_says_why(applied):
    target = Target.objects.get(name="db")
    client = role_client(roles.DEVOPS)
    url = reverse("admin:backups_target_change", args=[target.pk])
    page = client.get(url).content.decode()
    assert f"Managed by the plan file {applied}" in page

    response = client.post(url, {"csrfmiddlewaretoken": client.token, **target_post(target, schedule="30 3 * * *")})
    assert response.status_code == 200
    html = response.content.decode()
    assert f"managed by {applied}: {REFUSAL}" in html and "errorlist" in html
    target.refresh_from_db()
    assert target.schedule == "0 2 * * *"

    # The locations (set by the plan too) and the source (a secret field) are refused just the same.
    other = Location.objects.create(name="other", url=f"file://{applied.parent}/other")
    response = client.post(url, {"csrfmiddlewaretoken": client.token, **target_post(target, locations=[other.pk])})
    assert response.status_code == 200 and REFUSAL in response.content.decode()
    assert list(target.locations.values_list("name", flat=True)) == ["disk"]
    response = client.post(url, {"csrfmiddlewaretoken": client.token, **target_post(target, source="env:OTHER")})
    assert response.status_code == 200 and REFUSAL in response.content.decode()
    target.refresh_from_db()
    assert target.source == "env:PLAN_DB_URL"

    # Saving the page unchanged is fine (nothing the plan sets differs).
    response = client.post(url, {"csrfmiddlewaretoken": client.token, **target_post(target)})
    assert response.status_code == 302, response.content.decode()[:3000]


def test_other_apps_plan_rows_are_marked_and_guarded_too(applied):
    from incidents.models import Severity

    severity = Severity.objects.get(key="P1")
    client = role_client(roles.DEVOPS)  # DevOps may only view incidents' configuration: still marked
    page = client.get(reverse("admin:incidents_severity_change", args=[severity.pk])).content.decode()
    assert "Managed by the plan file" in page
    severity.name = "Catastrophic"
    with pytest.raises(PlanManagedError, match=REFUSAL):
        severity.save()


def test_the_model_layer_refuses_edits_from_any_other_way_in(applied):
    target = Target.objects.get(name="db")
    target.schedule = "*/5 * * * *"
    with pytest.raises(PlanManagedError) as refused:
        target.save()
    assert refused.value.message_dict == {"schedule": [f"managed by {applied}: {REFUSAL}"]}
    with pytest.raises(PlanManagedError, match="run applyplan"), transaction.atomic():
        Target.objects.get(name="db").locations.clear()
    assert Target.objects.get(name="db").locations.count() == 1
    objective = Objective.objects.get(name="database")
    # What the row itself keeps track of (its state, exposure) is not the plan's: saved as usual.
    objective.state = Objective.State.BREACHED
    objective.save()
    objective.rpo = objective.rpo * 2
    with pytest.raises(PlanManagedError):
        objective.save()
    assert Target.objects.get(name="db").schedule == "0 2 * * *"


def test_rows_made_in_the_admin_stay_editable(applied, local_location):
    target = Target.objects.create(name="adhoc", engine="postgresql", source="env:X")
    target.locations.set([local_location])
    client = role_client(roles.DEVOPS)
    url = reverse("admin:backups_target_change", args=[target.pk])
    assert "Managed by the plan file" not in client.get(url).content.decode()
    response = client.post(url, {"csrfmiddlewaretoken": client.token, **target_post(target, schedule="0 4 * * *")})
    assert response.status_code == 302
    assert Target.objects.get(name="adhoc").schedule == "0 4 * * *"


def test_a_row_the_plan_no_longer_lists_is_released(applied, tmp_path, capsys):
    applied.write_text(plan_text(tmp_path, with_target=False))
    call_command("applyplan", str(applied))
    assert "released 2 object(s) the plan file no longer lists" in capsys.readouterr().out
    target = Target.objects.get(name="db")
    target.schedule = "0 5 * * *"
    target.save()  # the plan no longer manages it
    assert Target.objects.get(name="db").schedule == "0 5 * * *"


def test_the_shipped_plan_is_named_as_people_know_it(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKUP_LOCAL_DIR", str(tmp_path))
    call_command("applyplan", str(ROOT / "plans" / "botflow.toml"))
    target = Target.objects.get(name="database")
    client = role_client(roles.DEVOPS)
    page = client.get(reverse("admin:backups_target_change", args=[target.pk])).content.decode()
    assert "Managed by the plan file plans/botflow.toml" in page
    response = client.post(
        reverse("admin:backups_target_change", args=[target.pk]),
        {"csrfmiddlewaretoken": client.token, **target_post(target, description="edited by hand")},
    )
    assert "managed by plans/botflow.toml: change it there and run applyplan" in response.content.decode()


def test_a_scenarios_steps_from_the_plan_are_shown_not_edited(monkeypatch, tmp_path):
    from incidents.models import Scenario

    monkeypatch.setenv("BACKUP_LOCAL_DIR", str(tmp_path))
    call_command("applyplan", str(ROOT / "plans" / "botflow.toml"))
    scenario = Scenario.objects.filter(steps__isnull=False).first()
    steps = list(scenario.steps.values_list("text", flat=True))
    client = role_client(roles.INCIDENT_COMMANDER)  # may change scenarios
    url = reverse("admin:incidents_scenario_change", args=[scenario.pk])
    page = client.get(url).content.decode()
    assert "Managed by the plan file plans/botflow.toml" in page
    assert steps[0][:40] in page and 'name="steps-0-text"' not in page  # shown, no input
    # A hand-typed POST of a changed step does nothing to the plan's steps.
    client.post(
        url,
        {
            "csrfmiddlewaretoken": client.token,
            "steps-TOTAL_FORMS": "1",
            "steps-INITIAL_FORMS": "1",
            "steps-0-id": scenario.steps.first().pk,
            "steps-0-scenario": scenario.pk,
            "steps-0-text": "rm -rf /",
        },
    )
    assert list(scenario.steps.values_list("text", flat=True)) == steps
