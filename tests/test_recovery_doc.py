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
from tests.conftest import ROOT, pg_url, table_rows

pytestmark = pytest.mark.django_db

STEP = re.compile(r"^```bash step=(\d+)\n(.*?)^```", re.S | re.M)


def recovery_steps() -> list[str]:
    text = (ROOT / "RECOVERY.md").read_text()
    steps = sorted((int(n), body) for n, body in STEP.findall(text))
    assert [n for n, _ in steps] == [1, 2, 3, 4, 5], "RECOVERY.md must number its steps 1-5"
    return [body for _, body in steps]


def test_recovery_md_restores_the_newest_s3_backup_with_standard_tools(
    source_db, local_location, s3_location, make_target, age_key, s3_endpoint, s3_bucket, scratch_db_name, tmp_path
):
    target = make_target("database", source_db, [local_location, s3_location])
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    new_db = scratch_db_name("drp_recovered")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "BUCKET": s3_bucket,
        "PREFIX": "daily",
        "TARGET": "database",
        "IDENTITY": str(age_key.identity_file),
        "S3_ENDPOINT": s3_endpoint,
        "NEW_DB": new_db,
        "PGHOST": "127.0.0.1",
        "PGUSER": "postgres",
        "PGDATABASE": "postgres",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    script = "set -euo pipefail\n" + "\n".join(recovery_steps())

    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{run.artifacts.get(location=s3_location).key.rsplit('/', 1)[1]}: OK" in result.stdout
    counts = [line for line in result.stdout.splitlines() if line.startswith("public.")]
    assert len(counts) == 3 and all(line.endswith("|ok") for line in counts), counts
    assert table_rows(pg_url(new_db)) == table_rows(source_db)
    assert "django" not in script.lower()
