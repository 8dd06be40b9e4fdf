"""Exactly one scheduler: beats share a lease in the portal's database; only its holder sends jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import BackupRun
from drportal.models import Heartbeat
from drportal.workers import beat_state, release_beat_lease, take_beat_lease
from tests.conftest import ROOT, pg_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_holder_at_a_time_and_a_dead_holders_lease_passes_on(settings):
    settings.BEAT_LEASE_SECONDS = 30
    assert take_beat_lease("host-a:1") is True
    assert take_beat_lease("host-b:2") is False  # a holds it and renews
    assert take_beat_lease("host-a:1") is True
    assert beat_state()["holder"] == "host-a:1" and beat_state()["standby"] == ["host-b:2"]

    # a stops renewing (killed): once the lease is older than BEAT_LEASE_SECONDS, b takes it.
    Heartbeat.objects.filter(name="beat").update(seen_at=timezone.now() - timedelta(seconds=31))
    assert take_beat_lease("host-b:2") is True
    assert take_beat_lease("host-a:1") is False  # a comes back: it is now the standby
    assert beat_state()["holder"] == "host-b:2" and beat_state()["standby"] == ["host-a:1"]

    # A clean stop hands the lease over at once.
    release_beat_lease("host-b:2")
    assert take_beat_lease("host-a:1") is True
    assert beat_state()["standby"] == []


def start_beat(tmp_path, name: str, extra_env: dict) -> subprocess.Popen:
    from django.db import connection

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": pg_url(connection.settings_dict["NAME"]),
        **extra_env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "drportal", "beat", "--loglevel=INFO", "--pidfile="],
        cwd=ROOT,
        env=env,
        stdout=open(tmp_path / f"{name}.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_two_beats_started_at_once_schedule_each_job_once(
    celery_worker, client, tmp_path, source_db, local_location, make_target
):
    """Two real beats, one job every 2 s: each tick is sent once; the standby takes over when the holder dies."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    # Its backups go to a queue nobody serves: each scheduled tick leaves exactly one queued run to count.
    target = make_target("ticking", source_db, [local_location], queue="beat-test-nobody")
    every = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="tick", task="backups.tasks.backup_target", interval=every, args=f'["{target.name}"]'
    )
    # Long enough that a beat starved of CPU on a busy machine is not taken for dead.
    lease = {"BEAT_LEASE_SECONDS": "10"}
    beats = {name: start_beat(tmp_path, name, lease) for name in ("one", "two")}
    try:
        wait_for(lambda: BackupRun.objects.filter(target=target).count() >= 6, timeout=90, message="six ticks")
        logs = {name: (tmp_path / f"{name}.log").read_text() for name in beats}
        standby = [name for name, text in logs.items() if "is on standby" in text]
        assert len(standby) == 1, logs
        assert client.get("/health").json()["checks"]["beat"]["standby"] == 1

        # SIGKILL the holder: the standby takes over after the lease (10 s) and goes on, once per tick.
        holder = next(name for name in beats if name not in standby)
        os.killpg(beats[holder].pid, signal.SIGKILL)
        beats[holder].wait(10)
        killed_at = BackupRun.objects.filter(target=target).count()
        wait_for(
            lambda: BackupRun.objects.filter(target=target).count() >= killed_at + 4,
            timeout=60,
            message="the standby to take over",
        )
        assert "holds the scheduler lease: scheduling" in (tmp_path / f"{standby[0]}.log").read_text()
    finally:
        for proc in beats.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:  # never mask the test's own failure
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)

    times = sorted(BackupRun.objects.filter(target=target).values_list("queued_at", flat=True))
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    # Each 2 s tick sent once: a double would show as two runs well under a second apart.
    assert min(gaps) > 1.0, gaps
