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


def test_a_burst_of_due_entries_costs_one_update_a_send_and_a_new_holder_sends_none_again(settings):
    """Every target due on the same minute: beat saves each send's last run with one UPDATE (not
    django-celery-beat's read, unique-name check and full save), without marking the schedule
    changed (which would reload every entry before the next send), and a beat that takes over
    from the saved rows finds nothing due that was already sent."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    from drportal.beat import PortalScheduler
    from drportal.celery import app

    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    long_ago = timezone.now() - timedelta(hours=2)
    for n in range(40):
        PeriodicTask.objects.create(
            name=f"burst {n:02d}",
            task="backups.tasks.backup_target",
            interval=every,
            args=f'["burst-{n}"]',
            queue="beat-burst-nobody",  # no worker consumes it: nothing runs
            last_run_at=long_ago,
        )
    PeriodicTask.objects.filter(name__startswith="burst ").update(last_run_at=long_ago)

    def burst_sends(scheduler) -> tuple[int, int]:
        sent = []
        original = scheduler.apply_async

        def counting(entry, *args, **kwargs):
            if entry.name.startswith("burst "):
                sent.append(entry.name)
            return original(entry, *args, **kwargs)

        scheduler.apply_async = counting
        with CaptureQueriesContext(connection) as queries:
            for _ in range(200):
                if scheduler.tick() > 0 and len(sent) == 40:
                    break
        return len(sent), len(queries)

    holder = PortalScheduler(app=app)
    changed_before = PeriodicTasks.last_change()  # after its start (which saves the app's own entries)
    try:
        sends, queries = burst_sends(holder)
    finally:
        holder.close()
    assert sends == 40
    # One UPDATE a send, plus reading the schedule once, the lease and a once-a-second look for
    # changes (django-celery-beat's own save made it six queries a send: 240 here).
    assert queries <= 40 + 20, queries
    rows = PeriodicTask.objects.filter(name__startswith="burst ")
    assert set(rows.values_list("total_run_count", flat=True)) == {1}
    assert all(at > long_ago for at in rows.values_list("last_run_at", flat=True))
    assert PeriodicTasks.last_change() == changed_before  # no reload of the whole schedule

    successor = PortalScheduler(app=app)
    try:
        assert burst_sends(successor)[0] == 0
    finally:
        successor.close()
