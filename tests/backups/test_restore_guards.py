"""Restore guards in the restore service: a restore never lands on live data of something else.

Reached as an operator would: the admin's Restore page over HTTP as a DevOps role user, and
`manage.py restore` as a subprocess (with the portal itself on SQLite, as `make run` runs it).
"""

from __future__ import annotations

import html
import os
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.urls import reverse

from backups.models import Restore
from backups.services import backup
from tests.conftest import manage_py, role_client

pytestmark = pytest.mark.django_db


def make_sqlite(path: Path, rows: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes (body) VALUES (?)", [(f"note {i}",) for i in range(rows)])
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def sqlite_runs(tmp_path, local_location, make_target):
    """Two SQLite targets; "other" is backed up and will be restored somewhere."""
    live = make_sqlite(tmp_path / "live" / "app.sqlite3", 10)
    make_target("app", f"sqlite:///{live}", [local_location], engine="sqlite")
    other = make_target(
        "other", f"sqlite:///{make_sqlite(tmp_path / 'other.sqlite3', 3)}", [local_location], engine="sqlite"
    )
    run = backup.execute(backup.start_backup(other, trigger="command"))
    assert run.status == "succeeded", run.error
    return live, run


def test_restore_page_refuses_destinations_that_are_another_targets_live_file(tmp_path, sqlite_runs, local_location):
    live, run = sqlite_runs
    before = live.read_bytes()
    (tmp_path / "live" / "sub").mkdir()
    (tmp_path / "link.sqlite3").symlink_to(live)
    (tmp_path / "linked-folder").symlink_to(tmp_path / "live")
    folder = Path(urlsplit(local_location.url).path)
    spellings = {
        str(live): "the live source of target app",
        f"sqlite:///{live}": "the live source of target app",
        str(tmp_path / "link.sqlite3"): "the live source of target app",
        str(tmp_path / "linked-folder" / "app.sqlite3"): "the live source of target app",
        str(tmp_path / "live" / "sub" / ".." / "app.sqlite3"): "the live source of target app",
        str(live) + "/": "the live source of target app",
        os.path.relpath(live): "the live source of target app",
        str(live) + "-wal": "the live source of target app",
        str(folder / "restored.sqlite3"): "the folder of backup location local",
    }
    client = role_client("DevOps")
    url = reverse("admin:backups_backuprun_restore", args=[run.pk])
    for to, collides_with in spellings.items():
        page = client.post(
            url, {"location": "local", "to": to, "confirm": "yes", "csrfmiddlewaretoken": client.token}
        ).content.decode()
        page = html.unescape(page)
        assert "This restore cannot go ahead: refusing to restore into" in page, to
        assert collides_with in page, (to, page[page.find("errornote") :][:300])
        assert "Yes, restore" not in page
    assert not Restore.objects.exists()
    assert live.read_bytes() == before

    # A new file elsewhere is still offered (the guard refuses collisions, not restores).
    page = client.post(
        url, {"location": "local", "to": str(tmp_path / "copy.sqlite3"), "csrfmiddlewaretoken": client.token}
    ).content.decode()
    assert "Yes, restore" in page and "cannot go ahead" not in page


def test_restore_page_refuses_the_portals_own_database_and_another_targets_database(
    source_db, local_location, make_target, scratch_db_name
):
    from tests.conftest import create_botflow_db

    portal = make_target("portal", "", [local_location], engine="portal")
    portal_run = backup.execute(backup.start_backup(portal, trigger="command"))
    assert portal_run.status == "succeeded", portal_run.error
    other_db = create_botflow_db(scratch_db_name())
    make_target("botflow-db", source_db, [local_location])
    other = make_target("other-db", other_db, [local_location])
    other_run = backup.execute(backup.start_backup(other, trigger="command"))
    assert other_run.status == "succeeded", other_run.error
    portal_name = connection.settings_dict["NAME"]
    client = role_client("DevOps")

    cases = [
        # The same server spelled another way, with the database the portal runs on.
        (portal_run, f"postgresql://postgres@localhost:5432/{portal_name}", "the portal's own database"),
        (portal_run, f"postgresql://postgres@127.0.0.1/{portal_name}?sslmode=disable", "the portal's own database"),
        (other_run, source_db.replace("127.0.0.1", "localhost"), "the live source of target botflow-db"),
    ]
    for run, to, collides_with in cases:
        url = reverse("admin:backups_backuprun_restore", args=[run.pk])
        page = client.post(
            url, {"location": "local", "to": to, "confirm": "yes", "csrfmiddlewaretoken": client.token}
        ).content.decode()
        page = html.unescape(page)
        assert collides_with in page, to
        assert "Yes, restore" not in page
    assert not Restore.objects.exists()


def test_the_service_refuses_whoever_calls_it(sqlite_runs):
    """The Celery task and the command both go through restore.execute: a queued restore is refused too."""
    from backups.services import restore

    live, run = sqlite_runs
    before = live.read_bytes()
    record = Restore.objects.create(source=str(run.pk), destination=str(live), run=run)
    record = restore.execute(record)
    assert record.status == "failed"
    assert "refusing to restore into" in record.error and "the live source of target app" in record.error
    assert record.swapped_at is None
    assert live.read_bytes() == before


def portal_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="drportal.settings",
        DRPORTAL_HOME=str(home),
        DATABASE_URL=f"sqlite:///{home / 'portal.sqlite3'}",
    )
    return env


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return manage_py(*args, env=env, timeout=180)


def test_restoring_the_portals_backup_over_its_live_sqlite_file_is_refused_from_the_command(tmp_path):
    """The issue's case: the portal on SQLite, its own backup restored --to the live file (or a path to it)."""
    home = tmp_path / "home"
    env = portal_env(home)
    assert manage(env, "migrate", "--noinput").returncode == 0
    setup = (
        "from backups.models import Location, Target; "
        f"loc = Location.objects.create(name='local', url='file://{tmp_path / 'backups'}'); "
        "t = Target.objects.create(name='portal', engine='portal'); t.locations.set([loc])"
    )
    assert manage(env, "shell", "-c", setup).returncode == 0
    made = manage(env, "backup", "portal")
    assert made.returncode == 0, made.stderr
    live = home / "portal.sqlite3"
    (tmp_path / "sub").mkdir()
    (tmp_path / "alias.sqlite3").symlink_to(live)
    for to in (str(live), str(tmp_path / "alias.sqlite3"), str(tmp_path / "sub" / ".." / "home" / "portal.sqlite3")):
        done = manage(env, "restore", "1", "--to", to, "--yes")
        assert done.returncode == 1, (to, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines() == [
            f"refused: refusing to restore into {live}: it is the portal's own database"
        ], done.stderr
    check = sqlite3.connect(live).execute("PRAGMA integrity_check").fetchone()[0]
    assert check == "ok"
    listed = manage(env, "listbackups")
    assert listed.returncode == 0 and "portal" in listed.stdout, listed.stderr
    assert not list(home.glob("portal.sqlite3.pre_restore_*"))


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_the_swap_says_the_data_was_swapped_in(tmp_path, local_location, make_target):
    """A real fault after the swap: the database refuses to record the success (a CHECK constraint)."""
    live = make_sqlite(tmp_path / "notes.sqlite3", 50)
    target = make_target("notes", f"sqlite:///{live}", [local_location], engine="sqlite")
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    conn = sqlite3.connect(live)
    conn.execute("DELETE FROM notes")
    conn.commit()
    conn.close()
    with connection.cursor() as cur:
        cur.execute(
            "ALTER TABLE backups_restore ADD CONSTRAINT test_no_success CHECK (status <> 'succeeded') NOT VALID"
        )
    try:
        done = manage_py("restore", str(run.pk), "--yes")
    finally:
        with connection.cursor() as cur:
            cur.execute("ALTER TABLE backups_restore DROP CONSTRAINT test_no_success")
    assert done.returncode == 1, done.stdout + done.stderr
    record = Restore.objects.get()
    assert record.status == "failed" and record.swapped_at is not None
    # The live file IS the restored copy now; the message must say so and how to go back.
    assert sqlite3.connect(live).execute("SELECT count(*) FROM notes").fetchone()[0] == 50
    assert record.rollback_name and Path(record.rollback_name).exists()
    expected = (
        f"the restored data was swapped in at {record.swapped_at:%H:%M:%S} UTC; "
        f"the previous data is kept as {record.rollback_name}; recording the result failed: IntegrityError"
    )
    assert record.error.startswith(expected), record.error
    assert "not changed" not in done.stderr and "not changed" not in record.error
    assert expected in done.stderr


def test_folders_env_files_and_s3_prefixes_of_other_targets_are_refused(
    tmp_path, local_location, make_target, monkeypatch
):
    """The files engine's folders (equal, inside, containing), env files through env:NAME and symlinks."""
    from backups.services import restore

    live_folder = tmp_path / "srv" / "uploads"
    (live_folder / "img").mkdir(parents=True)
    (live_folder / "img" / "a.png").write_bytes(b"png")
    make_target("uploads", str(live_folder), [local_location], engine="files")
    live_env = tmp_path / "etc" / "app.env"
    live_env.parent.mkdir()
    live_env.write_text("A=1\n")
    monkeypatch.setenv("APP_ENV_FILE", str(live_env))
    make_target("app-env", "env:APP_ENV_FILE", [local_location], engine="env")
    make_target("bucket", "s3://data/app/uploads/", [local_location], engine="files")

    other_folder = tmp_path / "other"
    other_folder.mkdir()
    (other_folder / "x.txt").write_text("x")
    files_run = backup.execute(
        backup.start_backup(
            make_target("other", str(other_folder), [local_location], engine="files"), trigger="command"
        )
    )
    other_env = tmp_path / "other.env"
    other_env.write_text("B=2\n")
    env_run = backup.execute(
        backup.start_backup(make_target("other-env", str(other_env), [local_location], engine="env"), trigger="command")
    )
    assert files_run.status == env_run.status == "succeeded", (files_run.error, env_run.error)
    (tmp_path / "env-link").symlink_to(live_env)

    refused = {
        (files_run, str(live_folder)): "it is the live source of target uploads",
        (files_run, str(live_folder) + "/"): "it is the live source of target uploads",
        (files_run, str(live_folder / "img")): "it overlaps the live source of target uploads",
        (files_run, str(tmp_path / "srv")): "it overlaps the live source of target uploads",
        (files_run, f"file://{tmp_path}/srv/x/../uploads"): "it is the live source of target uploads",
        (files_run, "s3://data/app/"): "it overlaps the live source of target bucket",
        (files_run, "s3://data/app/uploads/thumbs/"): "it overlaps the live source of target bucket",
        (files_run, str(tmp_path)): "it overlaps",  # the parent of everything, locations included
        (files_run, str(other_folder / "sub")): "it overlaps the live source of target other",  # inside its own
        (env_run, str(tmp_path / "env-link")): "it is the live source of target app-env",
        (env_run, f"{tmp_path}/etc/../etc/app.env"): "it is the live source of target app-env",
    }
    for (run, to), message in refused.items():
        with pytest.raises(restore.RestoreFailed, match="refusing to restore into") as caught:
            restore.propose(str(run.pk), to=to, location="local")
        assert message in str(caught.value), (to, str(caught.value))
    assert (live_folder / "img" / "a.png").read_bytes() == b"png" and live_env.read_text() == "A=1\n"
    # Somewhere new is fine, and so is each target's own source (the in-place restore).
    assert restore.propose(str(files_run.pk), to=str(tmp_path / "restored"), location="local").plan
    assert restore.propose(str(files_run.pk), location="local").plan.destination == str(other_folder)


@pytest.mark.django_db(transaction=True)
def test_a_restore_killed_after_the_swap_is_reaped_with_words_from_the_swap(
    tmp_path, local_location, make_target, settings
):
    """A real stall: the database hangs while the result is recorded; the process is SIGKILLed there."""
    from datetime import timedelta

    from django.utils import timezone

    from backups.services import restore
    from tests.conftest import kill_restore_midway

    live = make_sqlite(tmp_path / "notes.sqlite3", 20)
    target = make_target("notes", f"sqlite:///{live}", [local_location], engine="sqlite")
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    with connection.cursor() as cur:
        cur.execute(
            "CREATE FUNCTION test_stall() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(3); RAISE EXCEPTION 'stalled'; END $$"
        )
        cur.execute(
            "CREATE TRIGGER test_stall BEFORE UPDATE ON backups_restore FOR EACH ROW "
            "WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION test_stall()"
        )
    try:
        kill_restore_midway(
            [str(run.pk)],
            until=lambda: Restore.objects.filter(swapped_at__isnull=False).exists(),
            message="the swap",
            too_fast="the stall trigger did not hold it",
        )
    finally:
        with connection.cursor() as cur:
            cur.execute("DROP TRIGGER test_stall ON backups_restore")
            cur.execute("DROP FUNCTION test_stall()")
    record = Restore.objects.get()
    assert record.status == "running" and record.swapped_at is not None
    Restore.objects.filter(pk=record.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    assert restore.reap_stale_restores() == 1
    record.refresh_from_db()
    assert record.status == "failed"
    assert f"the restored data was swapped in at {record.swapped_at:%H:%M:%S} UTC" in record.error
    assert f"the previous data is kept as {record.rollback_name}" in record.error
    assert "not replaced" not in record.error and "not changed" not in record.error
    assert Path(record.rollback_name).exists() and live.exists()


def test_a_source_two_targets_back_up_can_still_be_restored_in_place(tmp_path, local_location, make_target):
    """The shipped plan's database and database-archive share one database: in place stays allowed."""
    from backups.services import restore

    live = make_sqlite(tmp_path / "shared.sqlite3", 5)
    target = make_target("database", f"sqlite:///{live}", [local_location], engine="sqlite")
    make_target("database-archive", f"sqlite:///{live}", [local_location], engine="sqlite")
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    assert restore.propose(str(run.pk), location="local").plan.replaces
    assert restore.propose(str(run.pk), to=str(live), location="local").plan.replaces
    with pytest.raises(restore.RestoreFailed, match="the live source of target database"):
        restore.propose(str(run.pk), to=f"{live}-wal", location="local")


@pytest.mark.django_db(transaction=True)
def test_a_queued_restore_onto_live_data_is_refused_by_the_worker(celery_worker, sqlite_runs):
    """A restore row queued by anything (an old page, a script) is checked again where it runs."""
    from backups.tasks import run_restore
    from tests.conftest import wait_for

    live, run = sqlite_runs
    before = live.read_bytes()
    record = Restore.objects.create(source=str(run.pk), destination=f"{live.parent}/../live/app.sqlite3", run=run)
    run_restore.delay(record.pk)
    wait_for(lambda: Restore.objects.get(pk=record.pk).is_finished, message="the worker to finish the restore")
    record.refresh_from_db()
    assert record.status == "failed" and record.swapped_at is None
    assert f"refusing to restore into {live}: it is the live source of target app" == record.error
    assert live.read_bytes() == before
