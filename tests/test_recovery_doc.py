"""RECOVERY.md's numbered commands, run exactly as written, with standard tools only.

The commands run in bash with no Django and no portal code: the portal only made
the backup beforehand. If this test fails, the document is wrong.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from backups.services import backup
from tests.conftest import ROOT, pg_url, s3_client, table_rows
from tests.killpoints import backup_killed

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
