"""Restore a pgbackrest target to a moment OVER its live data directory, from the admin, run by a real worker.

Issue #16: restoring over the live data directory needs the cluster stopped, the ``restore_backuprun``
permission and a confirmation ("Replace the live data directory"), and keeps the old directory for
rollback. The command path is tested in test_pgbackrest.py; here the same promise is kept from the
"Restore to a moment" page, through a worker of the target's queue (the module fixtures of
test_pitr_admin.py: one throwaway cluster, the worker of its queue, POSTs typed by hand with a real
CSRF token, role users). Each test starts from a running cluster and leaves one running.
"""

from __future__ import annotations

import os
import re
import signal
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from django.urls import reverse

from backups.engines import pgbackrest as pgbr
from backups.models import BackupRun, Restore, Target
from backups.services import backup
from backups.services.restore import reap_stale_restores
from tests.conftest import role_client, start_worker, stop_worker
from tests.killpoints import killer_launcher
from tests.pitr_setup import (  # noqa: F401 (module fixtures, used by name)
    QUEUE,
    cluster,
    conf_dir,
    db_host_worker,
    finished,
    moment_url,
    new_target,
    post,
    write_then_make_the_mistake,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

MARKER = "drportal-test-before-the-restore"  # only ever in the live directory as it was, never in a backup


def running(pg) -> bool:
    return pgbr.is_running(pg.data)


@pytest.fixture
def target(cluster, request) -> Target:  # noqa: F811
    """A new target on the module's cluster (running), with a repository of its own and 1000 messages."""
    if not running(cluster):
        cluster.start()
    made = new_target(cluster, request.node.name)
    (cluster.data / MARKER).unlink(missing_ok=True)
    yield made
    if not running(cluster):  # the next test needs it up, whatever this one left
        cluster.start()


def backed_up(target: Target) -> BackupRun:
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    return run


def stop_with_marker(pg) -> None:
    """Stop the pg as an operator does (a clean stop archives the last WAL) and mark its directory."""
    pg.stop()
    assert not running(pg)
    marker = pg.data / MARKER
    marker.write_text("the data directory as it was before the restore\n")
    os.chown(marker, *pgbr_ids())


def pgbr_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def problem_of(response) -> str:
    found = re.search(r'id="restore-problem">([^<]*)<', response.content.decode())
    return unescape(found.group(1)) if found else ""


def plan_of_page(response) -> str:
    found = re.search(r'id="restore-plan">(.*?)</ul>', response.content.decode(), re.S)
    return unescape(found.group(1)) if found else ""


def checks_of_page(response) -> str:
    found = re.search(r'id="restore-checks">(.*?)</ul>', response.content.decode(), re.S)
    return unescape(found.group(1)) if found else ""


def beside_live(pg) -> set[str]:
    """What lies beside the live directory (earlier tests' rollback folders included)."""
    return {p.name for p in pg.base.iterdir() if p.name != pg.data.name}


def untouched(pg, before: set[str], *, rows: int) -> None:
    """Nothing was restored: the live directory is the one that was there, and nothing beside it was made."""
    assert (pg.data / "PG_VERSION").exists()
    assert beside_live(pg) - before == set(), "no rollback, failed-restore, lock or log folder was made"
    was_running = running(pg)
    if not was_running:
        assert (pg.data / MARKER).exists()
        pg.start()
    assert pg.sql("SELECT count(*) FROM messages") == [(rows,)]
    if not was_running:
        pg.stop()


def test_devops_restores_over_the_live_directory_from_the_admin_and_it_keeps_archiving(
    cluster,  # noqa: F811
    target,
    db_host_worker,  # noqa: F811
):
    devops = role_client("DevOps")
    run = backed_up(target)
    at_t, _after_mistake, moment = write_then_make_the_mistake(cluster)
    live = str(cluster.data)
    form = {"kind": "time", "moment": moment.isoformat(), "to": live}

    # Not stopped yet: whether it runs is the database host's to say (the web server may be another machine),
    # so the review names that check as still to come and claims nothing; nothing is queued by a review.
    review = post(devops, moment_url(target), {**form, "replace_live": "on"})
    assert "that the cluster is stopped" in checks_of_page(review), checks_of_page(review)
    assert "Checked on the database host" not in checks_of_page(review)
    assert not Restore.objects.exists()

    stop_with_marker(cluster)

    # The review says exactly what will happen, and changes nothing.
    review = post(devops, moment_url(target), {**form, "replace_live": "on"})
    plan = plan_of_page(review)
    assert not problem_of(review), problem_of(review)
    assert f"Restore target maindb to {moment.isoformat()} with pgBackRest" in plan
    assert f"from backup set {run.pgbackrest.label} (run #{run.pk}) plus archived WAL" in plan
    assert f"OVER THE LIVE DATA DIRECTORY {live} (the cluster must be stopped first)" in plan
    assert f"the current directory is kept as {live}.pre-restore-" in plan
    assert "keeps archiving into the repository" in plan and "into a new data directory" not in plan
    assert not Restore.objects.exists()

    # "Yes, restore" without the box ticked: refused, naming it; nothing queued.
    response = post(devops, moment_url(target), {**form, "confirm": "yes"})
    assert response.status_code == 200
    assert "tick “Replace the live data directory”" in problem_of(response), problem_of(response)
    assert not Restore.objects.exists() and (cluster.data / MARKER).exists()

    response = post(devops, moment_url(target), {**form, "replace_live": "on", "confirm": "yes"})
    assert response.status_code == 302, problem_of(response)
    record = Restore.objects.get()
    assert response["Location"] == reverse("admin:backups_restore_change", args=[record.pk])
    assert record.destination == live and record.triggered_by.username == "devops" and record.run == run

    record = finished(record)
    assert record.status == "succeeded", record.error + "\n" + record.log + db_host_worker.log()[-3000:]
    # The old directory is kept, as the row says, with the data as it was before the restore.
    rollback = Path(record.rollback_name)
    assert rollback.parent == cluster.data.parent and rollback.name.startswith("data.pre-restore-")
    assert (rollback / "PG_VERSION").exists() and (rollback / MARKER).exists()
    assert f"kept the live data directory as {rollback}" in record.log
    # The live directory is the restored one, running on the cluster's own port, with exactly the rows at T.
    assert not (cluster.data / MARKER).exists() and running(cluster)
    assert cluster.sql("SELECT id, body FROM messages ORDER BY id") == at_t
    assert {"name": "app.public.messages", "expected": None, "restored": 1500} in record.tables
    assert cluster.sql("SHOW archive_mode") == [("on",)]
    assert cluster.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0] > 1  # a new timeline
    # The page shows where the old one is.
    page = unescape(devops.get(response["Location"]).content.decode())
    assert "succeeded" in page and str(rollback) in page

    # It is production again: archiving on the new timeline reaches the repository, and it backs up.
    stanza = target.pgbackrest
    pgbr.run(stanza, "check", what="pgbackrest check")
    cluster.sql("INSERT INTO messages (body) VALUES ('after the restore')")
    again = backed_up(target)
    assert again.pgbackrest.type in ("full", "diff", "incr")
    data = pgbr.info(stanza)
    assert any(a.get("max", "").startswith("00000002") for a in data["archive"]), data["archive"]


def test_a_live_restore_without_the_stopped_cluster_the_permission_or_the_box_is_refused(cluster, target):  # noqa: F811
    from incidents.models import Incident, Severity

    backed_up(target)
    live = str(cluster.data)
    form = {"kind": "latest", "to": live, "replace_live": "on", "confirm": "yes"}
    link = cluster.base / f"link-to-data-{target.pk}"
    link.symlink_to(cluster.data)
    beside = cluster.folder("restores") / "beside"
    before = beside_live(cluster)
    devops = role_client("DevOps")

    # Every spelling of the live path is the live directory, never "a new folder": without the box, refused
    # on the page, running or not (whether it runs is the host's to check, and it is checked there).
    spellings = [live, f"{live}/", f"{live}//", f"{live}/.", f"{cluster.base}/./data", f"/{live}"]
    stopped = False
    for _ in range(2):
        for to in spellings:
            review = post(devops, moment_url(target), {"kind": "latest", "to": to, "replace_live": "on"})
            over_live = f"OVER THE LIVE DATA DIRECTORY {live} (the cluster must be stopped first)"
            assert over_live in plan_of_page(review), to
            assert "into a new data directory" not in plan_of_page(review)
            response = post(devops, moment_url(target), {"kind": "latest", "to": to, "confirm": "yes"})
            assert "tick “Replace the live data directory”" in problem_of(response), (to, problem_of(response))
        if not stopped:
            untouched(cluster, before, rows=1000)
            stop_with_marker(cluster)
            stopped = True
    # A symlink that leads to it: the web server cannot see where it leads, so the page reviews it as a new
    # folder; the database host resolves it and refuses it before touching anything (tested with a worker in
    # test_pitr_admin.py); here no restore is queued without the confirmation.
    review = post(devops, moment_url(target), {"kind": "latest", "to": str(link)})
    assert "where " + str(link) + " leads (symlinks resolved)" in checks_of_page(review), checks_of_page(review)

    # Without restore_backuprun: a viewer is turned away; a commander through an open incident (who may
    # restore into a new folder) is refused the live directory, naming the permission.
    viewer = role_client("Viewer")
    response = post(viewer, moment_url(target), form)
    assert response.status_code == 403 and "permission to restore backups" in response.content.decode()
    commander = role_client("Incident Commander")
    assert post(commander, moment_url(target), form).status_code == 403
    severity = Severity.objects.create(
        key="P1", name="Critical", response_time=timedelta(minutes=15), target_rto=timedelta(hours=4)
    )
    incident = Incident.open(title="Messages deleted", severity=severity)
    url = moment_url(target, f"?incident={incident.pk}")
    response = post(commander, url, form)
    assert response.status_code == 200
    assert "incident-commander lacks the restore_backuprun permission to restore over live data" in problem_of(response)
    assert "Yes, restore" not in response.content.decode()
    # The same commander may restore through the incident into a new folder: only the live one needs it.
    review = post(commander, url, {**form, "to": str(beside), "confirm": ""})
    assert not problem_of(review) and "into a new data directory" in plan_of_page(review)

    assert not Restore.objects.exists()
    untouched(cluster, before, rows=1000)


def test_a_cluster_started_after_the_restore_was_queued_is_refused_by_the_worker(
    cluster,  # noqa: F811
    target,
    tmp_path,
):
    """The page's checks are made again where it runs: someone started the cluster while the restore waited."""
    backed_up(target)
    before = beside_live(cluster)
    Target.objects.filter(pk=target.pk).update(queue="db-host-later")  # no worker listens yet
    stop_with_marker(cluster)
    devops = role_client("DevOps")
    response = post(
        devops, moment_url(target), {"kind": "latest", "to": str(cluster.data), "replace_live": "on", "confirm": "yes"}
    )
    assert response.status_code == 302, problem_of(response)
    record = Restore.objects.get()
    assert record.status == "queued"

    cluster.start()
    cluster.sql("INSERT INTO messages (body) VALUES ('written while the restore waited')")
    worker = start_worker(
        tmp_path / "later.log",
        extra_env={"PGBACKREST_CONFIG_DIR": str(pgbr.config_path(target.name).parent)},
        queues=["db-host-later"],
        name="db-host-later",
    )
    try:
        record = finished(record)
    finally:
        stop_worker(worker)

    assert record.status == "failed"
    assert f"the cluster in {cluster.data} is running: stop it first" in record.error, record.error
    assert re.fullmatch(r"\d\d:\d\d:\d\d refused: [^\n]*\n", record.log), record.log
    # The row names no rollback folder: nothing was moved.
    assert record.rollback_name == "", record.rollback_name
    assert running(cluster) and (cluster.data / MARKER).exists()
    untouched(cluster, before, rows=1001)


def test_a_worker_killed_during_a_live_restore_from_the_admin_is_rolled_back_by_the_reaper(
    cluster,  # noqa: F811
    target,
    db_host_worker,  # noqa: F811
    settings,
    tmp_path,
):
    """kill -9 while pgbackrest writes into the live path (the command-path test kills after the start)."""
    backed_up(target)
    _at_t, after_mistake, moment = write_then_make_the_mistake(cluster)
    Target.objects.filter(pk=target.pk).update(queue="db-host-killed")
    stop_with_marker(cluster)
    devops = role_client("DevOps")
    form = {"kind": "time", "moment": moment.isoformat(), "to": str(cluster.data), "replace_live": "on"}
    victim = start_worker(
        tmp_path / "victim.log",
        extra_env={"PGBACKREST_CONFIG_DIR": str(pgbr.config_path(target.name).parent)},
        concurrency=1,
        queues=["db-host-killed"],
        name="victim",
        launcher=killer_launcher("during-pgbackrest-restore"),
    )
    try:
        assert post(devops, moment_url(target), {**form, "confirm": "yes"}).status_code == 302
        victim.proc.wait(timeout=240)
    finally:
        stop_worker(victim)
    assert victim.proc.returncode == -signal.SIGKILL, victim.log()[-3000:]
    record = Restore.objects.get()
    assert record.status == "running", f"{record.status}: {record.error}\n{record.log}"
    rollback = Path(record.rollback_name)
    assert (rollback / MARKER).exists(), "the live directory was moved aside before pgbackrest wrote"
    assert cluster.data.is_dir() and not (cluster.data / MARKER).exists() and not running(cluster)

    settings.BACKUP_STALE_SECONDS = 0  # only the proof of death decides
    assert reap_stale_restores() == 1
    record.refresh_from_db()

    assert record.status == "failed"
    message = record.error
    assert message.startswith("the restore process stopped reporting and is presumed dead ("), message
    assert f"moved the half-restored data directory aside as {cluster.data}.failed-restore-" in message, message
    assert f"put the previous data directory back: {cluster.data} is as it was before the restore (stopped)" in message
    assert record.rollback_name == "" and not rollback.exists()
    assert (cluster.data / MARKER).exists() and not pgbr.lock_path(cluster.data).exists()
    cluster.start()
    assert cluster.sql("SELECT id, body FROM messages ORDER BY id") == after_mistake  # as it was before

    # Nothing the dead worker left stands in the way: the same restore, by the healthy worker, succeeds.
    Target.objects.filter(pk=target.pk).update(queue=QUEUE)
    cluster.stop()
    response = post(devops, moment_url(target), {**form, "confirm": "yes"})
    assert response.status_code == 302, problem_of(response)
    again = finished(Restore.objects.latest("pk"))
    assert again.status == "succeeded", again.error + "\n" + again.log
    assert {"name": "app.public.messages", "expected": None, "restored": 1500} in again.tables


def test_a_rollback_folder_that_exists_already_is_never_touched_nor_swapped_in(cluster, target):  # noqa: F811
    """The rollback name is taken (a restore kept it in this very second): refused, both folders as they were.

    Before, the rename failed and the "roll back" then moved the live directory aside and renamed the
    OLD folder into its place. Through the service as the command runs it, with the plan's own name.
    """
    from backups.services import pgbackrest

    backed_up(target)
    stop_with_marker(cluster)
    plan = pgbackrest.propose_pitr(target.name, latest=True, to=str(cluster.data))
    assert plan.in_place and plan.rollback is not None
    plan.rollback.mkdir()
    (plan.rollback / "PG_VERSION").write_text("an older data directory\n")
    before = beside_live(cluster)

    record = pgbackrest.record_pitr(plan, trigger=BackupRun.Trigger.COMMAND, command_user="tester")
    record = pgbackrest.execute_pitr(record, plan)

    assert record.status == "failed"
    assert f"{plan.rollback} exists already; keep or move it, then try again" in record.error, record.error
    assert "rolled back" not in record.error and record.rollback_name == ""
    assert (plan.rollback / "PG_VERSION").read_text() == "an older data directory\n"
    untouched(cluster, before, rows=1000)
