"""/health: 200 with everything up; 503 with the worker stopped or the broker unreachable."""

from __future__ import annotations

import pytest
from django.urls import reverse

from drportal.models import Heartbeat
from tests.conftest import free_port, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backed_up(source_db, local_location, make_target):
    from backups.services import backup

    run = backup.execute(backup.start_backup(make_target("db", source_db, [local_location]), trigger="command"))
    assert run.status == "succeeded"


@pytest.fixture
def beat_ticking():
    from drportal.workers import BEAT, record_heartbeat

    record_heartbeat(BEAT)


def test_healthy_with_a_real_worker_then_503_once_it_stops(
    client, tmp_path, backed_up, beat_ticking, _flush_test_broker, no_other_workers
):
    Heartbeat.objects.exclude(name="beat").delete()  # the paused shared worker's, if any
    worker = start_worker(tmp_path / "worker.log", concurrency=1)
    try:
        wait_for(lambda: Heartbeat.objects.exclude(name="beat").exists(), message="the worker's heartbeat")
        response = client.get(reverse("health"))
        body = response.json()
        assert response.status_code == 200, body
        assert body["status"] == "ok"
        assert set(body["checks"]) == {
            "database",
            "broker",
            "worker",
            "beat",
            "objectives",
            "targets",
            "newest_backup",
            "read_only",
        }
        assert body["checks"]["worker"]["alive"] == 1
        # The real worker says which queue it consumes: the default one, where the target's jobs go.
        assert body["checks"]["worker"]["queues"] == {"celery": {"ok": True, "alive": 1, "targets": ["db"]}}
    finally:
        stop_worker(worker)

    response = client.get(reverse("health"))
    assert response.status_code == 503
    assert response.json()["checks"]["worker"]["ok"] is False


def test_503_when_redis_is_unreachable(client, settings, backed_up, beat_ticking):
    from drportal.workers import record_heartbeat

    record_heartbeat("worker@test", ["celery"])
    assert client.get(reverse("health")).status_code == 200
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"

    response = client.get(reverse("health"))

    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is False and broker["transport"] == "redis"
    assert "127.0.0.1" not in response.content.decode()


def test_a_silent_worker_counts_as_down(client, backed_up, beat_ticking, no_other_workers):
    from datetime import timedelta

    from django.utils import timezone

    Heartbeat.objects.exclude(name="beat").delete()  # the paused shared worker's, if any
    Heartbeat.objects.create(name="worker@old", seen_at=timezone.now() - timedelta(seconds=90))
    body = client.get(reverse("health")).json()
    assert body["checks"]["worker"]["ok"] is False and body["checks"]["worker"]["last_seen_seconds"] >= 90


def test_no_backup_yet_is_unhealthy(client, beat_ticking):
    from drportal.workers import record_heartbeat

    record_heartbeat("worker@test", ["celery"])
    response = client.get(reverse("health"))
    assert response.status_code == 503
    assert response.json()["checks"]["newest_backup"] == {"ok": False, "age_seconds": None}


def test_a_real_beat_process_reports_its_ticks(client, tmp_path):
    """`celery -A drportal beat` with the portal's scheduler writes the heartbeat /health reads."""
    import os
    import subprocess
    import sys

    from django.db import connection

    from tests.conftest import ROOT, pg_url

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": pg_url(connection.settings_dict["NAME"]),
    }
    log = open(tmp_path / "beat.log", "wb")
    beat = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "drportal",
            "beat",
            "--loglevel=INFO",
            "--pidfile=",
            f"--schedule={tmp_path / 'beat-schedule'}",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: Heartbeat.objects.filter(name="beat").exists() or beat.poll() is not None,
            timeout=60,
            message="beat's first tick",
        )
        assert beat.poll() is None, (tmp_path / "beat.log").read_text()
        checks = client.get(reverse("health")).json()["checks"]
        assert checks["beat"]["ok"] is True and checks["beat"]["last_tick_seconds"] < 30
    finally:
        beat.terminate()
        beat.wait(20)
        log.close()
