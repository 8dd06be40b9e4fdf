# ruff: noqa: F811 (the fixtures imported from tests.pitr_setup are the tests' arguments)
"""Restore a pgbackrest target to a moment from the admin and from an incident, run by a real worker.

The module's cluster, the worker of the target's queue (as on the database host) and a new target
per test come from tests/pitr_setup.py. People are role users, not superusers, and their POSTs are
typed by hand with a real CSRF token.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, timedelta
from html import unescape

import pytest
from django.urls import reverse

from backups.engines import pgbackrest as pgbr
from backups.models import BackupRun, Restore, Target, Verification
from backups.services import backup
from tests.conftest import role_client, wait_for
from tests.pitr_setup import (  # noqa: F401 (module fixtures, used by name)
    cluster,
    conf_dir,
    db_host_worker,
    finished,
    moment_url,
    post,
    target,
    write_then_make_the_mistake,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_devops_restores_to_a_moment_from_the_admin_through_a_real_worker(cluster, target, db_host_worker):
    devops = role_client("DevOps")

    # Full backup from the admin: the button on the target's page, run by the worker of its queue.
    response = post(devops, reverse("admin:backups_target_backup", args=[target.pk]), {})
    assert response.status_code == 302
    run = BackupRun.objects.get(target=target)
    wait_for(lambda: BackupRun.objects.get(pk=run.pk).is_finished, timeout=180, message="the backup")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error + db_host_worker.log()[-3000:]
    assert run.pgbackrest.type == "full" and run.triggered_by.username == "devops"
    wait_for(
        lambda: Verification.objects.filter(run=run).exclude(status__in=["queued", "running"]).exists(),
        timeout=180,
        message="the verification after the backup",
    )

    at_t, after_mistake, moment = write_then_make_the_mistake(cluster)

    page = devops.get(reverse("admin:backups_target_change", args=[target.pk])).content.decode()
    assert moment_url(target) in page and "Restore to a moment…" in page
    # The run's own "Restore…" leads to the same form (a pgBackRest run is one backup set of the target's).
    response = devops.get(reverse("admin:backups_backuprun_restore", args=[run.pk]))
    assert response.status_code == 302 and response["Location"] == moment_url(target)
    assert devops.get(moment_url(target)).status_code == 200

    destination = cluster.folder("restores") / "from-admin"
    form = {"kind": "time", "moment": moment.isoformat(), "to": str(destination), "keep_running": "on"}
    review = post(devops, moment_url(target), form)
    assert review.status_code == 200
    text = unescape(review.content.decode())
    assert "cannot go ahead" not in text, re.findall(r'errornote"[^>]*>([^<]*)', text)
    assert f"Restore target maindb to {moment.isoformat()} with pgBackRest" in text
    assert f"from backup set {run.pgbackrest.label} (run #{run.pk}) plus archived WAL" in text
    assert f"into a new data directory {destination}" in text and "left running for you to switch over" in text
    assert not Restore.objects.exists()  # reviewing changes nothing

    response = post(devops, moment_url(target), {**form, "confirm": "yes"})
    assert response.status_code == 302
    record = Restore.objects.get()
    assert response["Location"] == reverse("admin:backups_restore_change", args=[record.pk])
    assert (record.target, record.recovery_kind, record.recovery_target) == (target, "time", moment.isoformat())
    assert record.triggered_by.username == "devops" and record.run == run and record.keep_running

    record = finished(record)
    assert record.status == "succeeded", record.error + "\n" + record.log + db_host_worker.log()[-3000:]
    assert {"name": "app.public.messages", "expected": None, "restored": 1500} in record.tables
    assert record.duration.total_seconds() > 0 and "(RTO evidence)" in record.log
    # A new cluster with exactly the rows as at T, that never archives into the production repository.
    assert cluster.sql("SELECT id, body FROM messages ORDER BY id", port=record.port) == at_t
    assert cluster.sql("SHOW archive_mode", port=record.port) == [("off",)]
    # The live cluster is untouched and still archiving.
    assert cluster.sql("SELECT id, body FROM messages ORDER BY id") == after_mistake
    assert cluster.sql("SHOW archive_mode") == [("on",)]
    # The page follows it to the result: rows per table, how long it took.
    page = unescape(devops.get(response["Location"]).content.decode())
    assert "succeeded" in page and "app.public.messages" in page and "1500" in page and "(RTO evidence)" in page
    pgbr.pg_ctl("postgres", "stop", "-D", str(destination), "-m", "fast", "-w")


def test_an_lsn_restore_from_the_page_starts_from_the_set_that_had_stopped_by_it(cluster, target, db_host_worker):
    """Kind LSN on the page, carried out by the worker: the newest set stopped after L, so the older one is used."""
    devops = role_client("DevOps")
    first = backup.execute(backup.start_backup(target, trigger="command"))
    assert first.status == "succeeded", first.error
    cluster.sql("INSERT INTO messages (body) SELECT 'after the backup ' || g FROM generate_series(1, 500) g")
    at_l = cluster.sql("SELECT id, body FROM messages ORDER BY id")
    lsn = cluster.sql("SELECT pg_current_wal_lsn()::text")[0][0]
    cluster.sql("DELETE FROM messages WHERE id > 100")  # the mistake, then a newer backup that holds it
    second = backup.execute(backup.start_backup(target, trigger="command"))
    assert second.status == "succeeded", second.error
    destination = cluster.folder("restores") / "to-an-lsn"
    form = {"kind": "lsn", "lsn": lsn, "to": str(destination)}

    text = unescape(post(devops, moment_url(target), form).content.decode())
    assert "cannot go ahead" not in text, re.findall(r'errornote"[^>]*>([^<]*)', text)
    assert f"Restore target maindb to LSN {lsn} with pgBackRest" in text
    assert f"from backup set {first.pgbackrest.label} (run #{first.pk}) plus archived WAL" in text
    assert f"at or before LSN {lsn}" in text
    response = post(devops, moment_url(target), {**form, "confirm": "yes"})
    assert response.status_code == 302

    record = finished(Restore.objects.get())
    assert record.status == "succeeded", record.error + "\n" + record.log + db_host_worker.log()[-3000:]
    assert (record.recovery_kind, record.recovery_target, record.run) == ("lsn", lsn, first)
    assert f"--set={first.pgbackrest.label} --type=lsn --target={lsn}" in record.log
    assert {"name": "app.public.messages", "expected": None, "restored": len(at_l)} in record.tables
    assert not destination.exists()  # checked, then stopped and removed
    assert cluster.sql("SELECT count(*) FROM messages") == [(100,)]  # the live cluster, untouched


def test_an_incident_proposes_a_restore_to_its_impact_start_and_confirming_it_restores_to_t(
    cluster, target, db_host_worker
):
    from incidents.models import Incident, IncidentJob, Severity, TimelineEntry

    commander = role_client("Incident Commander")
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    at_t, _after, moment = write_then_make_the_mistake(cluster)
    severity = Severity.objects.create(
        key="P1", name="Critical", response_time=timedelta(minutes=15), target_rto=timedelta(hours=4)
    )
    incident = Incident.open(title="Messages deleted", severity=severity, impact_started_at=moment)

    # The helper offers the impact start, to the second, and the pgbackrest target.
    page = commander.get(reverse("admin:incidents_incident_change", args=[incident.pk])).content.decode()
    helper = page[page.index('id="restore-before"') :]
    before = re.search(r'name="before"[^>]*value="([^"]+)"', helper).group(1)
    assert before == f"{moment:%Y-%m-%d %H:%M:%S}" and f'<option value="{target.pk}"' in helper

    response = post(
        commander,
        reverse("admin:incidents_incident_restore_before", args=[incident.pk]),
        {"target": target.pk, "before": before},
    )
    # Not "the newest dump before T": a restore to T itself, on the same page as the admin's.
    assert response.status_code == 302
    assert response["Location"].startswith(moment_url(target, f"?incident={incident.pk}&time="))
    proposal = incident.timeline.get(proposal_state=TimelineEntry.Proposal.AWAITING)
    assert f"Restore of maindb to {moment:%Y-%m-%d %H:%M:%S} UTC (point in time) proposed" in proposal.text
    assert f"backup set {run.pgbackrest.label} (backup run #{run.pk})" in proposal.text

    url = response["Location"]
    page = commander.get(url).content.decode()
    assert unescape(re.search(r'name="moment"[^>]*value="([^"]+)"', page).group(1)) == moment.isoformat()
    destination = cluster.folder("restores") / "from-incident"
    form = {"kind": "time", "moment": moment.isoformat(), "to": str(destination), "keep_running": "on"}
    assert "Yes, restore" in post(commander, url, form).content.decode()
    response = post(commander, url, {**form, "confirm": "yes"})
    assert response.status_code == 302, response.content.decode()[:2000]
    record = Restore.objects.get()
    assert IncidentJob.objects.get(incident=incident).restore == record
    proposal.refresh_from_db()
    assert proposal.proposal_state == TimelineEntry.Proposal.CONFIRMED

    record = finished(record)
    assert record.status == "succeeded", record.error + "\n" + record.log
    assert cluster.sql("SELECT id, body FROM messages ORDER BY id", port=record.port) == at_t
    texts = list(incident.timeline.values_list("text", flat=True))
    assert any(f"restore #{record.pk}" in t.lower() and "succeeded" in t.lower() for t in texts), texts
    pgbr.pg_ctl("postgres", "stop", "-D", str(destination), "-m", "fast", "-w")


def test_hand_typed_restores_to_a_moment_without_the_permission_are_403(cluster, target):
    from incidents.models import Incident, Severity

    destination = cluster.folder("restores") / "never"
    form = {"kind": "latest", "to": str(destination), "confirm": "yes"}
    viewer = role_client("Viewer")
    assert viewer.get(moment_url(target)).status_code == 403
    response = post(viewer, moment_url(target), form)
    assert response.status_code == 403 and "permission to restore backups" in response.content.decode()
    # A commander restores only through an open incident; by hand, without one, it is refused too.
    commander = role_client("Incident Commander")
    assert post(commander, moment_url(target), form).status_code == 403
    severity = Severity.objects.create(
        key="P2", name="High", response_time=timedelta(hours=1), target_rto=timedelta(hours=8)
    )
    incident = Incident.open(title="x", severity=severity)
    response = post(viewer, moment_url(target, f"?incident={incident.pk}"), form)
    assert response.status_code == 403 and "permission to start a restore from an incident" in response.content.decode()
    response = post(
        viewer,
        reverse("admin:incidents_incident_restore_before", args=[incident.pk]),
        {"target": target.pk, "before": "2026-01-01 00:00:00"},
    )
    assert response.status_code == 403
    assert not Restore.objects.exists() and not destination.exists()


def test_a_time_before_the_first_backup_is_refused_saying_why(cluster, target):
    from incidents.models import Incident, Severity

    devops = role_client("DevOps")
    too_early = cluster.sql("SELECT now()")[0][0].astimezone(UTC)
    time.sleep(1.1)
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    first_stop = run.pgbackrest.stopped_at
    destination = cluster.folder("restores") / "too-early"
    form = {"kind": "time", "moment": too_early.isoformat(), "to": str(destination), "confirm": "yes"}

    response = post(devops, moment_url(target), form)

    assert response.status_code == 200
    problem = unescape(re.search(r'id="restore-problem">([^<]*)<', response.content.decode()).group(1))
    assert f"no backup had finished by {too_early.isoformat()}" in problem, problem
    earliest = (first_stop + timedelta(seconds=1)).isoformat()
    assert f"the earliest moment it can restore to is {earliest}" in problem, problem
    assert "WAL before a backup cannot be replayed without one" in problem
    assert "Yes, restore" not in response.content.decode()
    # The other refusals a tired operator meets, in words.
    cases = {
        "is in the future; WAL past it will be archived by about": {"moment": "2999-01-01T00:00:00Z"},
        "has no time zone; add Z for UTC": {"moment": "2026-01-01T00:00:00"},
        "Say to which time": {"moment": ""},
        "must be an absolute path": {"to": "relative/dir"},
        "is inside (or contains) the live data directory": {"kind": "latest", "to": str(cluster.data / "x")},
        # Over the live data: whether the cluster is stopped is the database host's to say (see
        # test_over_the_running_live_cluster_the_page_reviews_and_the_worker_refuses); the page asks for the tick.
        "tick “Replace the live data directory”": {"kind": "latest", "to": str(cluster.data)},
    }
    for expected, change in cases.items():
        page = unescape(post(devops, moment_url(target), {**form, **change}).content.decode())
        assert expected in page, (expected, re.findall(r'errornote"[^>]*>([^<]*)', page), change)
    assert not Restore.objects.exists() and not destination.exists()

    # From an incident, the same refusal before any page is offered.
    commander = role_client("Incident Commander")
    severity = Severity.objects.create(
        key="P1", name="Critical", response_time=timedelta(minutes=15), target_rto=timedelta(hours=4)
    )
    incident = Incident.open(title="Too early", severity=severity, impact_started_at=too_early)
    response = commander.post(
        reverse("admin:incidents_incident_restore_before", args=[incident.pk]),
        {"target": target.pk, "before": f"{too_early:%Y-%m-%d %H:%M:%S}", "csrfmiddlewaretoken": commander.token},
        follow=True,
    )
    text = unescape(response.content.decode())
    assert "Cannot restore maindb to" in text and "no backup had finished by" in text
    assert not incident.timeline.filter(proposal_state="awaiting").exists()


def test_two_restores_confirmed_at_once_into_one_folder_the_second_is_refused_by_the_worker(
    cluster, target, db_host_worker
):
    devops = role_client("DevOps")
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    destination = cluster.folder("restores") / "contended"
    form = {"kind": "latest", "to": str(destination), "keep_running": "on", "confirm": "yes"}
    # Both pass the page's checks (the folder is still empty); the worker checks again and claims the folder.
    assert post(devops, moment_url(target), form).status_code == 302
    assert post(devops, moment_url(target), form).status_code == 302
    records = [finished(r) for r in Restore.objects.order_by("pk")]
    assert sorted(r.status for r in records) == ["failed", "succeeded"], [r.error for r in records]
    winner = next(r for r in records if r.status == "succeeded")
    loser = next(r for r in records if r.status == "failed")
    assert "is writing into" in loser.error or "is not empty" in loser.error, loser.error
    assert {"name": "app.public.messages", "expected": None, "restored": 1000} in winner.tables
    # The loser removed nothing of the winner's: its cluster still answers from that folder.
    assert cluster.sql("SELECT count(*) FROM messages", port=winner.port) == [(1000,)]
    assert not list(destination.parent.glob(".*.drportal-restore.lock"))
    pgbr.pg_ctl("postgres", "stop", "-D", str(destination), "-m", "fast", "-w")


def test_the_portals_pgbackrest_settings_never_reach_pgbackrest_as_options(cluster, target, monkeypatch, settings):
    """pgBackRest reads any PGBACKREST_* variable as an option: the portal's own settings must stay out of it."""
    monkeypatch.setenv("PGBACKREST_REPO_BUNDLE", "1")  # as repo-bundle: "requires an index", an error
    monkeypatch.setenv("PGBACKREST_CONFIG_DIR", str(pgbr.config_path("maindb").parent))  # a warning
    settings.PGBACKREST_REPO_BUNDLE = True

    run = backup.execute(backup.start_backup(target, trigger="command"))

    assert run.status == "succeeded", run.error
    assert "repo1-bundle=y" in pgbr.config_path("maindb").read_text()


# --- the page checks what holds anywhere; the database host checks the rest ------------------------------

HOST_CHECKS = "The worker on the database host (queue db-host) checks again before touching anything: "
REFUSED_THERE = "; if any fails, the restore is refused on its page, saying why."


def review(client, target: Target, form: dict) -> tuple[str, list[str]]:
    """Post the form for review (not confirmed): the page's text and its "what was checked" lines."""
    response = post(client, moment_url(target), form)
    assert response.status_code == 200
    text = unescape(response.content.decode())
    assert "cannot go ahead" not in text, re.findall(r'errornote"[^>]*>([^<]*)', text)
    assert "Yes, restore" in text
    checks = re.search(r'id="restore-checks">(.*?)</ul>', text, re.S).group(1)
    return text, re.findall(r"<li>(.*?)</li>", checks, re.S)


def problem_of(response) -> str:
    """The refusal the page shows, in words (never a traceback)."""
    assert response.status_code == 200
    text = unescape(re.search(r'id="restore-problem">([^<]*)<', response.content.decode()).group(1))
    return text.removeprefix("This restore cannot go ahead: ")


def test_the_folder_checks_are_the_database_hosts_the_page_says_so_and_the_worker_refuses_on_the_row(
    cluster, target, db_host_worker
):
    devops = role_client("DevOps")
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    label, ended = run.pgbackrest.label, run.pgbackrest.stopped_at.isoformat()
    restores = cluster.folder("restores")
    no_parent = restores / "no-such-folder" / "data"
    busy = restores / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("not yours")
    reasons = {
        no_parent: f"--to {no_parent}: its parent folder {no_parent.parent} does not exist",
        busy: f"--to {busy} exists and is not empty; name a new folder",
    }
    records = {}
    for destination in reasons:
        form = {"kind": "latest", "to": str(destination)}

        # The page does not look at the folder (it may be another machine): it reviews, and says who checks it.
        text, checks = review(devops, target, form)

        assert f"into a new data directory {destination}, started on a free port, archive_mode=off" in text
        assert checks == [
            f"Checked here from the portal's catalogue: backup set {label} (run #{run.pk}), the newest, ended at "
            f"{ended}.",
            f"{HOST_CHECKS}where {destination} leads (symlinks resolved), that the destination folder is new and "
            f"empty and its parent exists, that a free port is picked there, and pgBackRest's own catalogue"
            f"{REFUSED_THERE}",
        ]
        assert "Checked on the database host" not in text  # never claimed before it ran
        response = post(devops, moment_url(target), {**form, "confirm": "yes"})
        assert response.status_code == 302
        records[destination] = Restore.objects.latest("pk")

    for destination, record in records.items():
        record = finished(record)
        assert record.status == "failed" and record.error == reasons[destination], record.error + record.log
        assert f"refused: {reasons[destination]}" in record.log and record.rollback_name == ""
        assert not record.scratch_name and record.started_at is not None  # the worker took it, and made nothing
        page = unescape(devops.get(reverse("admin:backups_restore_change", args=[record.pk])).content.decode())
        assert reasons[destination] in page
    assert not no_parent.parent.exists()
    assert [p.name for p in busy.iterdir()] == ["keep.txt"] and (busy / "keep.txt").read_text() == "not yours"


def test_the_page_reviews_from_the_catalogue_when_pgbackrest_cannot_run_in_the_web_process(
    cluster, target, db_host_worker, settings
):
    from backups.engines import SourceError

    devops = role_client("DevOps")
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    at_t, after_mistake, moment = write_then_make_the_mistake(cluster)
    # The web process has no pgBackRest (nor the stanza's configuration); the worker has its own settings.
    settings.PGBACKREST_BIN = "/nonexistent/pgbackrest"
    with pytest.raises(SourceError):
        pgbr.info(target.pgbackrest)
    destination = cluster.folder("restores") / "web-without-pgbackrest"
    form = {"kind": "time", "moment": moment.isoformat(), "to": str(destination)}

    text, checks = review(devops, target, form)

    assert f"from backup set {run.pgbackrest.label} (run #{run.pk}) plus archived WAL" in text
    assert "checked, then stopped and removed" in text
    assert checks[0] == (
        f"Checked here from the portal's catalogue: backup set {run.pgbackrest.label} (run #{run.pk}) ended at "
        f"{run.pgbackrest.stopped_at.isoformat()}, before {moment.isoformat()}."
    )
    assert checks[1].startswith(HOST_CHECKS) and checks[1].endswith(REFUSED_THERE)

    response = post(devops, moment_url(target), {**form, "confirm": "yes"})
    assert response.status_code == 302
    record = finished(Restore.objects.get())
    assert record.status == "succeeded", record.error + "\n" + record.log + db_host_worker.log()[-3000:]
    # The worker made the host's checks (and wrote that it did), with pgBackRest's own catalogue.
    assert f"Checked on the database host: {destination} is a new or empty folder whose parent exists, port " in (
        record.log
    )
    assert (
        f"pgBackRest's own catalogue: backup set {run.pgbackrest.label} (run #{run.pk}) ended at "
        f"{run.pgbackrest.stopped_at.isoformat()}, before {moment.isoformat()}." in record.log
    )
    assert {"name": "app.public.messages", "expected": None, "restored": len(at_t)} in record.tables
    assert f"stopped and removed {destination}" in record.log and not destination.exists()
    assert cluster.sql("SELECT id, body FROM messages ORDER BY id") == after_mistake


def test_the_catalogues_refusals_come_out_on_the_page_without_pgbackrest(cluster, target, settings):
    devops = role_client("DevOps")
    real_bin = settings.PGBACKREST_BIN
    settings.PGBACKREST_BIN = "/nonexistent/pgbackrest"
    destination = cluster.folder("restores") / "refused"
    latest = {"kind": "latest", "to": str(destination), "confirm": "yes"}

    no_backup = (
        "the portal's catalogue holds no finished backup of maindb yet: run a full backup first (one made outside "
        "the portal counts once `manage.py rebuildcatalog <location>` has imported it)"
    )
    assert problem_of(post(devops, moment_url(target), latest)) == no_backup

    too_early = cluster.sql("SELECT now()")[0][0].astimezone(UTC)
    time.sleep(1.1)
    settings.PGBACKREST_BIN = real_bin
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    settings.PGBACKREST_BIN = "/nonexistent/pgbackrest"
    first_stop = run.pgbackrest.stopped_at
    response = post(devops, moment_url(target), {**latest, "kind": "time", "moment": too_early.isoformat()})
    assert problem_of(response) == (
        f"no backup had finished by {too_early.isoformat()}: the earliest moment it can restore to is "
        f"{(first_stop + timedelta(seconds=1)).isoformat()} (the first backup of maindb ended at "
        f"{first_stop.isoformat()}; WAL before a backup cannot be replayed without one)"
    )
    assert "Yes, restore" not in response.content.decode()
    # A copy pgBackRest expired (its retention) is no backup set to start from; nor is a failed run's.
    run.artifacts.update(status="deleted")
    assert problem_of(post(devops, moment_url(target), latest)) == no_backup
    run.artifacts.update(status="stored")
    BackupRun.objects.filter(pk=run.pk).update(status="failed")
    assert problem_of(post(devops, moment_url(target), latest)) == no_backup
    assert not Restore.objects.exists() and not destination.exists()


def test_over_the_running_live_cluster_the_page_reviews_and_the_worker_refuses(cluster, target, db_host_worker):
    devops = role_client("DevOps")
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    form = {"kind": "latest", "to": str(cluster.data), "replace_live": "on"}

    text, checks = review(devops, target, form)

    assert f"OVER THE LIVE DATA DIRECTORY {cluster.data} (the cluster must be stopped first)" in text
    assert "(the cluster is stopped)" not in text
    assert checks[1] == (
        f"{HOST_CHECKS}where {cluster.data} leads (symlinks resolved), that the cluster is stopped, and pgBackRest's "
        f"own catalogue{REFUSED_THERE}"
    )
    response = post(devops, moment_url(target), {**form, "confirm": "yes"})
    assert response.status_code == 302
    record = finished(Restore.objects.get())
    assert record.status == "failed", record.log
    assert record.error == (
        f"the cluster in {cluster.data} is running: stop it first (pg_ctl stop) to restore over it"
    ), record.error
    assert record.rollback_name == ""  # nothing was kept aside: its page must not say so
    assert not list(cluster.base.glob("data.pre-restore-*"))
    assert cluster.sql("SELECT count(*) FROM messages") == [(1000,)]  # the live cluster, untouched and up


def test_symlinks_are_the_database_hosts_to_resolve_and_the_live_guards_hold_there(cluster, target):
    from backups.services import pgbackrest

    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    links = cluster.folder("links")
    into_live = links / "into-live"
    into_live.unlink(missing_ok=True)
    into_live.symlink_to(cluster.data / "restored-here")
    to_live = links / "to-live"
    to_live.unlink(missing_ok=True)
    to_live.symlink_to(cluster.data)
    refusals = {
        into_live: f"--to {into_live} is inside (or contains) the live data directory {cluster.data} (through a "
        f"symlink: it leads to {cluster.data / 'restored-here'}); choose a separate folder",
        to_live: f"--to {to_live} leads to the live data directory {cluster.data} through a symlink: to restore "
        f"over the live data, name {cluster.data} itself (with the cluster stopped)",
    }
    for destination, refusal in refusals.items():
        # As written, the path is a separate folder: the page (no filesystem) cannot know better.
        plan = pgbackrest.propose_pitr("maindb", latest=True, to=str(destination), on_host=False)
        assert not plan.in_place and not plan.host_checked
        # Where it really leads is for the database host (the worker, the restore command) to say.
        with pytest.raises(pgbackrest.PitrRefused) as refused:
            pgbackrest.propose_pitr("maindb", latest=True, to=str(destination), on_host=True)
        assert str(refused.value) == refusal
    with pytest.raises(pgbackrest.PitrRefused, match="must be an absolute path without '..'"):
        pgbackrest.propose_pitr("maindb", latest=True, to=f"{links}/../data", on_host=False)
    assert not (cluster.data / "restored-here").exists() and not Restore.objects.exists()
