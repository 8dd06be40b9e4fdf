"""A restore to a moment whose worker is killed (kill -9) mid-way, then the reaper: a true message, nothing left.

Real parts only: a throwaway cluster (initdb as the postgres OS user), pgBackRest, a Celery worker of the
target's queue that SIGKILLs its whole process group at a chosen point (tests/killpoints.py), and the
reaper run as beat runs it. What must hold afterwards: the row is failed and says what was cleaned up; no
PostgreSQL process is left on the destination; the destination folder (if the restore made it) and the lock
are gone; and a second restore into the same folder, by a healthy worker, succeeds.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from backups.engines import pgbackrest as pgbr
from backups.models import BackupRun, Restore, Target
from backups.services import backup, pgbackrest
from backups.services.restore import reap_stale_restores
from backups.tasks import enqueue_restore
from tests.conftest import start_worker, stop_worker, wait_for
from tests.killpoints import killer_launcher
from tests.pg_cluster import Cluster, make_pgbr_target, pg_cluster, posix_location  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

QUEUE = "db-host-reaper"


def processes_in(folder: Path) -> list[str]:
    """Every process whose working directory is ``folder`` or under it (a PostgreSQL server and its backends)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cwd == str(folder) or cwd.startswith(f"{folder}/") or cwd.startswith(f"{folder} "):
            found.append(f"{entry.name}: {cmdline}")
    return found


def backed_up_target(cluster: Cluster) -> Target:
    target = make_pgbr_target(cluster, [posix_location(cluster)])
    Target.objects.filter(pk=target.pk).update(queue=QUEUE)
    target.refresh_from_db()
    cluster.sql("CREATE TABLE messages (id bigserial PRIMARY KEY, body text NOT NULL)")
    cluster.sql("INSERT INTO messages (body) SELECT 'message ' || g FROM generate_series(1, 1000) g")
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    return target


def request(target: Target, to: Path, **options) -> Restore:
    plan = pgbackrest.propose_pitr(target.name, latest=True, to=str(to), **options)
    record = pgbackrest.record_pitr(plan, trigger=BackupRun.Trigger.COMMAND, command_user="tester")
    enqueue_restore(record)
    return record


def killed_at(point: str, target: Target, to: Path, tmp_path: Path, **options) -> Restore:
    """A restore into ``to`` run by a worker that kill -9s itself (and its process group) at ``point``."""
    worker = start_worker(
        tmp_path / f"victim-{point}.log",
        extra_env={"PGBACKREST_CONFIG_DIR": str(pgbr.config_path(target.name).parent)},
        concurrency=1,
        queues=[QUEUE],
        name=f"victim-{point}",
        launcher=killer_launcher(point),
    )
    try:
        record = request(target, to, **options)
        worker.proc.wait(timeout=240)
    finally:
        stop_worker(worker)
    assert worker.proc.returncode == -signal.SIGKILL, worker.log()[-3000:]
    record.refresh_from_db()
    assert record.status == "running", f"{record.status}: {record.error}\n{record.log}\n{worker.log()[-3000:]}"
    return record


def reap(settings, record: Restore) -> Restore:
    settings.BACKUP_STALE_SECONDS = 0  # silent for any time at all: only the proof of death decides
    assert reap_stale_restores() == 1
    record.refresh_from_db()
    assert record.status == "failed"
    return record


def second_restore_succeeds(target: Target, to: Path, tmp_path: Path) -> Restore:
    """A healthy worker restores into the same folder: nothing the dead one left stands in its way."""
    worker = start_worker(
        tmp_path / "healthy.log",
        extra_env={"PGBACKREST_CONFIG_DIR": str(pgbr.config_path(target.name).parent)},
        queues=[QUEUE],
        name="healthy",
    )
    try:
        record = request(target, to)
        wait_for(
            lambda: Restore.objects.get(pk=record.pk).status in ("succeeded", "failed"),
            timeout=300,
            interval=0.5,
            message="the second restore",
        )
    finally:
        stop_worker(worker)
    record.refresh_from_db()
    assert record.status == "succeeded", f"{record.error}\n{record.log}\n{worker.log()[-3000:]}"
    assert {"name": "app.public.messages", "expected": None, "restored": 1000} in record.tables
    return record


@pytest.mark.parametrize(
    "point",
    ["during-pgbackrest-restore", "after-cluster-started"],
)
def test_a_worker_killed_mid_restore_is_cleaned_up_by_the_reaper_with_a_true_message(
    pg_cluster,  # noqa: F811
    age_key,
    settings,
    tmp_path,
    point,
):
    cluster = pg_cluster("maindb")
    target = backed_up_target(cluster)
    destination = cluster.folder("restores") / f"killed-{point}"
    lock = pgbr.lock_path(destination)

    record = killed_at(point, target, destination, tmp_path)

    # Where the kill landed, and what it left behind: the folder, the lock, and after the start a running cluster.
    assert f"pgbackrest restore --type=default --archive-mode=off into {destination}" in record.log
    assert record.scratch_name == str(destination), "the folder it made is recorded before it is made"
    assert destination.is_dir() and any(destination.iterdir()) and lock.exists()
    if point == "during-pgbackrest-restore":
        assert "starting PostgreSQL" not in record.log, record.log
        assert not pgbr.is_running(destination)
    else:
        assert "starting PostgreSQL" in record.log and "promoted and checked" not in record.log, record.log
        assert pgbr.is_running(destination) and processes_in(destination)

    record = reap(settings, record)

    message = record.error
    assert message.startswith("the restore process stopped reporting and is presumed dead ("), message
    assert "cleanup failed" not in message and "no restorer" not in message, message
    if point == "after-cluster-started":
        assert (
            f"stopped the restored cluster left running in {destination} (pg_ctl stop -m immediate as postgres)"
            in message
        )
    else:
        assert "stopped the restored cluster" not in message, message
    assert f"removed the data directory {destination} the restore had created" in message, message
    assert f"removed the lock {lock}" in message and message.endswith("the live cluster was not touched"), message
    assert processes_in(destination) == []
    assert not destination.exists() and not lock.exists() and not pgbr.startup_log(destination).exists()
    # The live cluster is as it was.
    assert cluster.sql("SELECT count(*) FROM messages") == [(1000,)]

    second = second_restore_succeeds(target, destination, tmp_path)
    assert "stopped and removed" in second.log and not destination.exists() and not lock.exists()


def test_a_folder_that_existed_before_the_restore_is_emptied_never_removed(
    pg_cluster,  # noqa: F811
    age_key,
    settings,
    tmp_path,
):
    cluster = pg_cluster("maindb")
    target = backed_up_target(cluster)
    destination = cluster.folder("restores") / "given-empty"
    destination.mkdir(mode=0o700)
    os.chown(destination, *pgbr_ids())

    record = killed_at("after-cluster-started", target, destination, tmp_path)
    assert record.scratch_name == "", "it did not make the folder, and its row says so"
    assert pgbr.is_running(destination)

    record = reap(settings, record)

    assert f"stopped the restored cluster left running in {destination}" in record.error, record.error
    assert f"emptied {destination}, which existed before the restore (the folder itself is kept)" in record.error
    assert "removed the data directory" not in record.error
    assert destination.is_dir() and not any(destination.iterdir()) and processes_in(destination) == []
    assert not pgbr.lock_path(destination).exists()

    second = second_restore_succeeds(target, destination, tmp_path)
    # The restore's own clean-up keeps the folder it was given too.
    assert f"emptied {destination}, which existed before the restore" in second.log, second.log
    assert destination.is_dir() and not any(destination.iterdir())


def test_an_in_place_restore_killed_after_the_start_is_rolled_back_by_the_reaper(
    pg_cluster,  # noqa: F811
    age_key,
    settings,
    tmp_path,
):
    cluster = pg_cluster("maindb")
    target = backed_up_target(cluster)
    cluster.sql("INSERT INTO messages (body) VALUES ('after the backup')")
    cluster.stop()
    marker = cluster.data / "drportal-test-original"  # only in the live directory, never in a backup
    marker.write_text("the data directory as it was before the restore\n")

    record = killed_at("after-cluster-started", target, cluster.data, tmp_path)
    rollback = Path(record.rollback_name)
    assert rollback.is_dir() and (rollback / marker.name).exists(), "the live directory was moved aside first"
    assert record.scratch_name == str(cluster.data) and pgbr.is_running(cluster.data)

    record = reap(settings, record)

    message = record.error
    assert f"stopped the restored cluster left running in {cluster.data}" in message, message
    assert f"moved the half-restored data directory aside as {cluster.data}.failed-restore-" in message, message
    assert f"put the previous data directory back: {cluster.data} is as it was before the restore (stopped)" in message
    assert "the live cluster was not touched" not in message and "not replaced" not in message
    assert record.rollback_name == "", "the row no longer points at a rollback that is gone"
    assert marker.exists() and not rollback.exists() and not pgbr.is_running(cluster.data)
    assert processes_in(cluster.data) == [] and not pgbr.lock_path(cluster.data).exists()
    failed = list(cluster.data.parent.glob(f"{cluster.data.name}.failed-restore-*"))
    assert len(failed) == 1 and processes_in(failed[0]) == []

    cluster.start()
    assert cluster.sql("SELECT count(*) FROM messages") == [(1001,)]


def pgbr_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def dead_restore_into(destination: Path, **fields) -> Restore:
    """A running restore to a moment whose process is gone (it recorded none to check), as a kill leaves it."""
    from datetime import timedelta

    from django.utils import timezone

    long_ago = timezone.now() - timedelta(hours=2)
    return Restore.objects.create(
        source="maindb latest",
        destination=str(destination),
        destination_display=str(destination),
        format="pgbackrest",
        status=Restore.Status.RUNNING,
        started_at=long_ago,
        heartbeat_at=long_ago,
        **fields,
    )


def test_the_reaper_leaves_a_folder_another_restore_claimed_and_one_it_never_claimed(db, settings, tmp_path):
    # Another restore holds the folder now (its lock names it): nothing of it is touched, not even the lock.
    claimed = tmp_path / "claimed"
    claimed.mkdir()
    (claimed / "PG_VERSION").write_text("15\n")
    pgbr.lock_path(claimed).write_text("restore #424242\n")
    first = dead_restore_into(claimed, scratch_name=str(claimed))
    # It died before it claimed the folder (no lock): whatever is there is not known to be its own.
    unclaimed = tmp_path / "unclaimed"
    unclaimed.mkdir()
    (unclaimed / "notes.txt").write_text("someone else's\n")
    second = dead_restore_into(unclaimed)

    settings.BACKUP_STALE_SECONDS = 60
    assert reap_stale_restores() == 2

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == "failed"
    assert f"{claimed} is claimed by restore #424242 now: left it and {pgbr.lock_path(claimed)} as they are" in (
        first.error
    ), first.error
    assert (claimed / "PG_VERSION").exists() and pgbr.lock_path(claimed).read_text() == "restore #424242\n"
    assert f"it had not claimed {unclaimed} (no lock {pgbr.lock_path(unclaimed)}): left it as it is" in second.error
    assert (unclaimed / "notes.txt").exists()
    assert "cleanup failed" not in first.error + second.error


def test_a_restore_that_ran_on_another_host_is_not_cleaned_up_from_here_and_the_row_says_so(db, settings, tmp_path):
    """The reaper may run on another machine than the database host: it must not claim a clean-up it cannot do."""
    from datetime import timedelta

    from django.utils import timezone

    elsewhere = tmp_path / "on-the-db-host"
    record = dead_restore_into(
        elsewhere,
        scratch_name=str(elsewhere),
        lease_owner="db-host-7:4242:123456",
        lease_expires_at=timezone.now() - timedelta(hours=1),
    )
    settings.BACKUP_STALE_SECONDS = 60
    assert reap_stale_restores() == 1
    record.refresh_from_db()
    assert record.status == "failed"
    assert "it ran on db-host-7, not on this host: nothing was cleaned up; there, stop any cluster in" in record.error
    assert f"remove {pgbr.lock_path(elsewhere)}" in record.error, record.error
