"""RECOVERY.md's numbered commands, run exactly as written, with standard tools only.

The commands run in bash with no Django and no portal code: the portal only made
the backup beforehand. If this test fails, the document is wrong.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import psycopg
import pytest

from backups.services import backup
from tests.conftest import ROOT, pg_url, s3_client, table_rows
from tests.killpoints import backup_killed
from tests.pg_cluster import make_pgbr_target, pg_cluster, posix_location  # noqa: F401

pytestmark = pytest.mark.django_db

STEP = re.compile(r"^```bash step=(\d+)\n(.*?)^```", re.S | re.M)


def recovery_steps() -> list[str]:
    text = (ROOT / "RECOVERY.md").read_text()
    steps = sorted((int(n), body) for n, body in STEP.findall(text))
    assert [n for n, _ in steps] == [1, 2, 3, 4, 5], "RECOVERY.md must number its steps 1-5"
    return [body for _, body in steps]


def follow_recovery_md(*, bucket: str, endpoint: str, identity, new_db: str, home) -> subprocess.CompletedProcess:
    """Steps 1-5 in bash, as written, with only the variables the document asks a person to set."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "BUCKET": bucket,
        "PREFIX": "daily",
        "TARGET": "database",
        "IDENTITY": str(identity),
        "S3_ENDPOINT": endpoint,
        "NEW_DB": new_db,
        "PGHOST": "127.0.0.1",
        "PGUSER": "postgres",
        "PGDATABASE": "postgres",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    script = "set -euo pipefail\n" + "\n".join(recovery_steps())
    assert "django" not in script.lower()
    return subprocess.run(["bash", "-c", script], cwd=home, env=env, capture_output=True, text=True, timeout=300)


def assert_restored(result: subprocess.CompletedProcess, artifact_key: str, new_db: str, source_db: str) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{artifact_key.rsplit('/', 1)[1]}: OK" in result.stdout
    counts = [line for line in result.stdout.splitlines() if line.startswith("public.")]
    assert len(counts) == 3 and all(line.endswith("|ok") for line in counts), counts
    assert table_rows(pg_url(new_db)) == table_rows(source_db)


def test_recovery_md_restores_the_newest_s3_backup_with_standard_tools(
    source_db, local_location, s3_location, make_target, age_key, s3_endpoint, s3_bucket, scratch_db_name, tmp_path
):
    target = make_target("database", source_db, [local_location, s3_location])
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    new_db = scratch_db_name("drp_recovered")

    result = follow_recovery_md(
        bucket=s3_bucket, endpoint=s3_endpoint, identity=age_key.identity_file, new_db=new_db, home=tmp_path
    )

    assert_restored(result, run.artifacts.get(location=s3_location).key, new_db, source_db)


@pytest.mark.django_db(transaction=True)  # the killed child process must see the target
def test_recovery_md_still_restores_after_a_backup_killed_mid_copy(
    source_db, local_location, s3_location, make_target, age_key, s3_endpoint, s3_bucket, scratch_db_name, tmp_path
):
    """The portal is gone before any reaper ran: what the killed run and older versions left must not be picked."""
    target = make_target("database", source_db, [local_location, s3_location])
    good = backup.execute(backup.start_backup(target, trigger="command"))
    assert good.status == "succeeded", good.error
    killed = backup_killed("database", "after-upload")  # the S3 upload finished, its manifest not yet written
    # And a copy without a manifest left by a version before the staged write order, newer than both.
    stamp = "20991231T235959Z"
    s3_client(s3_endpoint).put_object(
        Bucket=s3_bucket, Key=f"daily/database/2099/12/31/database-{stamp}-r999999-abcdef.sql.zst.age", Body=b"junk"
    )
    new_db = scratch_db_name("drp_recovered")

    result = follow_recovery_md(
        bucket=s3_bucket, endpoint=s3_endpoint, identity=age_key.identity_file, new_db=new_db, home=tmp_path
    )

    assert killed.pk != good.pk
    assert_restored(result, good.artifacts.get(location=s3_location).key, new_db, source_db)


PITR_STEP = re.compile(r"^```bash pitr=(\d+)\n(.*?)^```", re.S | re.M)


def pitr_steps() -> list[str]:
    text = (ROOT / "RECOVERY.md").read_text()
    steps = sorted((int(n), body) for n, body in PITR_STEP.findall(text))
    assert [n for n, _ in steps] == [1, 2, 3, 4, 5], "RECOVERY.md's pgBackRest section must number its steps 1-5"
    return [body for _, body in steps]


def test_recovery_md_restores_a_pgbackrest_cluster_to_a_moment_with_age_and_pgbackrest_alone(pg_cluster, age_key):  # noqa: F811
    """The escrow path: the portal's database and configuration are gone; the age key opens the repository."""
    from backups.engines import pgbackrest as pgbr
    from backups.models import BackupRun, Target
    from tests.conftest import free_port

    cluster = pg_cluster("botflow-db")
    location = posix_location(cluster)
    target = make_pgbr_target(cluster, [location], name="botflow-db")
    cluster.sql("CREATE TABLE messages (id bigserial PRIMARY KEY, body text NOT NULL)")
    cluster.sql("INSERT INTO messages (body) SELECT 'message ' || g FROM generate_series(1, 1000) g")
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    cluster.sql("SELECT pg_sleep(1.1)")  # pgBackRest keeps whole seconds: T after the backup's stop second
    cluster.sql("INSERT INTO messages (body) SELECT 'later ' || g FROM generate_series(1, 234) g")
    at_t = cluster.sql("SELECT id, body FROM messages ORDER BY id")
    moment = cluster.sql("SELECT now()")[0][0]
    cluster.sql("SELECT pg_sleep(1.1)")
    cluster.sql("DELETE FROM messages WHERE id > 10")
    # The archive must reach past T (the portal's restore makes sure of it): switch WAL and wait for it.
    segment = cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())", dbname="postgres")[0][0]
    cluster.sql("SELECT pg_switch_wal()", dbname="postgres")
    wait_until_archived(cluster, segment)
    # The portal is gone: its catalogue rows and its generated configuration.
    pgbr.config_path("botflow-db").unlink()
    BackupRun.objects.filter(target=target).delete()
    Target.objects.filter(pk=target.pk).delete()

    work = cluster.folder("by-hand")
    identity = work / "identity.txt"
    identity.write_bytes(age_key.identity_file.read_bytes())
    identity.chmod(0o600)
    shutil.chown(identity, "postgres", "postgres")
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work),
        "IDENTITY": str(identity),
        "REPO": location.url[len("file://") :] + "/pgbackrest",
        "STANZA": "botflow-db",
        "T": moment.isoformat(sep=" "),
        "NEW_DATA": str(work / "restored"),
        "PORT": str(port),
        "PGBIN": "/usr/lib/postgresql/15/bin",
        "DB": "app",
    }
    script = "set -euo pipefail\n" + "\n".join(pitr_steps())

    result = subprocess.run(
        ["runuser", "-u", "postgres", "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()], "bash", "-c", script],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )

    log = work / "restored.log"
    assert result.returncode == 0, (
        result.stdout[-2000:] + result.stderr[-2000:] + (log.read_text() if log.exists() else "")
    )
    assert "public.messages|1234" in result.stdout.splitlines()
    with psycopg.connect(host=str(work), port=port, user="postgres", dbname="app") as conn:
        assert conn.execute("SELECT id, body FROM messages ORDER BY id").fetchall() == at_t
        assert conn.execute("SHOW archive_mode").fetchone() == ("off",)
    assert "django" not in script.lower() and "manage.py" not in script


def wait_until_archived(cluster, segment: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        archived = cluster.sql("SELECT last_archived_wal FROM pg_stat_archiver", dbname="postgres")[0][0]
        if archived and archived >= segment:
            return
        time.sleep(0.5)
    raise AssertionError(f"WAL segment {segment} was not archived within {timeout} s")
