"""The env engine: environment files round-trip byte for byte, and no value is ever shown anywhere."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from backups.models import Artifact, BackupRun
from tests.conftest import run_backup, run_restore

pytestmark = pytest.mark.django_db

SECRETS = [
    "S3cr3t-Pa55w0rd-XYZ",
    "tok_live_9f8e7d6c5b4a",
    "second-line-QQQ-secret",
    "秘密-ñandú-value",
    "it's-a-quoted-secret",
]

ENV_FILE = f"""# BotFlow production settings
DATABASE_URL=postgres://app:{SECRETS[0]}@db.internal:5432/app
export API_TOKEN="{SECRETS[1]}"
PRIVATE_KEY='-----BEGIN KEY-----
{SECRETS[2]}
-----END KEY-----'
UNICODE_VALUE={SECRETS[3]}
QUOTED="{SECRETS[4]}"
EMPTY=

# the end
""".encode()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_no_secret(text: str | bytes, where: str, secrets: list[str] = SECRETS) -> None:
    for secret in secrets:
        needle = secret.encode() if isinstance(text, bytes) else secret
        assert needle not in text, f"a secret value appears in {where}"


@pytest.fixture
def env_file(tmp_path) -> Path:
    path = tmp_path / "app" / ".env"
    path.parent.mkdir()
    path.write_bytes(ENV_FILE)
    path.chmod(0o640)
    return path


@pytest.fixture
def env_run(env_file, local_location, make_target, caplog) -> BackupRun:
    caplog.set_level(logging.DEBUG)
    run = run_backup(make_target("botflow-env", str(env_file), [local_location], engine="env"))
    assert run.status == "succeeded", run.error
    return run


def test_an_env_file_round_trips_byte_for_byte_into_a_0600_file(env_run, tmp_path):
    assert env_run.format == "env"
    assert env_run.tables == {"variables": 6}
    dest = tmp_path / "restored" / "app.env"

    code, result = run_restore(str(env_run.pk), "--to", str(dest))

    assert code == 0, result
    assert dest.read_bytes() == ENV_FILE
    assert mode(dest) == 0o600
    assert [t["name"] for t in result["tables"]] == ["variables"]
    assert (result["tables"][0]["expected"], result["tables"][0]["restored"]) == (6, 6)
    assert [p.name for p in dest.parent.iterdir()] == ["app.env"]


def test_in_place_restore_keeps_the_previous_file_0600_for_rollback(env_run, env_file):
    env_file.write_text("DATABASE_URL=postgres://wrong\n")
    env_file.chmod(0o644)

    code, result = run_restore(str(env_run.pk))

    assert code == 0, result
    assert env_file.read_bytes() == ENV_FILE
    assert mode(env_file) == 0o600
    rollback = Path(result["rollback_name"])
    assert rollback.parent == env_file.parent and rollback.name.startswith(".env.pre_restore_")
    assert rollback.read_text() == "DATABASE_URL=postgres://wrong\n"
    assert mode(rollback) == 0o600
    assert [p for p in env_file.parent.iterdir() if ".restoring-" in p.name] == []


def test_no_secret_value_appears_in_the_artifact_manifest_run_logs_or_admin(
    env_run, env_file, admin_client, caplog, tmp_path
):
    artifact = Path(urlsplit(env_run.artifacts.get().url).path)
    assert_no_secret(artifact.read_bytes(), "the encrypted artifact")
    assert_no_secret(artifact.with_name(artifact.name + ".json").read_text(), "the manifest")
    index = artifact.parents[3] / "manifest.json"
    assert_no_secret(index.read_text(), "the location's manifest index")
    env_run.refresh_from_db()
    assert_no_secret(env_run.error + json.dumps(env_run.tables), "the run row")

    code, result = run_restore(str(env_run.pk), "--to", str(tmp_path / "copy.env"))
    assert code == 0, result
    assert_no_secret(json.dumps(result), "the restore's report")

    html = admin_client.get(reverse("admin:backups_backuprun_change", args=[env_run.pk])).content.decode()
    assert "botflow-env" in html and "variables" in html
    assert_no_secret(html, "the admin run page")
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    assert_no_secret(caplog.text, "the logs")


def test_vars_source_renders_those_variables_quoted_for_a_shell(
    local_location, make_target, monkeypatch, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    tricky = "has spaces & 'quotes' $HOME \"double\" \\ back\nnewline"
    monkeypatch.setenv("DRP_PLAIN", "plain-value_1.2:3")
    monkeypatch.setenv("DRP_TRICKY", tricky)
    monkeypatch.setenv("DRP_NOT_ASKED", "never-included-value")
    run = run_backup(make_target("worker-env", "vars:DRP_PLAIN, DRP_TRICKY", [local_location], engine="env"))
    assert run.status == "succeeded", run.error
    assert run.tables == {"variables": 2}
    dest = tmp_path / "worker.env"

    code, result = run_restore(str(run.pk), "--to", f"file://{dest}")

    assert code == 0, result
    text = dest.read_text()
    assert text.startswith("DRP_PLAIN=plain-value_1.2:3\nDRP_TRICKY='")
    assert "never-included-value" not in text
    # A shell reads the values back exactly.
    shell = subprocess.run(
        ["sh", "-c", '. "$1"; printf "%s|%s" "$DRP_PLAIN" "$DRP_TRICKY"', "sh", str(dest)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert shell.stdout == f"plain-value_1.2:3|{tricky}"
    assert_no_secret(caplog.text + json.dumps(result), "the logs", [tricky, "plain-value_1.2:3"])


def test_a_missing_env_file_fails_naming_the_path_and_no_value(local_location, make_target, tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / ".env"
    monkeypatch.setenv("DRP_ENV_PATH", str(missing))
    run = run_backup(make_target("botflow-env", "env:DRP_ENV_PATH", [local_location], engine="env"))
    assert run.status == "failed"
    assert str(missing) in run.error and "does not exist" in run.error
    assert not Artifact.objects.filter(run=run).exists()


def test_a_missing_variable_fails_naming_it_and_no_other_value(local_location, make_target, monkeypatch):
    monkeypatch.setenv("DRP_SET", SECRETS[0])
    monkeypatch.delenv("DRP_UNSET", raising=False)
    run = run_backup(make_target("worker-env", "vars:DRP_SET,DRP_UNSET", [local_location], engine="env"))
    assert run.status == "failed"
    assert "DRP_UNSET" in run.error
    assert_no_secret(run.error, "the run's error")
    assert not Artifact.objects.filter(run=run).exists()


def test_recover_after_a_killed_restore_puts_the_previous_file_back(tmp_path):
    from backups.engines.restorers import restorer_for

    live, rollback, scratch = tmp_path / ".env", tmp_path / ".env.pre_restore_x", tmp_path / "..env.restoring-x"
    rollback.write_bytes(ENV_FILE)
    scratch.write_text("HALF=")

    done = restorer_for("env", str(live)).recover(str(scratch), str(rollback))

    assert live.read_bytes() == ENV_FILE
    assert not scratch.exists() and not rollback.exists()
    assert_no_secret(" ".join(done), "the recovery report")
