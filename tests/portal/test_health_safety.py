"""/health means "would we be safe if disaster struck now": objectives, failed targets, workers per queue, read-only.

Over HTTP with the test client, against the shipped plan's objectives and targets. /health/live stays
a liveness answer for load balancers.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from backups.models import BackupRun, Objective, Ping, Target, Verification
from backups.services import rpo
from drportal.models import Heartbeat
from drportal.workers import BEAT

pytestmark = pytest.mark.django_db


def record_heartbeat(name: str, queues: list[str] = (), env_names: list[str] | None = None) -> None:
    # The rows drportal.workers.record_worker writes (it closes stale connections, which a test transaction is not).
    # A worker on a well-set host sees every env: variable the targets read (unless ``env_names`` says otherwise).
    from backups.services.queues import env_names_of_targets

    seen = (env_names_of_targets() if env_names is None else env_names) if queues else []
    Heartbeat.objects.update_or_create(
        name=name, defaults={"seen_at": timezone.now(), "queues": list(queues), "env_names": seen}
    )


@pytest.fixture
def alive():
    """Beat ticking and a worker consuming the default queue, as the real ones record themselves."""
    Heartbeat.objects.all().delete()
    record_heartbeat(BEAT)
    record_heartbeat("worker@test", ["celery"])


def run(target: Target, minutes_ago: float, status: str = "succeeded", verified: bool = False) -> BackupRun:
    at = timezone.now() - timedelta(minutes=minutes_ago)
    made = BackupRun.objects.create(
        target=target,
        status=status,
        sha256="0" * 64 if status in ("succeeded", "partial") else "",
        queued_at=at,
        started_at=at,
        finished_at=at + timedelta(seconds=30),
    )
    if verified:
        Verification.objects.create(run=made, status="passed", finished_at=at + timedelta(minutes=1))
    return made


def safe_now():
    """Every enabled objective met and every target's newest run good: what a healthy portal looks like."""
    for target in Target.objects.all():
        run(target, 20, verified=True)
    for objective in Objective.objects.filter(ping=True):
        Ping.objects.create(objective=objective)
    rpo.evaluate()


def test_a_safe_portal_is_healthy(client, plan_applied, alive):
    safe_now()
    response = client.get(reverse("health"))
    body = response.json()
    assert response.status_code == 200, body
    assert body["failing"] == []
    assert body["checks"]["objectives"] == {"ok": True, "enabled": 5, "failing": []}
    assert body["checks"]["worker"]["queues"]["celery"]["alive"] == 1


def test_the_issue_four_of_five_objectives_breached_and_every_target_failed_is_503_naming_them(
    client, plan_applied, alive
):
    """Today's main answered 200 "ok": its only backup check was "some backup of any target succeeded lately"."""
    for target in Target.objects.all():
        run(target, 300, verified=True)  # five hours ago: older than the 1 h and 2 h objectives allow
        run(target, 60)  # a good but unverified run an hour ago: "a recent backup" to the old check
        run(target, 10, status="failed")  # and then every target failed
    Objective.objects.filter(name="files").update(rpo=timedelta(hours=2))  # 24 h in the plan: make it breach too
    Ping.objects.create(objective=Objective.objects.get(name="logs"))  # the one objective still met
    rpo.evaluate()

    response = client.get(reverse("health"))

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    objectives = body["checks"]["objectives"]
    assert objectives["ok"] is False
    assert {o["name"]: o["state"] for o in objectives["failing"]} == {
        "configuration": "no verified copy yet",  # a ping objective never pinged
        "database": "breached",
        "files": "breached",
        "portal": "breached",
    }
    assert {t["name"] for t in body["checks"]["targets"]["failing"]} == {
        "configuration",
        "database",
        "database-archive",
        "environment",
        "knowledge-base",
        "portal",
    }
    assert "objective database: breached" in body["failing"]
    assert "target database: newest run failed" in body["failing"]
    text = response.content.decode()
    for secret in ("env:", "s3://", "file://", "botflow-backups", "127.0.0.1", "localhost"):
        assert secret not in text


def test_an_objective_waiting_for_its_first_backup_is_not_safe_on_health_nor_on_the_dashboard(
    client, admin_client, plan_applied, alive
):
    safe_now()
    database = Target.objects.get(name="database")
    BackupRun.objects.filter(target=database).delete()
    fresh = Objective.objects.create(name="new-db", rpo=timedelta(hours=1))
    fresh.targets.set([database])
    Objective.objects.filter(name="database").update(enabled=False)  # only the new one speaks for the database

    response = client.get(reverse("health"))
    assert response.status_code == 503
    assert response.json()["checks"]["objectives"]["failing"] == [
        {"name": "new-db", "state": "no verified copy yet", "exposure_seconds": None}
    ]

    html = admin_client.get(reverse("admin:index")).content.decode()
    row = html[html.index('data-objective="new-db"') :]
    row = row[: row.index("</tr>")]
    assert "rpo-state-breached" in row and "not safe" in row
    assert "rpo-state-ok" not in row and "rpo-state-unknown" not in row


def test_a_failed_run_followed_by_a_success_is_fine_but_a_newer_failure_is_not(client, plan_applied, alive):
    safe_now()
    database = Target.objects.get(name="database")
    run(database, 15, status="failed")
    run(database, 5)
    assert client.get(reverse("health")).status_code == 200
    run(database, 1, status="failed")
    BackupRun.objects.create(target=database, status="queued")  # a retry waiting does not count as a success
    response = client.get(reverse("health"))
    assert response.status_code == 503
    assert response.json()["checks"]["targets"]["failing"] == [{"name": "database", "newest_run": "failed"}]


def test_a_partial_run_counts_for_rpo_but_its_failed_location_fails_health(client, plan_applied, alive):
    """A partial run's copies are real (RPO credit), but a location refusing copies is not "safe"."""
    safe_now()
    database = Target.objects.get(name="database")
    run(database, 1, status="partial", verified=True)
    rpo.evaluate()
    response = client.get(reverse("health"))
    body = response.json()
    assert response.status_code == 503, body
    assert body["checks"]["objectives"]["ok"] is True
    assert body["checks"]["targets"]["failing"] == [{"name": "database", "newest_run": "partial"}]
    assert body["failing"] == ["target database: newest run partly failed"]
    run(database, 0.5)
    assert client.get(reverse("health")).status_code == 200


def test_a_worker_on_another_queue_does_not_serve_the_targets_jobs(client, plan_applied, alive):
    safe_now()
    Heartbeat.objects.exclude(name=BEAT).delete()
    record_heartbeat("worker@elsewhere", ["reports"])
    response = client.get(reverse("health"))
    assert response.status_code == 503
    worker = response.json()["checks"]["worker"]
    assert worker["ok"] is False and worker["alive"] == 1
    assert worker["queues"]["celery"]["ok"] is False
    assert "database" in worker["queues"]["celery"]["targets"]
    assert "queue celery: no live worker" in response.json()["failing"]


def test_the_read_only_switch_makes_health_fail(client, plan_applied, alive, commander):
    from incidents.models import Incident, Severity
    from incidents.services import security

    safe_now()
    assert client.get(reverse("health")).status_code == 200
    incident = Incident.open(title="breach", severity=Severity.objects.get(key="P1"), user=commander)
    security.set_read_only(incident, True, commander)
    response = client.get(reverse("health"))
    assert response.status_code == 503
    assert response.json()["checks"]["read_only"] == {"ok": False}
    assert "the portal is read-only" in response.json()["failing"]


def test_liveness_answers_200_while_the_process_and_database_are_up_whatever_the_backups(client, plan_applied):
    Heartbeat.objects.all().delete()
    assert client.get(reverse("health")).status_code == 503
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": {"ok": True}}


@pytest.fixture
def commander(db):
    from django.contrib.auth.models import User

    return User.objects.create_superuser("commander", "ic@example.com", "pw")


def test_a_target_whose_variable_no_worker_has_is_not_safe_before_it_runs(client, plan_applied, alive):
    safe_now()
    seen = [name for name in Heartbeat.objects.get(name="worker@test").env_names if name != "BOTFLOW_DATABASE_URL"]
    record_heartbeat("worker@test", ["celery"], env_names=seen)
    response = client.get(reverse("health"))
    assert response.status_code == 503
    body = response.json()
    # Both targets that read it (the daily and the archive backups of the database), by name, variable and queue.
    assert body["checks"]["targets"]["unreadable"] == [
        {"name": name, "env": "BOTFLOW_DATABASE_URL", "queue": "celery", "never_run": False}
        for name in ("database", "database-archive")
    ]
    assert body["failing"] == [
        f"target {name}: env:BOTFLOW_DATABASE_URL is not set on any live worker of queue celery"
        for name in ("database", "database-archive")
    ]
