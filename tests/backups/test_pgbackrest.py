"""The pgbackrest engine against real throwaway clusters, a posix repository and moto's S3 over TLS."""

from __future__ import annotations

import json
import logging
import os
import pwd
import stat
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from backups.engines import pgbackrest as pgbr
from backups.models import BackupRun, Location, PgBackRestBackup, PgBackRestStanza, Restore, Target
from backups.services import backup, pgbackrest
from tests.conftest import target_form
from tests.pg_cluster import make_pgbr_target, pg_cluster, posix_location, s3_tls  # noqa: F401

pytestmark = pytest.mark.django_db


def s3_tls_location(s3, name: str = "s3tls") -> Location:
    return Location.objects.create(name=name, url=f"s3://{s3.bucket()}/pitr", endpoint_url=s3.endpoint)


def backup_now(target: Target, kind: str | None = None) -> BackupRun:
    run = backup.start_backup(target, trigger="command")
    if kind:
        pgbackrest.request_type(run, kind)
    return backup.execute(run)


def seed(cluster, rows: int = 1000) -> None:
    cluster.sql("CREATE TABLE IF NOT EXISTS messages (id bigserial PRIMARY KEY, body text NOT NULL)")
    cluster.sql("INSERT INTO messages (body) SELECT 'message ' || g FROM generate_series(1, %s) g", (rows,))


@pytest.fixture
def cluster_and_target(pg_cluster):  # noqa: F811
    cluster = pg_cluster("maindb")
    target = make_pgbr_target(cluster, [posix_location(cluster)])
    return cluster, target


def test_setup_prints_postgresql_conf_lines_and_writes_a_private_config(pg_cluster):  # noqa: F811
    cluster = pg_cluster("maindb")
    target = make_pgbr_target(cluster, [posix_location(cluster)])
    out, err = StringIO(), StringIO()

    call_command("pgbackrest-setup", "maindb", "--apply", stdout=out, stderr=err)

    lines = out.getvalue().splitlines()
    assert "archive_mode = on" in lines and "wal_level = replica" in lines and "archive_timeout = 60" in lines
    assert f"archive_command = '{pgbr.archive_command('maindb')}'" in lines
    # The command it prints is the one the cluster runs: archiving works through it.
    assert "check: ok" in err.getvalue()
    config = pgbr.config_path("maindb")
    mode = os.stat(config)
    assert stat.S_IMODE(mode.st_mode) == 0o600 and pwd.getpwuid(mode.st_uid).pw_name == "postgres"
    stanza = PgBackRestStanza.objects.get(target=target)
    assert f"repo1-cipher-pass={stanza.cipher_pass}" in config.read_text()
    assert "repo1-cipher-type=aes-256-cbc" in config.read_text()
    # Encrypted at rest: the raw column does not hold the passphrase.
    with connection.cursor() as cur:
        cur.execute("SELECT cipher_pass FROM backups_pgbackreststanza WHERE id = %s", [stanza.pk])
        assert stanza.cipher_pass not in cur.fetchone()[0]
    assert stanza.cipher_pass not in out.getvalue() + err.getvalue()


def test_setup_of_a_non_pgbackrest_target_is_a_one_line_error(db, local_location):
    from django.core.management.base import CommandError

    Target.objects.create(name="other", engine="sqlite", source="sqlite:///x.db").locations.set([local_location])
    with pytest.raises(CommandError, match="uses the sqlite engine, not pgbackrest"):
        call_command("pgbackrest-setup", "other", stdout=StringIO())


def test_full_backup_to_posix_and_s3_is_catalogued_from_pgbackrest_info(pg_cluster, s3_tls, age_key, caplog):  # noqa: F811
    cluster = pg_cluster("maindb")
    local, remote = posix_location(cluster, keep_last=2), s3_tls_location(s3_tls)
    target = make_pgbr_target(cluster, [local, remote])
    seed(cluster)

    run = backup_now(target, "full")

    assert run.status == "succeeded", run.error
    detail = PgBackRestBackup.objects.get(run=run)
    assert detail.type == "full" and detail.label.endswith("F")
    assert detail.lsn_start and detail.lsn_stop and detail.wal_start and detail.wal_stop
    assert detail.database_size > 1_000_000 and 0 < detail.repository_size < detail.database_size
    assert detail.started_at <= detail.stopped_at
    copies = {a.location.name: a for a in run.artifacts.all()}
    assert set(copies) == {"local", "s3tls"}
    assert copies["local"].url.startswith(local.url) and copies["s3tls"].url.startswith(remote.url)
    assert run.sha256 == copies["local"].sha256 and len(run.sha256) == 64
    config = pgbr.config_path("maindb").read_text()
    assert "repo1-retention-full=2" in config and "repo2-type=s3" in config and "repo2-storage-verify-tls=n" in config
    # The escrowed passphrase beside each repository opens with the age key and nothing else.
    stanza = PgBackRestStanza.objects.get(target=target)
    escrow = Path(local.url[len("file://") :]) / "pgbackrest" / "maindb.cipher-pass.age"
    opened = subprocess.run(
        ["age", "-d", "-i", str(age_key.identity_file), str(escrow)], capture_output=True, text=True, check=True
    )
    assert opened.stdout == stanza.cipher_pass
    assert remote.backend().size("pgbackrest/maindb.cipher-pass.age") > 0
    # pgBackRest's repository describes itself (backup.info): no portal index beside it claims its copies are
    # age-encrypted artifacts, and ending the run logged no error (writing that index once raised KeyError).
    for location in (local, remote):
        assert not location.backend().exists("maindb/manifest.json")
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]

    # An incremental on top: pgBackRest's type and prior are recorded.
    cluster.sql("INSERT INTO messages (body) VALUES ('after the full')")
    incr = backup_now(target, "incr")
    assert incr.status == "succeeded", incr.error
    assert incr.pgbackrest.type == "incr" and incr.pgbackrest.prior == detail.label


def test_a_failing_pgbackrest_is_shown_verbatim_with_its_exit_code(cluster_and_target):
    cluster, target = cluster_and_target
    pgbackrest.setup(target)
    cluster.stop()

    run = backup_now(target, "full")

    assert run.status == "failed"
    assert "pgbackrest backup to repo1 (local) failed with exit code" in run.error
    assert "ERROR: [" in run.error  # pgBackRest's own words
    assert PgBackRestStanza.objects.get(target=target).cipher_pass not in run.error


def test_backup_command_type_defaults_to_what_the_schedule_takes_next(cluster_and_target):
    cluster, target = cluster_and_target
    stanza = target.pgbackrest
    target.schedule = "0 1 * * 0"  # weekly full
    target.save()
    stanza.schedule_incr = "* * * * *"  # every minute: always next
    stanza.save()
    assert pgbackrest.next_type(stanza) == "incr"
    stanza.schedule_incr = ""
    assert pgbackrest.next_type(stanza) == "full"

    out = StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("backup", "maindb", "--type", "diff", "--verify", "no", "--json", stdout=out, stderr=StringIO())
        raise SystemExit(0)
    assert exc.value.code == 0, out.getvalue()
    result = json.loads(out.getvalue())
    run = BackupRun.objects.get(pk=result["id"])
    # No full backup existed yet: pgBackRest made a full one and the catalogue says so.
    assert run.pgbackrest.requested_type == "diff" and run.pgbackrest.type == "full"


def test_rebuildcatalog_imports_pgbackrest_backups(cluster_and_target):
    cluster, target = cluster_and_target
    run = backup_now(target, "full")
    assert run.status == "succeeded", run.error
    label = run.pgbackrest.label
    BackupRun.objects.filter(pk=run.pk).delete()

    out = StringIO()
    call_command("rebuildcatalog", "local", stdout=out, stderr=StringIO())

    assert "target maindb (pgBackRest, all its repositories): 1 backup(s) added" in out.getvalue()
    imported = BackupRun.objects.get(target=target)
    assert imported.trigger == "rebuilt" and imported.pgbackrest.label == label and imported.status == "succeeded"
    assert pgbackrest.import_info(target).already_known == 1


def restore_cmd(*args: str) -> tuple[int, dict]:
    out = StringIO()
    try:
        call_command("restore", *args, "--yes", "--json", stdout=out, stderr=StringIO())
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def test_restore_to_just_before_the_mistake(pg_cluster):  # noqa: F811
    """THE scenario: full backup; write rows; note T; delete most rows; restore --time T in a new cluster."""
    cluster = pg_cluster("maindb")
    target = make_pgbr_target(cluster, [posix_location(cluster)])
    seed(cluster, 1000)
    full = backup_now(target, "full")
    assert full.status == "succeeded", full.error
    cluster.sql("SELECT pg_sleep(1.1)")  # pgBackRest keeps whole seconds: T after the backup's stop second
    cluster.sql("INSERT INTO messages (body) SELECT 'after the backup ' || g FROM generate_series(1, 500) g")
    at_t = cluster.sql("SELECT id, body FROM messages ORDER BY id")
    moment = cluster.sql("SELECT now()")[0][0]
    cluster.sql("SELECT pg_sleep(1.1)")
    cluster.sql("DELETE FROM messages WHERE id > 100")  # the mistake
    after_mistake = cluster.sql("SELECT id, body FROM messages ORDER BY id")
    assert len(at_t) == 1500 and len(after_mistake) == 100

    new_dir = cluster.folder("restores") / "at-t"
    code, result = restore_cmd("maindb", "--time", moment.isoformat(), "--to", str(new_dir), "--keep-running")

    assert code == 0, result
    assert result["status"] == "succeeded" and result["run"] == full.pk
    port = int(
        next(line for line in result["log"].splitlines() if "left running on port" in line).split("port ")[1].split()[0]
    )
    assert cluster.sql("SELECT id, body FROM messages ORDER BY id", port=port) == at_t
    assert {"name": "app.public.messages", "expected": None, "restored": 1500} in result["tables"]
    assert result["duration_seconds"] > 0
    # The restored copy never archives into the production repository.
    assert cluster.sql("SHOW archive_mode", port=port) == [("off",)]
    # The live cluster is untouched and still archiving.
    assert cluster.sql("SELECT id, body FROM messages ORDER BY id") == after_mistake
    assert cluster.sql("SHOW archive_mode") == [("on",)]
    pgbr.pg_ctl("postgres", "stop", "-D", str(new_dir), "-m", "fast", "-w")

    # An incremental taken after the mistake still restores to T (from the set that finished before T).
    incr = backup_now(target, "incr")
    assert incr.status == "succeeded", incr.error
    other = cluster.folder("restores") / "at-t-again"
    code, result = restore_cmd("maindb", "--time", moment.isoformat(), "--to", str(other))
    assert code == 0, result
    assert {"name": "app.public.messages", "expected": None, "restored": 1500} in result["tables"]
    assert not other.exists(), "without --keep-running the restored copy is stopped and removed"
    assert "stopped and removed" in result["log"]


def test_restore_to_an_lsn_starts_from_the_newest_backup_that_had_stopped_by_it(pg_cluster):  # noqa: F811
    """Full backup; rows; note LSN L; the mistake; another full backup: --lsn L starts from the first one.

    The newest set stopped after L: PostgreSQL could not stop at L from it (not consistent before its stop LSN).
    """
    cluster = pg_cluster("maindb")
    target = make_pgbr_target(cluster, [posix_location(cluster)])
    seed(cluster, 1000)
    first = backup_now(target, "full")
    assert first.status == "succeeded", first.error
    cluster.sql("INSERT INTO messages (body) SELECT 'after the backup ' || g FROM generate_series(1, 500) g")
    at_l = cluster.sql("SELECT id, body FROM messages ORDER BY id")
    lsn = cluster.sql("SELECT pg_current_wal_lsn()::text")[0][0]
    cluster.sql("DELETE FROM messages WHERE id > 100")  # the mistake
    after_mistake = cluster.sql("SELECT id, body FROM messages ORDER BY id")
    second = backup_now(target, "full")
    assert second.status == "succeeded", second.error
    first_stop, second_stop = first.pgbackrest.lsn_stop, second.pgbackrest.lsn_stop
    assert pgbr.lsn_to_int(first_stop) <= pgbr.lsn_to_int(lsn) < pgbr.lsn_to_int(second_stop)
    assert len(at_l) == 1500 and len(after_mistake) == 100

    new_dir = cluster.folder("restores") / "at-l"
    code, result = restore_cmd("maindb", "--lsn", lsn, "--to", str(new_dir), "--keep-running")

    assert code == 0, result
    assert result["status"] == "succeeded" and result["run"] == first.pk
    assert f"--set={first.pgbackrest.label} --type=lsn --target={lsn}" in result["log"]
    chosen = (
        f"backup set {first.pgbackrest.label} (run #{first.pk}) ended at LSN {first_stop} "
        f"({first.pgbackrest.stopped_at.isoformat()}), at or before LSN {lsn}."
    )
    elsewhere = cluster.folder("restores") / "reviewed"
    for on_host, said in ((False, f"Checked here from the portal's catalogue: {chosen}"), (True, chosen)):
        plan = pgbackrest.propose_pitr("maindb", lsn=lsn, to=str(elsewhere), on_host=on_host)
        assert plan.backup_set == first.pgbackrest.label and plan.checks()[0].endswith(said), plan.checks()
    port = int(
        next(line for line in result["log"].splitlines() if "left running on port" in line).split("port ")[1].split()[0]
    )
    assert cluster.sql("SELECT id, body FROM messages ORDER BY id", port=port) == at_l
    pgbr.pg_ctl("postgres", "stop", "-D", str(new_dir), "-m", "fast", "-w")
    assert cluster.sql("SELECT id, body FROM messages ORDER BY id") == after_mistake

    # An LSN before the first backup stopped: refused up front, naming the earliest LSN it can restore to.
    too_early, refused_dir = first.pgbackrest.lsn_start, cluster.folder("restores") / "too-early"
    assert pgbr.lsn_to_int(too_early) < pgbr.lsn_to_int(first_stop)
    code, result = restore_cmd("maindb", "--lsn", too_early, "--to", str(refused_dir))
    assert code == 1 and result["status"] == "refused", result
    assert result["error"] == (
        f"no backup had finished by LSN {too_early}: the earliest LSN it can restore to is {first_stop} (the "
        f"first backup of maindb ended there, at {first.pgbackrest.stopped_at.isoformat()}; WAL before a backup "
        "cannot be replayed without one)"
    )
    with pytest.raises(pgbackrest.PitrRefused, match=f"the earliest LSN it can restore to is {first_stop} "):
        pgbackrest.propose_pitr("maindb", lsn=too_early, to=str(refused_dir), on_host=False)  # the catalogue's
    with pytest.raises(pgbackrest.PitrRefused, match=f"the earliest LSN it can restore to is {first_stop} "):
        pgbackrest.backup_set_in_repositories(target, None, lsn=too_early)  # pgBackRest's, on the host
    assert not refused_dir.exists() and not Restore.objects.filter(recovery_target=too_early).exists()


def test_restore_to_a_moment_refuses_clearly(pg_cluster):  # noqa: F811
    cluster = pg_cluster("maindb")
    target = make_pgbr_target(cluster, [posix_location(cluster)])
    seed(cluster, 10)
    before_any_backup = cluster.sql("SELECT now()")[0][0]
    assert backup_now(target, "full").status == "succeeded"
    restores = cluster.folder("restores")
    busy = restores / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")

    cases = {
        "is in the future; WAL past it will be archived by about 2999-01-01T00:01:00+00:00 (archive_timeout 60 s)": [
            "--time",
            "2999-01-01T00:00:00Z",
            "--to",
            str(restores / "a"),
        ],
        "no time zone": ["--time", "2026-01-01T00:00:00", "--to", str(restores / "a")],
        "not a date": ["--time", "yesterday-ish", "--to", str(restores / "a")],
        "no backup had finished by": ["--time", before_any_backup.isoformat(), "--to", str(restores / "a")],
        "exists and is not empty": ["--latest", "--to", str(busy)],
        "inside (or contains) the live data directory": ["--latest", "--to", str(cluster.data / "sub")],
        "is running: stop it first": ["--latest", "--to", str(cluster.data)],
        "absolute path": ["--latest", "--to", "relative/dir"],
        "exactly one of": ["--latest", "--lsn", "0/1", "--to", str(restores / "a")],
        "is not an LSN": ["--lsn", "nonsense", "--to", str(restores / "a")],
    }
    for expected, args in cases.items():
        code, result = restore_cmd("maindb", *args)
        assert code == 1 and result["status"] == "refused" and expected in result["error"], (expected, result)
    code, result = restore_cmd("nosuch", "--latest", "--to", str(restores / "a"))
    assert code == 1 and "no target named 'nosuch'" in result["error"]
    assert not (restores / "a").exists()
    assert cluster.sql("SELECT count(*) FROM messages") == [(10,)]


def rpo_json() -> dict:
    out = StringIO()
    call_command("rpo", "--json", stdout=out)
    return {o["name"]: o for o in json.loads(out.getvalue())}


def test_rpo_in_seconds_from_archived_wal_then_late_and_breached_when_a_repository_is_unreachable(
    pg_cluster,  # noqa: F811
    deliver_alerts,
):
    from datetime import timedelta

    from django.core import mail
    from django.utils import timezone

    from alerts.models import Channel, Notification
    from backups.models import Objective
    from backups.services import rpo

    Channel.objects.create(name="ops", kind="email", email_to="oncall@example.com")
    cluster = pg_cluster("maindb", archive_timeout=60)
    second = posix_location(cluster, "second")
    target = make_pgbr_target(cluster, [posix_location(cluster), second])
    pgbackrest.setup(target)
    objective = Objective.objects.create(name="db-wal", rpo=timedelta(seconds=120), grace=timedelta(seconds=30))
    objective.targets.set([target])

    # An idle cluster with archive_timeout = 60: measured for over a minute, always under 2 minutes.
    exposures = []
    for _ in range(7):
        state = rpo_json()["db-wal"]
        exposures.append(state["exposure_seconds"])
        assert state["state"] == "ok" and state["exposure_seconds"] < 120, (
            state,
            pgbackrest.wal_recovery_point(target),
        )
        cluster.sql("SELECT pg_sleep(10)", dbname="postgres")
    # Writing keeps it under 2 minutes too: archive_timeout switches the segment within a minute.
    cluster.sql("CREATE TABLE t (id int)")
    for _ in range(8):
        cluster.sql("INSERT INTO t VALUES (1)")
        state = rpo_json()["db-wal"]
        assert state["state"] == "ok" and state["exposure_seconds"] < 120, state
        cluster.sql("SELECT pg_sleep(10)", dbname="postgres")

    # The second repository becomes unreachable: archive-push fails, the archiver's failures rise.
    repo = Path(second.url[len("file://") :]) / "pgbackrest"
    repo.rename(repo.with_name("moved-away"))
    repo.write_text("not a repository")
    cluster.sql("INSERT INTO t SELECT g FROM generate_series(1, 1000) g")
    cluster.sql("SELECT pg_switch_wal()", dbname="postgres")
    deadline = timezone.now() + timedelta(seconds=60)
    while cluster.sql("SELECT failed_count FROM pg_stat_archiver", dbname="postgres")[0][0] == 0:
        assert timezone.now() < deadline, "archiving did not fail"
        cluster.sql("SELECT pg_sleep(0.5)", dbname="postgres")
    point = pgbackrest.wal_recovery_point(target)
    assert point.failing and any("archiving is failing" in note for note in point.notes)

    # The clock runs on while nothing new lands everywhere: late, then breached, and alerts go out.
    frozen = point.point
    objective = rpo.evaluate_one(Objective.objects.get(pk=objective.pk), frozen + timedelta(seconds=130))
    assert objective.state == "late" and objective.last_good_at == frozen, objective.exposure_seconds
    objective = rpo.evaluate_one(objective, frozen + timedelta(seconds=160))
    assert objective.state == "breached" and objective.exposure_seconds == 160
    events = list(Notification.objects.values_list("event", flat=True))
    assert "objective_late" in events and "objective_breached" in events
    deliver_alerts()
    assert any("RPO db-wal is BREACHED" in m.subject for m in mail.outbox)


def verify_cmd(*args: str) -> tuple[int, dict]:
    out = StringIO()
    try:
        call_command("verify", *args, "--json", stdout=out, stderr=StringIO())
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def test_verify_runs_pgbackrest_verify_and_the_restore_test_restores_checks_and_removes(cluster_and_target):
    from backups.services import verify

    cluster, target = cluster_and_target
    seed(cluster, 321)
    run = backup_now(target, "full")
    assert run.status == "succeeded", run.error

    code, result = verify_cmd(str(run.pk))
    assert code == 0 and result["status"] == "passed", result
    assert [c["name"] for c in result["checks"]] == ["pgbackrest verify repo1 (local)"]

    code, result = verify_cmd(str(run.pk), "--restore-test")
    assert code == 0 and result["status"] == "passed", result
    assert {"name": "app.public.messages", "expected": None, "restored": 321} in result["tables"]
    restore_check = result["checks"][-1]
    assert restore_check["name"] == "restore" and "stopped and removed" in restore_check["message"]
    scratch = Path(restore_check["message"].split("scratch copy ")[1].split()[0])
    assert not scratch.exists()
    assert cluster.sql("SELECT count(*) FROM messages") == [(321,)]

    # The monthly restore test takes the same path.
    from backups.tasks import monthly_restore_tests  # noqa: F401  (queues; the service is what runs)

    test = verify.verify(verify.start_verification(run, kind="restore_test", trigger="schedule"))
    assert test.status == "passed" and test.duration_seconds > 0

    # A damaged backup file in the repository fails verification, in pgBackRest's words.
    repo = (
        Path(target.locations.get().url[len("file://") :]) / "pgbackrest" / "backup" / "maindb" / run.pgbackrest.label
    )
    victim = max((p for p in repo.rglob("*") if p.is_file() and "pg_data" in p.parts), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    code, result = verify_cmd(str(run.pk))
    assert code == 1 and result["status"] == "failed", result
    assert result["checks"][0]["result"] == "fail"


def test_portal_retention_leaves_pgbackrest_copies_to_pgbackrest_expire(db, tmp_path):
    from backups.models import Artifact
    from backups.services import retention

    location = Location.objects.create(name="kept", url=f"file://{tmp_path}", keep_last=1, retention_days=1)
    target = Target.objects.create(name="pg", engine="pgbackrest")
    for label in ("20200101-000000F", "20200102-000000F", "20200103-000000F"):
        run = BackupRun.objects.create(target=target, status="succeeded", engine="pgbackrest", sha256="a" * 64)
        Artifact.objects.create(
            run=run, location=location, key=label, url=f"{location.url}/{label}", size=1, sha256="a"
        )

    assert retention.plan() == []
    assert Artifact.objects.filter(status="stored").count() == 3


PLAN = """
[locations.a]
url = "file:///backups/a"
keep_last = 3

[targets.maindb]
engine = "pgbackrest"
locations = ["a"]
schedule = "0 2 * * 0"
pg_path = "/var/lib/postgresql/15/main"
pg_port = 5433
pg_socket = "/var/run/postgresql"
os_user = "postgres"
schedule_diff = "0 2 * * 1-6"
schedule_incr = "0 * * * *"
"""


def test_plan_keys_of_a_pgbackrest_target(db, tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN)
    call_command("applyplan", str(path), stdout=StringIO())
    stanza = PgBackRestStanza.objects.get(target__name="maindb")
    assert (stanza.pg_path, stanza.pg_port, stanza.pg_socket, stanza.os_user) == (
        "/var/lib/postgresql/15/main",
        5433,
        "/var/run/postgresql",
        "postgres",
    )
    assert (stanza.target.schedule, stanza.schedule_diff, stanza.schedule_incr) == (
        "0 2 * * 0",
        "0 2 * * 1-6",
        "0 * * * *",
    )
    from django_celery_beat.models import PeriodicTask

    beat = {t.name: (json.loads(t.args), t.crontab.hour, t.crontab.day_of_week) for t in PeriodicTask.objects.all()}
    assert beat["backup maindb"] == (["maindb", "full"], "2", "0")
    assert beat["backup maindb diff"] == (["maindb", "diff"], "2", "1-6")
    assert beat["backup maindb incr"][0] == ["maindb", "incr"]
    passphrase = stanza.cipher_pass
    out = StringIO()
    call_command("applyplan", str(path), stdout=out)
    assert PgBackRestStanza.objects.get(pk=stanza.pk).cipher_pass == passphrase  # never regenerated
    path.write_text(PLAN.replace('schedule_incr = "0 * * * *"\n', ""))
    call_command("applyplan", str(path), stdout=StringIO())
    assert not PgBackRestStanza.objects.get(pk=stanza.pk).schedule_incr
    assert not PeriodicTask.objects.filter(name="backup maindb incr").exists()
    assert PeriodicTask.objects.filter(name="backup maindb diff").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ('pg_path = "/var/lib/postgresql/15/main"', None),
        ('pg_path = "relative/main"', "key 'pg_path': must be an absolute path"),
        ('schedule_incr = "every hour"', "key 'schedule_incr'"),
        ("pg_port = 70000", "key 'pg_port': must be at most 65535"),
    ],
)
def test_plan_mistakes_in_pgbackrest_keys(db, tmp_path, change, message):
    from django.core.management.base import CommandError

    body = PLAN.replace('pg_path = "/var/lib/postgresql/15/main"', change)
    if change.startswith("schedule_incr"):
        body = PLAN.replace('schedule_incr = "0 * * * *"', change)
    if change.startswith("pg_port"):
        body = PLAN.replace("pg_port = 5433", change)
    path = tmp_path / "plan.toml"
    path.write_text(body)
    if message is None:
        call_command("applyplan", str(path), stdout=StringIO())
        return
    with pytest.raises(CommandError, match=message):
        call_command("applyplan", str(path), stdout=StringIO())


def test_pgbackrest_keys_on_another_engine_are_refused(db, tmp_path):
    from django.core.management.base import CommandError

    path = tmp_path / "plan.toml"
    path.write_text(PLAN.replace('engine = "pgbackrest"', 'engine = "postgresql"\nsource = "env:X"'))
    with pytest.raises(CommandError, match="key 'pg_path': only applies to targets whose engine is pgbackrest"):
        call_command("applyplan", str(path), stdout=StringIO())


def test_admin_shows_stanza_settings_and_backup_details_never_the_passphrase(admin_client, tmp_path):
    from backups.models import Artifact

    location = Location.objects.create(name="repo", url=f"file://{tmp_path}")
    target = Target.objects.create(name="maindb", engine="pgbackrest")
    target.locations.set([location])
    stanza = PgBackRestStanza.objects.create(target=target, pg_path="/var/lib/postgresql/15/main")
    run = BackupRun.objects.create(target=target, status="succeeded", engine="pgbackrest", sha256="b" * 64)
    Artifact.objects.create(run=run, location=location, key="20261201-101010F", url="file:///x", size=5, sha256="b")
    PgBackRestBackup.objects.create(run=run, type="full", label="20261201-101010F", lsn_start="0/2000028")

    page = admin_client.get(f"/admin/backups/target/{target.pk}/change/").content.decode()
    assert "/var/lib/postgresql/15/main" in page and "archive_command = " in page
    assert stanza.cipher_pass not in page
    run_page = admin_client.get(f"/admin/backups/backuprun/{run.pk}/change/").content.decode()
    assert "20261201-101010F" in run_page and "0/2000028" in run_page

    # Saving the target's form (stanza inline included) keeps the generated passphrase.
    form = admin_client.get(f"/admin/backups/target/{target.pk}/change/").context["adminform"].form
    assert "cipher_pass" not in str(form)
    assert PgBackRestStanza.objects.get(pk=stanza.pk).cipher_pass == stanza.cipher_pass


def test_admin_adds_a_pgbackrest_target_with_its_settings(admin_client, tmp_path):
    location = Location.objects.create(name="repo", url=f"file://{tmp_path}")
    response = admin_client.post(
        "/admin/backups/target/add/",
        target_form(
            location,
            name="newdb",
            engine="pgbackrest",
            source="",
            **{
                "pgbackrest-TOTAL_FORMS": "1",
                "pgbackrest-MIN_NUM_FORMS": "0",
                "pgbackrest-MAX_NUM_FORMS": "1",
                "pgbackrest-0-pg_path": "/srv/pg/main",
                "pgbackrest-0-pg_port": "5433",
                "pgbackrest-0-os_user": "postgres",
                "pgbackrest-0-schedule_incr": "0 * * * *",
                "pgbackrest-0-verify_tls": "on",
            },
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    stanza = PgBackRestStanza.objects.get(target__name="newdb")
    assert (stanza.pg_path, stanza.pg_port, stanza.schedule_incr) == ("/srv/pg/main", 5433, "0 * * * *")
    assert len(stanza.cipher_pass) > 40


def test_restore_over_the_live_data_directory_needs_it_stopped_the_permission_and_keeps_the_old_one(pg_cluster):  # noqa: F811
    from django.contrib.auth.models import Permission, User

    cluster = pg_cluster("maindb")
    target = make_pgbr_target(cluster, [posix_location(cluster)])
    seed(cluster, 200)
    assert backup_now(target, "full").status == "succeeded"
    cluster.sql("SELECT pg_sleep(1.1)")
    cluster.sql("INSERT INTO messages (body) SELECT 'later ' || g FROM generate_series(1, 50) g")
    moment = cluster.sql("SELECT now()")[0][0]
    cluster.sql("SELECT pg_sleep(1.1)")
    cluster.sql("TRUNCATE messages")  # the mistake
    pgbackrest.ensure_wal_past(
        pgbackrest.PitrPlan(
            target, "lsn", cluster.sql("SELECT pg_current_wal_lsn()::text")[0][0], cluster.data, 0, True, False
        ),
        target.pgbackrest,
    )

    code, result = restore_cmd("maindb", "--time", moment.isoformat(), "--to", str(cluster.data))
    assert code == 1 and "is running: stop it first" in result["error"]
    cluster.stop()
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    with pytest.raises(pgbackrest.PitrRefused, match="lacks the restore_backuprun permission"):
        pgbackrest.propose_pitr("maindb", moment=moment.isoformat(), to=str(cluster.data), user=viewer)
    viewer.user_permissions.add(Permission.objects.get(codename="restore_backuprun"))
    viewer = User.objects.get(pk=viewer.pk)
    assert pgbackrest.propose_pitr("maindb", moment=moment.isoformat(), to=str(cluster.data), user=viewer).in_place

    code, result = restore_cmd("maindb", "--time", moment.isoformat(), "--to", str(cluster.data))

    assert code == 0, result
    rollback = Path(result["rollback_name"])
    assert rollback.parent == cluster.data.parent and (rollback / "PG_VERSION").exists()
    assert cluster.sql("SELECT count(*) FROM messages") == [(250,)]  # the live cluster, back at T
    assert cluster.sql("SHOW archive_mode") == [("on",)]  # it is production again: it keeps archiving


def test_a_failed_restore_over_the_live_directory_puts_the_previous_one_back(pg_cluster):  # noqa: F811
    cluster = pg_cluster("maindb", archive_timeout=600)
    target = make_pgbr_target(cluster, [posix_location(cluster)])
    seed(cluster, 30)
    assert backup_now(target, "full").status == "succeeded"
    cluster.sql("SELECT pg_sleep(1.1)")
    cluster.sql("INSERT INTO messages (body) VALUES ('only in pg_wal')")
    moment = cluster.sql("SELECT now()")[0][0]
    cluster.sql("SELECT pg_sleep(1.1)")
    cluster.sql("DELETE FROM messages WHERE id > 3")
    cluster.stop("immediate")  # a crash: no final WAL switch, so the WAL past T never reached the archive

    code, result = restore_cmd("maindb", "--time", moment.isoformat(), "--to", str(cluster.data))

    assert code == 1, result
    assert "recovery ended before configured recovery target was reached" in result["error"]
    assert "rolled back" in result["error"] and "pg_switch_wal()" in result["error"]
    assert result["rollback_name"] is None
    assert not list(cluster.base.glob("data.pre-restore-*"))
    cluster.start()
    assert cluster.sql("SELECT count(*) FROM messages") == [(3,)]  # the previous data, as it was


def test_a_pgbackrest_run_is_not_restored_as_a_dump(db, tmp_path):
    location = Location.objects.create(name="repo", url=f"file://{tmp_path}")
    target = Target.objects.create(name="maindb", engine="pgbackrest")
    run = BackupRun.objects.create(target=target, status="succeeded", engine="pgbackrest", sha256="c" * 64)
    from backups.models import Artifact

    Artifact.objects.create(run=run, location=location, key="20261201-101010F", url="file:///x", size=5, sha256="c")

    code, result = restore_cmd(str(run.pk), "--to", str(tmp_path / "x"))

    assert code == 1 and result["status"] == "refused"
    assert f"run #{run.pk} is a pgBackRest backup: restore its target to a moment" in result["error"]
