"""RPO objectives: ok → late → breached as time passes, back to ok after a verified backup; pings."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from backups.models import BackupRun, Objective, ObjectiveChange, Verification
from backups.services import backup, rpo, verify

pytestmark = pytest.mark.django_db


def verified_backup(target) -> BackupRun:
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    assert verify.verify(verify.start_verification(run, kind="integrity", trigger="command")).ok
    return run


@pytest.fixture
def objective(source_db, local_location, make_target):
    target = make_target("db", source_db, [local_location])
    objective = Objective.objects.create(name="database", rpo=timedelta(hours=1))
    objective.targets.set([target])
    return objective, target


def states(objective) -> list[tuple[str, str]]:
    return [(c.from_state, c.to_state) for c in objective.changes.order_by("pk")]


def test_state_follows_the_clock_and_recovers_after_a_backup(objective):
    objective, target = objective
    run = verified_backup(target)
    start = run.started_at

    assert rpo.evaluate_one(objective, start + timedelta(minutes=30)).state == "ok"
    late = rpo.evaluate_one(objective, start + timedelta(minutes=63))
    assert late.state == "late" and late.exposure_seconds == pytest.approx(63 * 60)
    assert rpo.evaluate_one(objective, start + timedelta(minutes=67)).state == "breached"

    newer = verified_backup(target)
    back = rpo.evaluate_one(objective, newer.started_at + timedelta(minutes=1))
    assert back.state == "ok" and back.last_good_at == newer.started_at
    assert states(objective) == [("unknown", "ok"), ("ok", "late"), ("late", "breached"), ("breached", "ok")]


def test_an_unverified_backup_does_not_count(objective):
    objective, target = objective
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded"
    result = rpo.evaluate_one(objective, timezone.now())
    assert result.state == "breached" and result.last_good_at is None


def test_a_failed_verification_does_not_count(objective):
    objective, target = objective
    run = backup.execute(backup.start_backup(target, trigger="command"))
    Verification.objects.create(run=run, kind="integrity", status="failed")
    assert rpo.evaluate_one(objective, timezone.now()).state == "breached"


def test_custom_grace(objective):
    objective, target = objective
    objective.grace = timedelta(minutes=30)
    objective.save()
    run = verified_backup(target)
    assert rpo.evaluate_one(objective, run.started_at + timedelta(minutes=85)).state == "late"
    assert rpo.evaluate_one(objective, run.started_at + timedelta(minutes=91)).state == "breached"


def test_objective_over_two_targets_is_as_fresh_as_the_stalest(source_db, local_location, make_target):
    a = make_target("a", source_db, [local_location])
    b = make_target("b", source_db, [local_location])
    objective = Objective.objects.create(name="both", rpo=timedelta(hours=1))
    objective.targets.set([a, b])
    run_a = verified_backup(a)
    assert rpo.evaluate_one(objective, timezone.now()).state == "breached"  # b has nothing
    verified_backup(b)
    BackupRun.objects.filter(pk=run_a.pk).update(started_at=timezone.now() - timedelta(hours=2))
    result = rpo.evaluate_one(objective, timezone.now())
    assert result.state == "breached" and result.exposure_seconds > 7000


def test_ping_moves_a_ping_objective_to_ok(client):
    objective = Objective.objects.create(name="logs", rpo=timedelta(minutes=5), ping=True)
    assert rpo.evaluate_one(objective, timezone.now()).state == "breached"

    response = client.post(reverse("ping", args=[objective.ping_token]), data="shipped", content_type="text/plain")

    assert response.status_code == 200
    objective.refresh_from_db()
    assert objective.state == "ok"
    ping = objective.pings.get()
    assert ping.body == "shipped" and ping.remote_addr == "127.0.0.1"
    later = rpo.evaluate_one(objective, ping.received_at + timedelta(minutes=6))
    assert later.state == "breached"  # 5 min + 30 s grace


def test_unknown_ping_token_is_404_and_records_nothing(client):
    Objective.objects.create(name="logs", rpo=timedelta(minutes=5), ping=True)
    assert client.post(reverse("ping", args=["not-a-token"])).status_code == 404
    assert not ObjectiveChange.objects.exists()


def test_rpo_command_json(objective, capsys):
    objective, target = objective
    verified_backup(target)
    call_command("rpo", "--json")
    [data] = json.loads(capsys.readouterr().out)
    assert data["name"] == "database" and data["state"] == "ok"
    assert data["target_seconds"] == 3600
    assert 0 <= data["exposure_seconds"] < 120
    assert data["last_good_at"]
