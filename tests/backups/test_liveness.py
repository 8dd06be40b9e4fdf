"""Liveness of backup runs and restores: progress in every phase, staleness per phase, a lease that fences.

A run is failed by someone else's reaper only when it is silent for longer than its phase
allows and its process is proven gone; a run that lost its lease never writes again.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from backups.leases import LeaseLost, process_start, proof_of_death, this_process
from backups.locations import LocalBackend
from backups.models import BackupRun, Location, Restore
from backups.services import backup
from backups.services.restore import reap_stale_restores
from tests.conftest import run_backup

pytestmark = pytest.mark.django_db

OTHER_HOST = "another-host.example"


@pytest.fixture
def target(make_target, local_location):
    return make_target("db", "postgresql://u@127.0.0.1:1/none", [local_location])


def running(target, phase: str = "dump", silent_for: float = 3600) -> BackupRun:
    """A run claimed by this (live) process, in ``phase``, whose last progress is ``silent_for`` seconds old."""
    run = BackupRun.enqueue(target, trigger="manual")
    assert run.claim("worker@test")
    if phase != "dump":
        run.enter_phase(phase)
    past = timezone.now() - timedelta(seconds=silent_for)
    BackupRun.objects.filter(pk=run.pk).update(heartbeat_at=past, lease_expires_at=past + timedelta(seconds=1))
    run.refresh_from_db()
    return run


def dead_process() -> str:
    """The lease owner string of a process of this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    owner = f"{socket.gethostname()}:{child.pid}:{process_start(child.pid)}"
    child.kill()
    child.wait()
    return owner


@pytest.fixture
def zero_limits(settings):
    settings.BACKUP_STALE_SECONDS = 0
    settings.BACKUP_COPY_STALE_SECONDS = 0
    settings.BACKUP_MANIFEST_STALE_SECONDS = 0
    return settings


# --- who is alive -------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["dump", "copy:s3", "manifest:s3"])
def test_a_silent_run_whose_process_is_alive_on_this_host_is_never_reaped(zero_limits, target, phase):
    run = running(target, phase)
    assert run.lease_owner == this_process()

    assert backup.reap_stale_runs() == 0

    run.refresh_from_db()
    assert run.status == "running" and run.error == ""


def test_a_run_whose_process_ended_on_this_host_is_reaped_naming_the_phase_and_proof(
    zero_limits, target, local_location
):
    run = running(target, "copy:local")
    owner = dead_process()
    BackupRun.objects.filter(pk=run.pk).update(lease_owner=owner)
    zero_limits.BACKUP_SPOOL_DIR.mkdir(parents=True, exist_ok=True)
    spool = zero_limits.BACKUP_SPOOL_DIR / f"run{run.pk}-abc.age"
    spool.write_bytes(b"left by the dead process")

    assert backup.reap_stale_runs() == 1

    run.refresh_from_db()
    assert run.status == "failed"
    assert "presumed dead" in run.error and "during copy:local" in run.error, run.error
    assert f"process {owner.split(':')[1]} on {socket.gethostname()} has ended" in run.error, run.error
    assert run.lease_expires_at is None
    assert not spool.exists()
    # The lock is free: the next run of the target can be claimed.
    assert BackupRun.enqueue(target, trigger="manual").claim("worker@test")


def test_a_reused_pid_does_not_keep_a_dead_run_alive(zero_limits, target):
    run = running(target)
    pid = os.getpid()  # alive, but started at another time than the lease says
    BackupRun.objects.filter(pk=run.pk).update(lease_owner=f"{socket.gethostname()}:{pid}:1")

    assert backup.reap_stale_runs() == 1
    run.refresh_from_db()
    assert "the pid now belongs to another process" in run.error, run.error


def test_a_run_on_another_host_is_reaped_only_once_its_lease_expired(zero_limits, target):
    run = running(target, "copy:s3")
    future = timezone.now() + timedelta(seconds=60)
    BackupRun.objects.filter(pk=run.pk).update(lease_owner=f"{OTHER_HOST}:4242:99", lease_expires_at=future)

    assert backup.reap_stale_runs() == 0
    assert BackupRun.objects.get(pk=run.pk).status == "running"

    BackupRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert backup.reap_stale_runs() == 1
    run.refresh_from_db()
    assert run.status == "failed"
    assert f"process 4242 on {OTHER_HOST} let its lease expire" in run.error, run.error


def test_staleness_is_judged_per_phase(settings, target):
    settings.BACKUP_STALE_SECONDS = 50
    settings.BACKUP_COPY_STALE_SECONDS = 600
    settings.BACKUP_MANIFEST_STALE_SECONDS = 200
    dumping = running(target, "dump", silent_for=100)
    assert list(BackupRun.objects.stale()) == [dumping]
    BackupRun.objects.filter(pk=dumping.pk).update(phase="copy:s3")
    assert list(BackupRun.objects.stale()) == []
    BackupRun.objects.filter(pk=dumping.pk).update(phase="manifest:s3", heartbeat_at=timezone.now() - timedelta(1))
    assert list(BackupRun.objects.stale()) == [dumping]


def test_progress_renews_the_lease_by_the_phase_limit(settings, target):
    settings.BACKUP_COPY_STALE_SECONDS = 1000
    run = running(target, "copy:s3")
    before = timezone.now()
    run.report_copy("s3", 1234)
    run.refresh_from_db()
    assert run.copied == {"s3": 1234}
    assert run.heartbeat_at >= before
    assert timedelta(seconds=999) < run.lease_expires_at - run.heartbeat_at <= timedelta(seconds=1000)


# --- fencing ------------------------------------------------------------------------------


def test_a_run_that_lost_its_lease_never_writes_again(zero_limits, target):
    run = running(target, "copy:s3")
    stale_view = BackupRun.objects.get(pk=run.pk)
    # Another host's reaper presumed it dead once its lease expired.
    BackupRun.objects.filter(pk=run.pk).update(lease_owner=f"{OTHER_HOST}:1:1")
    stale_view.lease_owner = f"{OTHER_HOST}:1:1"
    assert stale_view.reap("presumed dead by the test")

    for write in (
        lambda: run.report_progress(1, 2),
        lambda: run.report_copy("s3", 10),
        lambda: run.enter_phase("manifest:s3"),
        lambda: run.succeed(),
        lambda: run.fail("late failure"),
    ):
        with pytest.raises(LeaseLost):
            write()
    run.refresh_from_db()
    assert (run.status, run.error, run.copied) == ("failed", "presumed dead by the test", {})


def test_a_reaper_never_fails_a_run_that_reported_progress_after_it_looked(zero_limits, target):
    run = running(target, "copy:s3")
    seen = BackupRun.objects.get(pk=run.pk)
    run.report_copy("s3", 99)  # the run is alive after all
    assert not seen.reap("presumed dead")
    assert BackupRun.objects.get(pk=run.pk).status == "running"


def test_proof_of_death_without_a_recorded_process_falls_back_to_silence():
    assert proof_of_death("", None) == "it recorded no process to check"
    assert proof_of_death(this_process(), None) is None


# --- progress in every phase ------------------------------------------------------------------


@pytest.fixture
def spool_elsewhere(settings, tmp_path):
    """The spool on another filesystem than the locations (which are in tmp_path), so a local copy is a
    real copy that reports as it goes, not a hard link. /dev/shm is that filesystem here; a location may
    not live under /dev (a system folder), but the spool may."""
    import shutil

    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second filesystem")
    folder = shm / f"drp-liveness-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    settings.BACKUP_SPOOL_DIR = folder
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_backup_records_bytes_sent_to_each_location(source_db, make_target, s3_location, tmp_path, spool_elsewhere):
    local = Location.objects.create(name="local", url=f"file://{tmp_path / 'local-backups'}")
    run = run_backup(make_target("botflow-db", source_db, [local, s3_location]))
    assert run.status == "succeeded", run.error
    assert run.copied == {"local": run.bytes_out, "s3": run.bytes_out}
    assert run.phase == "manifest:s3"  # the last thing it did


def test_put_file_reports_bytes_sent_as_it_goes(tmp_path, s3_location, spool_elsewhere):
    data = os.urandom(9 << 20)  # above boto3's multipart threshold (8 MiB): several parts
    linked_spool, copied_spool = tmp_path / "spool.age", spool_elsewhere / "spool.age"
    linked_spool.write_bytes(data)
    copied_spool.write_bytes(data)
    local = LocalBackend(Location(name="local", url=f"file://{tmp_path / 'x'}"))
    for backend, spool in ((s3_location.backend(), linked_spool), (local, linked_spool), (local, copied_spool)):
        reports: list[int] = []
        stored = backend.put_file(spool, f"t/{spool.parent.name}.age", progress=reports.append)
        assert stored.size == len(data)
        assert reports and reports[-1] == len(data), backend.name
        assert reports == sorted(reports)
    assert len(reports) > 1  # the real copy reports chunk by chunk


def test_a_copy_stopped_by_its_progress_callback_leaves_nothing(tmp_path, s3_location, s3_endpoint, spool_elsewhere):
    from backups.locations import LocationError
    from tests.conftest import s3_client

    spool = spool_elsewhere / "spool.age"
    spool.write_bytes(os.urandom(9 << 20))

    def stop(sent):
        if sent > 1 << 20:
            raise LeaseLost("stop")

    local = LocalBackend(Location(name="local", url=f"file://{tmp_path / 'x'}"))
    with pytest.raises(LeaseLost):
        local.put_file(spool, "t/obj.age", progress=stop)
    assert list((tmp_path / "x").rglob("*obj*")) == []

    with pytest.raises(LocationError):
        s3_location.backend().put_file(spool, "t/obj.age", progress=stop)
    bucket = s3_location.url.split("/")[2]
    client = s3_client(s3_endpoint)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_the_run_page_shows_the_phase_and_bytes_sent(admin_client, target):
    run = running(target, "copy:s3", silent_for=0)
    BackupRun.objects.filter(pk=run.pk).update(bytes_out=4_000_000, copied={"local": 4_000_000, "s3": 1_000_000})
    data = admin_client.get(reverse("admin:backups_backuprun_progress", args=[run.pk])).json()
    assert data["phase"] == "copy:s3"
    assert data["copied"] == {"local": 4_000_000, "s3": 1_000_000}
    assert "copying to s3: 976.6\xa0KB of 3.8\xa0MB sent" in data["html"], data["html"]
    assert data["html"].count('value="25"') == 1
    html = admin_client.get(reverse("admin:backups_backuprun_change", args=[run.pk])).content.decode()
    assert "copying to s3: 976.6\xa0KB of 3.8\xa0MB sent" in html
    assert "copy:s3" in html  # the phase field itself


# --- restores ---------------------------------------------------------------------------------


def restore_running(owner: str | None = None) -> Restore:
    record = Restore.objects.create(source="1")
    assert record.start()
    past = timezone.now() - timedelta(seconds=3600)
    fields = {"heartbeat_at": past, "lease_expires_at": past}
    if owner:
        fields["lease_owner"] = owner
    Restore.objects.filter(pk=record.pk).update(**fields)
    record.refresh_from_db()
    return record


def test_a_silent_restore_whose_process_is_alive_is_never_reaped(zero_limits):
    record = restore_running()
    assert reap_stale_restores() == 0
    record.refresh_from_db()
    assert record.status == "running" and record.error == ""


def test_a_restore_whose_process_ended_is_reaped_and_its_late_writes_are_refused(zero_limits):
    record = restore_running()
    Restore.objects.filter(pk=record.pk).update(lease_owner=dead_process())
    assert reap_stale_restores() == 1
    reaped = Restore.objects.get(pk=record.pk)
    assert reaped.status == "failed" and "has ended" in reaped.error, reaped.error

    # The restore object of the "dead" process (it held the old lease) can no longer write anything.
    for write in (lambda: record.note("still here?"), lambda: record.report_progress(5), lambda: record.succeed()):
        with pytest.raises(LeaseLost):
            write()
    assert Restore.objects.get(pk=record.pk).log == reaped.log
    assert Restore.objects.get(pk=record.pk).status == "failed"


@pytest.mark.django_db(transaction=True)  # the keep-alive thread writes through its own connection
def test_a_long_silent_step_keeps_its_restore_alive_for_a_reaper_on_another_host(settings):
    """pgbackrest restore / pg_ctl start report nothing for minutes: the row is renewed meanwhile, so a reaper on
    another host (which can only trust the lease) never fails a restore that is still going; without it, it would."""
    import time

    settings.BACKUP_STALE_SECONDS = 1
    record = restore_running()
    Restore.objects.filter(pk=record.pk).update(lease_owner=f"{OTHER_HOST}:4242:1")  # as a reaper here sees it
    record.refresh_from_db()
    with record.kept_alive(every=0.05):
        time.sleep(1.5)  # longer than the stale limit and the lease
        assert reap_stale_restores() == 0
        renewed = Restore.objects.get(pk=record.pk)
        assert renewed.status == "running" and renewed.lease_expires_at > timezone.now()
    time.sleep(1.5)  # the step over, and nothing renews it: now it is presumed dead
    assert reap_stale_restores() == 1
    assert Restore.objects.get(pk=record.pk).status == "failed"


@pytest.mark.django_db(transaction=True)
def test_keeping_alive_stops_renewing_a_restore_this_process_lost(zero_limits):
    import time

    record = restore_running()
    Restore.objects.filter(pk=record.pk).update(lease_owner=f"{OTHER_HOST}:1:1")  # taken over: no longer ours
    lost = Restore.objects.get(pk=record.pk)
    with record.kept_alive(every=0.05):  # ``record`` still thinks it holds the old lease
        time.sleep(0.4)
    assert Restore.objects.get(pk=record.pk).heartbeat_at == lost.heartbeat_at
