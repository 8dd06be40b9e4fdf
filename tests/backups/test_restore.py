"""Safe restore and verification against real PostgreSQL, local files and moto's S3 server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from django.core.management import call_command

from backups.models import Artifact, BackupRun, Restore, Target, Verification
from backups.services import backup, restore, verify
from tests.conftest import (
    create_botflow_db,
    kill_restore_midway,
    manage_py,
    pg_admin,
    pg_url,
    run_restore,
    table_rows,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def backed_up(source_db, local_location, s3_location, make_target):
    """A succeeded run of a BotFlow database, with copies on disk and in S3."""
    target = make_target("botflow-db", source_db, [local_location, s3_location])
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    return run


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def databases_like(prefix: str) -> list[str]:
    with pg_admin() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", (prefix + "%",))
        return [r[0] for r in rows]


def local_artifact(run) -> Path:
    return Path(urlsplit(run.artifacts.get(location__name="local").url).path)


def test_in_place_restore_brings_back_deleted_rows_and_keeps_the_old_database(backed_up, source_db):
    before = table_rows(source_db)
    with psycopg.connect(source_db) as conn:
        conn.execute("DELETE FROM messages WHERE id > 100")
    damaged = table_rows(source_db)

    code, result = run_restore(str(backed_up.pk))

    assert code == 0, result
    assert result["status"] == "succeeded"
    assert table_rows(source_db) == before
    rollback = result["rollback_name"]
    assert rollback.startswith(dbname(source_db) + "_pre_restore_") and len(rollback) <= 63
    assert table_rows(pg_url(rollback)) == damaged
    assert {t["name"]: t["restored"] for t in result["tables"]}["public.messages"] == 508
    assert "To roll back" in result["log"]
    assert databases_like(dbname(source_db) + "_restoring") == []


def test_restore_to_another_database(backed_up, source_db, scratch_db_name):
    new = scratch_db_name("drp_copy")
    code, result = run_restore(str(backed_up.pk), "--to", pg_url(new))
    assert code == 0, result
    assert result["rollback_name"] is None
    assert table_rows(pg_url(new)) == table_rows(source_db)


def test_restore_from_a_local_path_and_from_an_s3_url(backed_up, source_db, scratch_db_name, s3_location):
    path = local_artifact(backed_up)
    s3_url = backed_up.artifacts.get(location=s3_location).url
    # Without the catalogue, the manifest beside each artifact is what makes them usable.
    Artifact.objects.all().delete()

    for source in (str(path), s3_url):
        new = scratch_db_name("drp_from")
        code, result = run_restore(source, "--to", pg_url(new))
        assert code == 0, (source, result)
        assert table_rows(pg_url(new)) == table_rows(source_db)


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate_by_a_third(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


@pytest.mark.parametrize(
    ("damage", "cause"),
    [
        (flip_one_byte, "checksum mismatch"),
        (truncate_by_a_third, "truncated"),
        (lambda path: path.unlink(), "not found"),
    ],
    ids=["flipped-byte", "truncated", "deleted"],
)
def test_bad_artifacts_are_refused_with_their_cause_and_nothing_changes(backed_up, source_db, damage, cause):
    with psycopg.connect(source_db) as conn:
        conn.execute("DELETE FROM messages WHERE id > 100")
    live = table_rows(source_db)
    damage(local_artifact(backed_up))

    code, result = run_restore(str(backed_up.pk), "--location", "local")

    assert code == 1
    assert result["status"] == "failed"
    assert result["error"].startswith(cause), result["error"]
    assert table_rows(source_db) == live
    assert databases_like(dbname(source_db) + "_") == []


def test_another_key_is_refused_and_nothing_changes(settings, backed_up, source_db, tmp_path):
    from backups.keys import generate_identity_file

    other = tmp_path / "other-identity.txt"
    generate_identity_file(other)
    settings.BACKUP_AGE_IDENTITY_FILE = str(other)
    live = table_rows(source_db)

    code, result = run_restore(str(backed_up.pk))

    assert code == 1
    assert result["error"].startswith("no matching key"), result["error"]
    assert backed_up.key_ids[0] in result["error"]
    assert table_rows(source_db) == live
    assert databases_like(dbname(source_db) + "_") == []


def test_a_refused_source_is_reported_without_touching_anything(source_db):
    code, result = run_restore("/nonexistent/backup.sql.zst.age", "--to", source_db)
    assert code == 1 and result["status"] == "refused"
    assert result["error"].startswith("not found")


@pytest.mark.django_db(transaction=True)
def test_without_yes_the_command_asks_and_defaults_to_no(backed_up, source_db):
    with psycopg.connect(source_db) as conn:
        conn.execute("DELETE FROM messages")
    result = manage_py("restore", str(backed_up.pk), input="\n", timeout=60)
    assert result.returncode != 0
    assert "This REPLACES database " + dbname(source_db) in result.stdout
    assert "Proceed with this restore? [y/N]" in result.stdout
    assert "not confirmed; nothing was changed" in result.stderr
    assert table_rows(source_db)["messages"] == []
    assert not Restore.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_restore_killed_midway_leaves_the_live_database_untouched(
    settings, local_location, make_target, scratch_db_name
):
    name = scratch_db_name("drp_big")
    url = create_botflow_db(name, messages=400_000)
    target = make_target("big", url, [local_location])
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM messages WHERE id % 2 = 0")
    live = table_rows(url)

    kill_restore_midway(
        [str(run.pk)],
        until=lambda: Restore.objects.filter(status="running", bytes_done__gt=0).exists(),
        message="the restore to be loading",
        too_fast="make the database bigger",
    )

    assert table_rows(url) == live
    record = Restore.objects.get()
    assert record.status == "running"
    time.sleep(0.05)
    settings.BACKUP_STALE_SECONDS = 0
    assert restore.reap_stale_restores() == 1
    record.refresh_from_db()
    assert record.status == "failed"
    assert "presumed dead" in record.error and "dropped the half-restored database" in record.error
    assert databases_like(name + "_") == []
    assert table_rows(url) == live


def test_verify_checks_every_copy(backed_up):
    result = verify.verify(verify.start_verification(backed_up, kind="integrity", trigger="command"))
    assert result.ok, result.checks
    names = {c["name"] for c in result.checks}
    assert names == {
        f"{check}:{where}" for check in ("present", "checksum", "decrypt", "manifest") for where in ("local", "s3")
    }


def test_verify_json_and_exit_code_on_a_tampered_copy(backed_up, capsys):
    flip_one_byte(local_artifact(backed_up))
    with pytest.raises(SystemExit) as excinfo:
        call_command("verify", str(backed_up.pk), "--json")
    assert excinfo.value.code == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    by_name = {c["name"]: c for c in data["checks"]}
    assert by_name["checksum:local"]["result"] == "fail"
    assert by_name["checksum:local"]["message"].startswith("checksum mismatch")
    assert by_name["decrypt:local"]["result"] == "fail"
    assert by_name["checksum:s3"]["result"] == "pass"


def test_restore_test_reports_tables_and_duration_and_leaves_no_scratch_database(backed_up, capsys):
    call_command("verify", str(backed_up.pk), "--restore-test", "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True, data
    assert data["duration_seconds"] > 0
    assert {t["name"]: (t["expected"], t["restored"]) for t in data["tables"]} == {
        "public.conversations": (20, 20),
        "public.messages": (508, 508),
        "public.organizations": (3, 3),
    }
    restore_check = next(c for c in data["checks"] if c["name"] == "restore")
    scratch = restore_check["message"].split("scratch copy ", 1)[1].split(" ", 1)[0]
    assert scratch.startswith("drp_restore_test_") and databases_like(scratch) == []
    stored = Verification.objects.get(pk=data["id"])
    assert stored.kind == "restore_test" and stored.duration_seconds == data["duration_seconds"]


def test_rebuildcatalog_on_an_empty_portal_then_verify_and_restore(
    backed_up, source_db, scratch_db_name, s3_location, capsys
):
    sha = backed_up.sha256
    location_name = s3_location.name
    # The portal's database is what was lost: only the locations' configuration is known again.
    Artifact.objects.all().delete()
    BackupRun.objects.all().delete()
    Target.objects.all().delete()

    call_command("rebuildcatalog", location_name)
    assert "1 run(s) added" in capsys.readouterr().out

    rebuilt = BackupRun.objects.get()
    assert rebuilt.sha256 == sha and rebuilt.trigger == "rebuilt" and rebuilt.status == "succeeded"
    assert rebuilt.tables["public.messages"] == 508
    assert Target.objects.get().name == "botflow-db"
    assert verify.verify(verify.start_verification(rebuilt, kind="integrity", trigger="command")).ok
    new = scratch_db_name("drp_rebuilt")
    code, result = run_restore(str(rebuilt.pk), "--to", pg_url(new))
    assert code == 0, result
    assert table_rows(pg_url(new)) == table_rows(source_db)
    # Running it again adds nothing.
    call_command("rebuildcatalog", location_name)
    assert "0 run(s) added" in capsys.readouterr().out
    assert BackupRun.objects.count() == 1


def test_sqlite_round_trip(tmp_path, local_location, make_target):
    import sqlite3

    db = tmp_path / "app.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes (body) VALUES (?)", [(f"note {i}",) for i in range(1000)])
    conn.commit()
    conn.close()
    run = backup.execute(
        backup.start_backup(
            make_target("notes", f"sqlite:///{db}", [local_location], engine="sqlite"), trigger="command"
        )
    )
    assert run.status == "succeeded", run.error
    assert run.tables == {"notes": 1000}
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM notes")
    conn.commit()
    conn.close()

    code, result = run_restore(str(run.pk))

    assert code == 0, result
    assert sqlite3.connect(db).execute("SELECT count(*) FROM notes").fetchone()[0] == 1000
    assert sqlite3.connect(result["rollback_name"]).execute("SELECT count(*) FROM notes").fetchone()[0] == 0
