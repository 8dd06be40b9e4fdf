"""Every admin page of every registered model, opened by every role over HTTP: no 500s, no secrets.

One object of each model is made (the shipped plan gives most of them), then each role user
(not a superuser) opens every changelist, every add page and every object's change page.
"""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

TARGET_PASSWORD = "t4rget-pw-9c1f"
KEY_SECRET = "loc-secret-5b2e"
WEBHOOK_SECRET = "T000/B000/hook-secret-77aa"


@pytest.fixture
def one_of_everything(tmp_path, people, local_location, make_target, plan_applied):
    """The shipped plan, then one object of each model the plan does not make."""
    import sqlite3

    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django_celery_beat.models import ClockedSchedule, IntervalSchedule, SolarSchedule

    from alerts.models import Channel, Notification
    from backups.models import BackupRun, Location, Objective, ObjectiveChange, Restore, Target
    from backups.services import backup, verify
    from drills.models import Drill, Finding, PlanDocument, PlanReview, TestActivity
    from drportal.models import Heartbeat, Probe, ProbeChange
    from incidents.models import Incident, Scenario, Severity, StatusUpdate

    db = tmp_path / "app.sqlite3"
    sqlite3.connect(db).execute("CREATE TABLE t (id INTEGER PRIMARY KEY)").connection.close()
    target = make_target("app", f"sqlite:///{db}", [local_location], engine="sqlite")
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == BackupRun.Status.SUCCEEDED, run.error
    verify.verify(verify.start_verification(run, kind="integrity", trigger="command"))
    Restore.objects.create(source=str(run.pk), run=run, status="failed", error="example")
    Target.objects.create(name="secret-db", engine="postgresql", source=f"postgresql://u:{TARGET_PASSWORD}@db/x")
    Location.objects.create(
        name="s3-keys", url="s3://bucket/x", access_key_id="AKIAEXAMPLE", secret_access_key=KEY_SECRET
    )
    Channel.objects.create(
        name="hook", kind="webhook", webhook_url=f"https://hooks.example.com/services/{WEBHOOK_SECRET}"
    )
    objective = Objective.objects.filter(ping=True).first()
    ObjectiveChange.objects.create(objective=objective, at=timezone.now(), from_state="unknown", to_state="ok")
    probe = Probe.objects.create(name="api", url="https://api.example.com/health")
    ProbeChange.objects.create(probe=probe, at=timezone.now(), from_state="unknown", to_state="up")
    Heartbeat.objects.create(name="worker@host", seen_at=timezone.now())
    ClockedSchedule.objects.create(clocked_time=timezone.now())
    SolarSchedule.objects.create(event="sunrise", latitude=0, longitude=0)
    IntervalSchedule.objects.create(every=5, period="minutes")
    AccessAttempt.objects.create(username="x", ip_address="10.0.0.1", failures_since_start=1)
    AccessLog.objects.create(username="x", ip_address="10.0.0.1")
    AccessFailureLog.objects.create(username="x", ip_address="10.0.0.1", locked_out=False)
    LogEntry.objects.create(
        user=people["DevOps"],
        content_type=ContentType.objects.get_for_model(target),
        object_id=str(target.pk),
        object_repr=str(target),
        action_flag=ADDITION,
    )
    incident = Incident.open(
        title="Messages table corrupted",
        severity=Severity.objects.get(key="P1"),
        scenario=Scenario.objects.get(key="database-corruption"),
        impact_started_at=timezone.now() - timedelta(minutes=20),
        customer_facing=True,
        user=people["Incident Commander"],
    )
    StatusUpdate.objects.create(incident=incident, phase="investigating", message="Looking into it")
    Notification.objects.create(
        event="x",
        channel="hook",
        kind="webhook",
        subject="s",
        body="b",
        status="delivered",
        delivered_at=timezone.now(),
    )
    drill = Drill.objects.create(activity=TestActivity.objects.first(), due_at=timezone.now())
    Finding.objects.create(drill=drill, title="A gap")
    PlanReview.objects.create(document=PlanDocument.objects.first(), outcome=PlanReview.Outcome.choices[0][0])

    missing = [m._meta.label for m in admin.site._registry if not m._default_manager.exists()]
    assert missing == []


def secrets_in_db() -> list[str]:
    from backups.models import Objective

    return [
        TARGET_PASSWORD,
        KEY_SECRET,
        "AKIAEXAMPLE",
        WEBHOOK_SECRET,
        *Objective.objects.values_list("ping_token", flat=True),
    ]


def test_every_admin_page_opens_for_every_role_and_hides_secrets(people, one_of_everything):
    from backups.models import BackupRun, Restore
    from incidents.models import Incident

    problems = []
    pages = 0
    secrets = secrets_in_db()
    incident, run, record = Incident.objects.get(), BackupRun.objects.first(), Restore.objects.get()
    # The portal's own pages beside the model pages: the dashboard and the custom views people open.
    extra = [
        reverse("admin:index"),
        reverse("admin:drills_drill_upcoming"),
        reverse("admin:incidents_incident_timeline", args=[incident.pk]),
        reverse("admin:incidents_incident_report", args=[incident.pk]),
        reverse("admin:backups_backuprun_progress", args=[run.pk]),
        reverse("admin:backups_backuprun_restore", args=[run.pk]),
        reverse("admin:backups_restore_progress", args=[record.pk]),
        "/status/",
    ]
    for role, user in people.items():
        client = Client(raise_request_exception=False)
        client.force_login(user)
        for url in extra:
            response = client.get(url)
            pages += 1
            page = html.unescape(response.content.decode(errors="replace"))
            if response.status_code >= 500 or any(s in page for s in secrets):
                problems.append(f"{role} {url}: {response.status_code}")
        for model in admin.site._registry:
            prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
            can_change = user.has_perm(f"{model._meta.app_label}.change_{model._meta.model_name}")
            urls = [reverse(f"{prefix}_changelist"), reverse(f"{prefix}_add")]
            urls += [reverse(f"{prefix}_change", args=[obj.pk]) for obj in model._default_manager.all()[:20]]
            for url in urls:
                response = client.get(url)
                pages += 1
                if response.status_code >= 500:
                    problems.append(f"{role} {url}: {response.status_code}")
                    continue
                if response.status_code == 200 and not can_change:
                    page = html.unescape(response.content.decode())
                    shown = [s[:6] + "…" for s in secrets if s in page]
                    if shown:
                        problems.append(f"{role} {url}: shows secrets {shown}")
    assert pages > 100
    assert problems == []


def test_viewer_and_commander_see_no_ping_token_but_devops_does(people, one_of_everything):
    from backups.models import Objective

    objective = Objective.objects.filter(ping=True).first()
    url = reverse("admin:backups_objective_change", args=[objective.pk])
    for role in ("Viewer", "Incident Commander"):
        client = Client()
        client.force_login(people[role])
        page = client.get(url).content.decode()
        assert objective.ping_token not in page and "hidden" in page
    client = Client()
    client.force_login(people["DevOps"])
    assert objective.ping_token in client.get(url).content.decode()


@pytest.mark.parametrize("role", ["Viewer", "Incident Commander"])
def test_view_only_roles_open_target_and_location_pages(people, one_of_everything, role):
    from backups.models import Location, Target

    client = Client(raise_request_exception=False)
    client.force_login(people[role])
    for obj, name in [
        (Target.objects.get(name="secret-db"), "target"),
        (Location.objects.get(name="s3-keys"), "location"),
    ]:
        response = client.get(reverse(f"admin:backups_{name}_change", args=[obj.pk]))
        assert response.status_code == 200
        page = response.content.decode()
        assert TARGET_PASSWORD not in page and KEY_SECRET not in page
