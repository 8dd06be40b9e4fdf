"""One duration parser for everything a person types: the plan file, every admin duration field
(objectives, severities, scenarios, probes, drills) and the drill's "mark done" form."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from drportal.plan import parse_duration

MIN = timedelta(minutes=1)
INLINE = {"changes-TOTAL_FORMS": "0", "changes-INITIAL_FORMS": "0"}  # the objective's (read-only) history inline


@pytest.mark.parametrize(
    "text, expected",
    [
        ("45 min", 45 * MIN),
        ("45min", 45 * MIN),
        ("45 minutes", 45 * MIN),
        ("1h30", 90 * MIN),
        ("1h 30m", 90 * MIN),
        ("1 h 30 min", 90 * MIN),
        ("90m", 90 * MIN),
        ("1 day", timedelta(days=1)),
        ("2 days", timedelta(days=2)),
        ("1d12h", timedelta(hours=36)),
        ("1 day, 2 hours", timedelta(hours=26)),
        ("1.5h", 90 * MIN),
        ("30s", timedelta(seconds=30)),
        ("2 weeks", timedelta(days=14)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        # What Django's own inputs show and send back: a form re-saved unchanged must still work.
        ("01:00:00", timedelta(hours=1)),
        ("0:45:00", 45 * MIN),
        ("1 02:00:00", timedelta(days=1, hours=2)),
        ("1 day, 0:00:00", timedelta(days=1)),
        # Negative: parsed, so the model can say why it is wrong for that field ("must be longer than zero").
        ("-5m", -5 * MIN),
        ("-00:00:05", timedelta(seconds=-5)),
    ],
)
def test_durations_people_type(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["45", "", "soon", "1h30x", "-", "h", "1 fortnight", "1:75:00"])
def test_nonsense_is_refused_in_one_line_naming_it(text):
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert "\n" not in message and repr(text) in message and "45 min" in message


@pytest.fixture
def drill(db):
    from drills.models import Drill, TestActivity

    activity = TestActivity.objects.create(
        key="failover", name="Failover Test", cadence="monthly", starts_at=timezone.now() - timedelta(days=40)
    )
    return Drill.objects.create(activity=activity, due_at=timezone.now())


def test_a_drill_is_marked_done_with_45_min(admin_client, drill):
    """Today's main: "Enter a valid duration." for "45 min"."""
    url = reverse("admin:drills_drill_mark_done")
    response = admin_client.post(
        url, {"ids": str(drill.pk), "result": "pass", "measured_rto": "45 min", "measured_rpo": "1h30"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    drill.refresh_from_db()
    assert (drill.measured_rto, drill.measured_rpo) == (45 * MIN, 90 * MIN)


def test_a_bad_duration_in_a_drill_is_a_form_error_in_words(admin_client, drill):
    url = reverse("admin:drills_drill_mark_done")
    response = admin_client.post(url, {"ids": str(drill.pk), "result": "pass", "measured_rto": "soon"})
    assert response.status_code == 200
    assert "is not a duration" in response.content.decode()
    drill.refresh_from_db()
    assert drill.status != "done"


def test_every_admin_duration_field_takes_what_people_type(admin_client, db):
    from backups.models import Objective

    response = admin_client.post(
        reverse("admin:backups_objective_add"),
        {"name": "db", "rpo": "1h30", "grace": "10 min", "enabled": "on", "description": "", **INLINE},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    objective = Objective.objects.get(name="db")
    assert (objective.rpo, objective.grace) == (90 * MIN, 10 * MIN)

    # The change form shows the stored value; saving it unchanged keeps it.
    page = admin_client.get(reverse("admin:backups_objective_change", args=[objective.pk])).content.decode()
    assert 'name="rpo"' in page
    response = admin_client.post(
        reverse("admin:backups_objective_change", args=[objective.pk]),
        {"name": "db", "rpo": "01:30:00", "grace": "00:10:00", "enabled": "on", "description": "", **INLINE},
    )
    assert response.status_code == 302
    objective.refresh_from_db()
    assert objective.rpo == 90 * MIN


def test_the_plan_file_takes_the_same_durations(tmp_path, db):
    from drportal.plan import apply_plan
    from incidents.models import Severity

    plan = tmp_path / "plan.toml"
    plan.write_text('[severities.P1]\nname = "Critical"\ntarget_rto = "1h30"\nreport_due = "1 day"\n')
    apply_plan(plan)
    severity = Severity.objects.get(key="P1")
    assert (severity.target_rto, severity.report_due) == (90 * MIN, timedelta(days=1))


def test_every_duration_field_of_every_admin_form_and_inline_takes_45_min_and_1h30(admin_user, rf):
    """Walk the admin itself: every registered model's form and every inline's formset, so a form added
    tomorrow (or a field declared by hand) cannot bring back "Enter a valid duration."."""
    from django.contrib import admin
    from django.db import models

    from drportal.forms import HumanDurationField

    request = rf.get("/admin/")
    request.user = admin_user
    seen = []
    for model, model_admin in admin.site._registry.items():
        forms = [(model, model_admin.get_form(request))]
        forms += [
            (inline.model, inline.get_formset(request).form) for inline in model_admin.get_inline_instances(request)
        ]
        for form_model, form in forms:
            for name, field in form.base_fields.items():
                try:
                    db_field = form_model._meta.get_field(name)
                except Exception:
                    db_field = None
                if not isinstance(db_field, models.DurationField) and not isinstance(field, HumanDurationField):
                    continue
                where = f"{model._meta.label} form, {form_model._meta.label}.{name}"
                assert isinstance(field, HumanDurationField), f"{where}: {type(field).__name__}"
                assert field.clean("45 min") == 45 * MIN, where
                assert field.clean("1h30") == 90 * MIN, where
                seen.append(f"{form_model._meta.label}.{name}")
    # The duration fields people edit: objectives, severities, scenarios (and their steps), probes, drills.
    for expected in (
        "backups.Objective.rpo",
        "backups.Objective.grace",
        "incidents.Severity.target_rto",
        "incidents.Severity.report_due",
        "incidents.Scenario.target_rto",
        "incidents.Scenario.target_rpo",
        "drportal.Probe.interval",
        "drportal.Probe.timeout",
        "drills.Drill.measured_rto",
    ):
        assert expected in seen, (expected, sorted(set(seen)))
