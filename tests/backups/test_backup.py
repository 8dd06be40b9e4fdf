"""Backups end to end against real PostgreSQL, local folders and moto's S3 server."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess

import psycopg
import pytest

from backups.models import Artifact, BackupRun
from backups.services import backup
from tests.conftest import pg_url, run_backup, s3_client, table_rows, target_form

pytestmark = pytest.mark.django_db


def sha256_file(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def local_path(artifact):
    from pathlib import Path
    from urllib.parse import urlsplit

    return Path(urlsplit(artifact.url).path)


def test_backup_lands_in_local_and_s3_with_the_same_checksum(
    source_db, local_location, s3_location, make_target, s3_endpoint, s3_bucket
):
    target = make_target("botflow-db", source_db, [local_location, s3_location])

    run = run_backup(target)

    assert run.status == "succeeded", run.error
    assert run.bytes_in > 0 and run.bytes_out > 0
    artifacts = {a.location.name: a for a in run.artifacts.select_related("location")}
    assert set(artifacts) == {"local", "s3"}
    assert sha256_file(local_path(artifacts["local"])) == run.sha256
    body = s3_client(s3_endpoint).get_object(Bucket=s3_bucket, Key="daily/" + artifacts["s3"].key)
    assert hashlib.sha256(body["Body"].read()).hexdigest() == run.sha256
    assert body["StorageClass"] == "STANDARD_IA"
    assert artifacts["s3"].storage_class == "STANDARD_IA"
    # Row counts come from the dump stream itself, tricky values included.
    assert run.tables == {"public.conversations": 20, "public.messages": 508, "public.organizations": 3}


def test_artifact_opens_with_age_cli_and_loads_with_psql(
    source_db, local_location, make_target, age_key, scratch_db_name
):
    run = run_backup(make_target("botflow-db", source_db, [local_location]))
    artifact = run.artifacts.get()
    restored = scratch_db_name()
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{restored}"')

    # Standard tools only: age, zstd, psql.
    subprocess.run(
        f"age -d -i {age_key.identity_file} {local_path(artifact)} | zstd -d "
        f"| psql -q --set ON_ERROR_STOP=1 --single-transaction {pg_url(restored)}",
        shell=True,
        check=True,
        capture_output=True,
    )

    assert table_rows(pg_url(restored)) == table_rows(source_db)


def test_manifest_describes_the_run_beside_the_artifact(source_db, local_location, make_target, age_key):
    run = run_backup(make_target("botflow-db", source_db, [local_location]))
    path = local_path(run.artifacts.get())

    sidecar = json.loads(path.with_name(path.name + ".json").read_text())
    index = json.loads((path.parents[3] / "manifest.json").read_text())

    assert sidecar["sha256"] == run.sha256
    assert sidecar["target"] == "botflow-db"
    assert sidecar["engine"] == "postgresql"
    assert sidecar["format"] == "postgresql-sql"
    assert sidecar["compression"] == "zstd"
    assert sidecar["recipients"] == [age_key.recipient]
    assert sidecar["bytes_out"] == path.stat().st_size
    assert sidecar["tables"]["public.messages"] == 508
    assert [entry["run_id"] for entry in index["runs"]] == [run.pk]


def test_gzip_compression_is_selectable(source_db, local_location, make_target, age_key):
    run = run_backup(make_target("botflow-db", source_db, [local_location], compression="gzip"))
    path = local_path(run.artifacts.get())
    assert path.name.endswith(".sql.gz.age")
    sql = subprocess.run(
        f"age -d -i {age_key.identity_file} {path} | gzip -d", shell=True, check=True, capture_output=True
    ).stdout
    assert b"CREATE TABLE public.messages" in sql


def test_a_targets_compression_level_is_used_recorded_and_restorable(
    source_db, local_location, make_target, age_key, settings
):
    settings.BACKUP_ZSTD_LEVEL = 1
    fast = run_backup(make_target("fast", source_db, [local_location]))
    small = run_backup(make_target("small", source_db, [local_location], compression_level=19))

    assert (fast.compression_level, small.compression_level) == (1, 19)
    assert small.bytes_in == fast.bytes_in
    assert small.bytes_out < fast.bytes_out * 0.9
    path = local_path(small.artifacts.get())
    assert json.loads(path.with_name(path.name + ".json").read_text())["compression_level"] == 19
    sql = subprocess.run(
        f"age -d -i {age_key.identity_file} {path} | zstd -d", shell=True, check=True, capture_output=True
    ).stdout
    assert len(sql) == small.bytes_in


def test_the_default_artifact_is_no_larger_than_the_seeds_gzip_openssl_one(
    local_location, make_target, age_key, tmp_path
):
    """Issue 15's size target on bench/fleet.py's SQLite source, where zstd level 3 made 1.056× the seed's."""
    source = tmp_path / "events.sqlite3"
    with sqlite3.connect(source) as db:  # one target's source, as bench/fleet.py's make_sources writes it
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT)")
        db.executemany("INSERT INTO events (body) VALUES (?)", [(f"event 0-{n} " + "x" * 40,) for n in range(2000)])

    run = run_backup(make_target("events", f"sqlite:///{source}", [local_location], engine="sqlite"))

    assert run.status == "succeeded", run.error
    path = local_path(run.artifacts.get())
    # The seed's script, on exactly the bytes this run dumped.
    seed = subprocess.run(
        f"age -d -i {age_key.identity_file} {path} | zstd -d "
        "| gzip | openssl enc -aes-256-cbc -pbkdf2 -pass env:SEED_PASS | wc -c",
        shell=True,
        check=True,
        capture_output=True,
        env={**os.environ, "SEED_PASS": "correct horse battery staple"},
    )
    assert path.stat().st_size == run.bytes_out
    assert run.bytes_out <= int(seed.stdout), (run.compression_level, run.bytes_out, int(seed.stdout))


def test_a_level_that_does_not_suit_the_compression_is_refused_by_the_form(source_db, local_location):
    from backups.admin import TargetForm

    form = TargetForm(
        data=target_form(local_location, name="t", source="env:X", compression="gzip", compression_level="12")
    )

    assert not form.is_valid()
    assert form.errors["compression_level"] == ["gzip levels run from 1 to 9, got 12."]


def assert_failed_without_copies(run, *needles, locations=()):
    assert run.status == "failed"
    for needle in needles:
        assert needle in run.error
    assert not Artifact.objects.filter(run=run).exists()
    for location in locations:
        root = local_root(location)
        leftovers = [p for p in root.rglob("*") if p.is_file() and p.suffix == ".age"] if root.exists() else []
        assert leftovers == [], leftovers


def local_root(location):
    from pathlib import Path
    from urllib.parse import urlsplit

    return Path(urlsplit(location.url).path)


def test_unreachable_database_fails_with_the_cause(local_location, make_target):
    target = make_target("db", "postgresql://postgres@127.0.0.1:1/nothing", [local_location])
    run = run_backup(target)
    assert_failed_without_copies(run, "pg_dump failed", "127.0.0.1", locations=[local_location])


def test_bad_credentials_fail_and_the_password_is_never_shown(source_db, local_location, make_target):
    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS drp_limited")
        conn.execute("CREATE ROLE drp_limited LOGIN PASSWORD 'right-password'")
    try:
        # Trust auth on the socket would accept anything, so name a database the role may not read.
        dbname = source_db.rsplit("/", 1)[1]
        url = f"postgresql://drp_limited:S3cr3t-Pa55@127.0.0.1:5432/{dbname}"
        with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
            conn.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC")
        run = run_backup(make_target("db", url, [local_location]))
        assert_failed_without_copies(run, "pg_dump failed", locations=[local_location])
        assert "S3cr3t-Pa55" not in run.error
    finally:
        with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
            conn.execute(f'REVOKE ALL ON DATABASE "{source_db.rsplit("/", 1)[1]}" FROM drp_limited')


def test_missing_recipients_refuse_to_back_up(settings, source_db, local_location, make_target):
    settings.BACKUP_AGE_RECIPIENTS = []
    run = run_backup(make_target("db", source_db, [local_location]))
    assert_failed_without_copies(run, "no age recipients configured", locations=[local_location])


def test_unset_environment_source_fails_clearly(local_location, make_target, monkeypatch):
    monkeypatch.delenv("BOTFLOW_DATABASE_URL", raising=False)
    run = run_backup(make_target("db", "env:BOTFLOW_DATABASE_URL", [local_location]))
    assert_failed_without_copies(run, "BOTFLOW_DATABASE_URL is not set")


def test_environment_source_is_read_at_run_time(source_db, local_location, make_target, monkeypatch):
    monkeypatch.setenv("BOTFLOW_DATABASE_URL", source_db)
    run = run_backup(make_target("db", "env:BOTFLOW_DATABASE_URL", [local_location]))
    assert run.status == "succeeded", run.error


def test_unreachable_bucket_fails_the_run_and_leaves_no_copy_there(source_db, local_location, make_target, s3_endpoint):
    from backups.models import Location
    from tests.conftest import free_port

    dead = Location.objects.create(
        name="s3-down", url="s3://nowhere/daily", endpoint_url=f"http://127.0.0.1:{free_port()}"
    )
    run = run_backup(make_target("db", source_db, [local_location, dead]))

    # Issue #11: a run whose copy landed somewhere is "partial", not "failed"; the error names the location.
    assert run.status == "partial"
    assert "location s3-down: cannot upload" in run.error
    assert not run.artifacts.filter(location=dead).exists()
    # The local copy is a good backup and is kept, recorded as such.
    local = run.artifacts.get(location=local_location)
    assert sha256_file(local_path(local)) == run.sha256


def test_missing_bucket_fails_with_the_s3_error(source_db, local_location, make_target, s3_endpoint):
    from backups.models import Location

    gone = Location.objects.create(name="s3-gone", url="s3://no-such-bucket-here/x", endpoint_url=s3_endpoint)
    run = run_backup(make_target("db", source_db, [gone]))
    assert run.status == "failed"
    assert "NoSuchBucket" in run.error
    assert not run.artifacts.exists()


def test_source_dying_midway_fails_the_run(source_db, local_location, make_target, monkeypatch):
    """A truncated dump must never look like a small good backup."""
    from backups.engines import postgresql

    real = postgresql.StreamingProcess

    def killed_after_start(argv, **kwargs):
        # Same pg_dump, but the process is killed as soon as it starts streaming.
        process = real(argv, **kwargs)
        process.proc.stdout.peek(1)
        process.kill()
        return process

    monkeypatch.setattr(postgresql, "StreamingProcess", killed_after_start)
    run = run_backup(make_target("db", source_db, [local_location]))
    assert_failed_without_copies(run, "pg_dump failed", locations=[local_location])


def test_a_run_is_executed_once(source_db, local_location, make_target):
    run = run_backup(make_target("db", source_db, [local_location]))
    again = backup.execute(run)
    assert again.status == "succeeded"
    assert BackupRun.objects.count() == 1 and Artifact.objects.count() == 1


def test_backup_command_verifies_now_or_queues_the_verification(source_db, local_location, make_target, capsys):
    from django.core.management import call_command

    from backups.models import Verification

    make_target("botflow-db", source_db, [local_location])

    call_command("backup", "botflow-db", "--verify", "now")
    assert "verification #" in capsys.readouterr().err
    assert Verification.objects.get().status == "passed"

    call_command("backup", "botflow-db")  # default: queued for the workers
    queued = Verification.objects.filter(status="queued")
    assert queued.count() == 1 and queued.get().run.status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_backup_command_with_the_broker_down_still_backs_up_and_says_so(source_db, local_location, make_target):

    from backups.models import Verification
    from tests.conftest import free_port, manage_env, manage_py

    make_target("botflow-db", source_db, [local_location])
    env = manage_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # Redis gone
    result = manage_py("backup", "botflow-db", env=env)
    assert result.returncode == 0, result.stderr
    assert "could not queue the verification; run: manage.py verify" in result.stderr
    assert BackupRun.objects.get().status == "succeeded"
    assert not Verification.objects.exists()  # no check left looking queued
