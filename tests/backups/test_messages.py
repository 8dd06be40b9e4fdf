"""Failures say what is true: the phase, the location or folder, and the cause; commands end in one line.

A full spool is a real full disk (a 2 MiB tmpfs mounted by the test); commands run as subprocesses;
the admin is driven over HTTP.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from backups.models import Artifact, BackupRun, Location, Objective, Target
from backups.services import backup
from drportal import roles
from tests.conftest import free_port, manage_env, manage_py, run_backup

pytestmark = pytest.mark.django_db


def manage(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return manage_py(*args, env=manage_env(**(env or {})), timeout=300)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1]


def dead_worker() -> str:
    """A worker identity on this host whose process has ended: provably dead."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}"


def files_target(tmp_path: Path, locations, megabytes: int = 4) -> Target:
    data = tmp_path / "data"
    data.mkdir()
    (data / "random.bin").write_bytes(os.urandom(megabytes << 20))  # incompressible: the spool gets it all
    target = Target.objects.create(name="files", engine="files", source=str(data))
    target.locations.set(locations)
    return target


# --- the stale-run cleanup ---------------------------------------------------------------------


def test_a_stale_run_with_recorded_copies_is_not_said_to_have_none(local_location, make_target, tmp_path):
    target = make_target("db", "env:UNUSED", [local_location])
    old = timezone.now() - timedelta(hours=1)
    with_copy = BackupRun.objects.create(
        target=target,
        status="running",
        started_at=old,
        heartbeat_at=old,
        worker=dead_worker(),
        sha256="a" * 64,
        format="postgresql-sql",
        compression="zstd",
    )
    Artifact.objects.create(
        run=with_copy,
        location=local_location,
        key="db/x.age",
        url=f"{local_location.url}/db/x.age",
        size=1,
        sha256="a" * 64,
    )
    other = make_target("db2", "env:UNUSED", [local_location])
    without = BackupRun.objects.create(
        target=other, status="running", started_at=old, heartbeat_at=old, worker=dead_worker()
    )

    backup.reap_stale_runs()

    with_copy.refresh_from_db()
    without.refresh_from_db()
    # A copy that landed before the worker died is complete: the run is partial (issue #11), not failed.
    assert with_copy.status == "partial" and without.status == "failed"
    assert "no copy was recorded" not in with_copy.error
    assert f"1 copy was recorded: local ({local_location.url}/db/x.age)" in with_copy.error
    assert "no copy was recorded" in without.error


# --- failures name the phase, the folder and the cause -----------------------------------------


@pytest.fixture
def full_spool(tmp_path, settings):
    """A real 2 MiB filesystem as the spool folder."""
    mount = tmp_path / "spool-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {result.stderr.decode().strip()}")
    settings.BACKUP_SPOOL_DIR = mount
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_spool_disk_names_the_folder_and_the_cause(full_spool, tmp_path, local_location, caplog):
    target = files_target(tmp_path, [local_location])

    with caplog.at_level(logging.WARNING):
        run = run_backup(target)

    assert run.status == "failed"
    assert run.error.startswith(
        f"compress/encrypt: the spool folder {full_spool} is full (No space left on device) while writing "
        f"run #{run.pk}'s encrypted dump"
    ), run.error
    assert " bytes written); free space there or point BACKUP_SPOOL_DIR at a larger disk" in run.error
    for wrong in ("unexpected error", "EncryptError", "OSError", "Traceback"):
        assert wrong not in run.error
    assert not [r for r in caplog.records if r.exc_info], "a full disk is the world's fault, not a crash to trace"
    assert list(full_spool.iterdir()) == [], "the partial spool file is removed"
    assert not run.artifacts.exists()
    assert not Path(urlsplit(local_location.url).path).exists() or not any(
        Path(urlsplit(local_location.url).path).rglob("*.age")
    )


def test_a_spool_folder_that_cannot_be_made_is_named(tmp_path, local_location, settings):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder's parent should be")
    settings.BACKUP_SPOOL_DIR = blocker / "spool"
    run = run_backup(files_target(tmp_path, [local_location], megabytes=1))

    assert run.status == "failed"
    assert run.error == (
        f"compress/encrypt: cannot create a file in the spool folder {blocker / 'spool'}: Not a directory"
    ), run.error


def test_a_location_folder_that_cannot_be_written_is_named_with_the_phase(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    broken = Location.objects.create(name="broken", url=f"file://{blocker}/backups")
    good = Location.objects.create(name="good", url=f"file://{tmp_path}/good")
    run = run_backup(files_target(tmp_path, [broken, good], megabytes=1))

    assert run.status == "partial"  # issue #11: a copy landed, so the run is partial (was "failed")
    # The copy is staged under the temporary prefix first (see backups/locations.py).
    assert run.error.startswith(f"copy: location broken: cannot write {blocker}/backups/.incomplete/files/"), run.error
    assert run.error.endswith(": Not a directory"), run.error
    assert run.artifacts.get().location == good  # the good copy is kept and recorded


def test_a_missing_source_names_the_dump_phase(tmp_path, local_location):
    target = Target.objects.create(name="gone", engine="files", source=str(tmp_path / "no-such-folder"))
    target.locations.set([local_location])
    run = run_backup(target)
    assert run.status == "failed"
    assert run.error.startswith("dump: "), run.error
    assert "I/O error" not in run.error


# --- rebuildcatalog keeps what was recorded and says what it skipped --------------------------------


@pytest.mark.django_db(transaction=True)
def test_rebuildcatalog_keeps_status_times_and_copy_dates_and_reports_skips(tmp_path, s3_endpoint):
    local = Location.objects.create(name="local", url=f"file://{tmp_path}/backups")
    dead = Location.objects.create(
        name="s3-down", url="s3://nowhere/daily", endpoint_url=f"http://127.0.0.1:{free_port()}"
    )
    target = files_target(tmp_path, [local], megabytes=1)
    good = run_backup(target)
    assert good.status == "succeeded", good.error
    target.locations.set([local, dead])
    failed = run_backup(target)
    # issue #11: one location failed and a copy landed: "partial" (was "failed"), kept as such by the rebuild
    assert failed.status == "partial" and failed.artifacts.count() == 1, failed.error
    recorded = {
        run.sha256: (run.status, run.error, run.started_at, run.finished_at, run.artifacts.get().created_at)
        for run in (good, failed)
    }
    folder = Path(f"{tmp_path}/backups")
    # An artifact whose manifest never got written (killed run), and a manifest that cannot be read.
    orphan = folder / "files" / "orphan-r999.tar.zst.age"
    orphan.write_bytes(b"age-encrypted bytes with no manifest")
    garbled = folder / "files" / "garbled-r998.tar.zst.age"
    garbled.write_bytes(b"x")
    Path(f"{garbled}.json").write_bytes(b"\x00\xffnot json")

    Artifact.objects.all().delete()
    BackupRun.objects.all().delete()
    Target.objects.all().delete()
    Location.objects.filter(pk=dead.pk).delete()
    result = manage("rebuildcatalog", "local", "--json")

    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    assert report["runs_added"] == 2 and report["copies_added"] == 2
    skipped = {Path(item["key"]).name: item["reason"] for item in report["skipped"]}
    assert skipped["orphan-r999.tar.zst.age"].startswith("no manifest"), skipped
    assert skipped["garbled-r998.tar.zst.age.json"].startswith("unreadable manifest"), skipped
    rebuilt = {
        run.sha256: (run.status, run.error, run.started_at, run.finished_at, run.artifacts.get().created_at)
        for run in BackupRun.objects.prefetch_related("artifacts")
    }
    assert rebuilt == recorded

    text = manage("rebuildcatalog", "local")
    assert "0 run(s) added" in text.stdout
    assert "skipped files/orphan-r999.tar.zst.age: no manifest" in text.stderr
    assert "skipped files/garbled-r998.tar.zst.age.json: unreadable manifest" in text.stderr


def test_rebuildcatalog_still_loads_old_manifests(tmp_path, local_location, capsys):
    from django.core.management import call_command

    run = run_backup(files_target(tmp_path, [local_location], megabytes=1))
    artifact = run.artifacts.get()
    path = Path(urlsplit(artifact.url).path)
    sidecar = path.with_name(path.name + ".json")
    data = json.loads(sidecar.read_text())
    # What a manifest written before this change held: no status, error or copy date; no index.
    for key in ("status", "error", "created_at"):
        data.pop(key, None)
    sidecar.write_text(json.dumps(data))
    (path.parents[3] / "manifest.json").unlink()
    Artifact.objects.all().delete()
    BackupRun.objects.all().delete()

    call_command("rebuildcatalog", "local")

    rebuilt = BackupRun.objects.get()
    assert rebuilt.status == "succeeded" and rebuilt.sha256 == run.sha256
    assert rebuilt.finished_at == parse_datetime(data["finished_at"])
    assert rebuilt.artifacts.get().created_at == rebuilt.finished_at  # not the time of the rebuild
    assert "1 run(s) added" in capsys.readouterr().out


# --- commands end in one line -------------------------------------------------------------------------


def test_a_binary_plan_file_is_one_line(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_bytes(b"\xfe\xff\x00" + secrets.token_bytes(200))
    line = one_line_error(manage("applyplan", str(plan)))
    assert line == f"CommandError: {plan}: not a text (UTF-8) file; a plan is TOML text"


def test_a_folder_as_plan_file_is_one_line(tmp_path):
    line = one_line_error(manage("applyplan", str(tmp_path)))
    assert line == f"CommandError: {tmp_path}: cannot read it: Is a directory"


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_listbackups_refuses_a_limit_below_one(limit):
    line = one_line_error(manage("listbackups", "--limit", limit))
    assert line.endswith(f"argument --limit: must be a whole number of at least 1, got {limit}"), line


def test_backup_refuses_a_timeout_that_is_not_positive():
    line = one_line_error(manage("backup", "any", "--queue", "--timeout", "-5"))
    assert line.endswith("argument --timeout: must be a number of seconds above 0, got -5"), line
    line = one_line_error(manage("backup", "any", "--queue", "--timeout", "nan"))
    assert line.endswith("argument --timeout: must be a number of seconds above 0, got nan"), line


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("command", ["exportplan", "incidentreport"])
def test_writing_to_a_missing_folder_is_one_line(command, tmp_path):
    args = [command]
    if command == "incidentreport":
        from incidents.models import Incident, Severity

        severity = Severity.objects.create(key="P9", name="Test", target_rto=timedelta(hours=1))
        args.append(str(Incident.open(title="x", severity=severity).pk))
    out = tmp_path / "no-such-folder" / "x.md"
    line = one_line_error(manage(*args, "-o", str(out)))
    assert line == f"CommandError: cannot write {out}: No such file or directory", line


# --- the admin says what is wrong in words ------------------------------------------------------------


def test_a_negative_rpo_in_the_admin_is_a_form_error_in_words(client):
    user = User.objects.create_user("devops", password="pw")
    roles.assign(user, "DevOps")
    client.force_login(user)
    response = client.post(
        reverse("admin:backups_objective_add"),
        {"name": "db", "rpo": "-01:00:00", "enabled": "on", "ping": "on"},
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "objective_rpo_positive" not in page
    assert "The RPO must be longer than zero" in page
    assert not Objective.objects.exists()


def test_rebuildcatalog_does_not_call_a_run_that_never_ended_succeeded(tmp_path, local_location, capsys):
    """Its worker died after the sidecar and before anything recorded the end: say so, do not guess."""
    from django.core.management import call_command

    run = run_backup(files_target(tmp_path, [local_location], megabytes=1))
    path = Path(urlsplit(run.artifacts.get().url).path)
    (path.parents[3] / "manifest.json").unlink()  # the index that the end of the run rewrites
    sidecar = path.with_name(path.name + ".json")
    assert json.loads(sidecar.read_text())["status"] == "running"  # written while the run was running
    Artifact.objects.all().delete()
    BackupRun.objects.all().delete()

    call_command("rebuildcatalog", "local")

    rebuilt = BackupRun.objects.get()
    assert rebuilt.status == "failed"
    assert rebuilt.error.startswith("rebuilt from a manifest written while the run was still running")


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("interval", "00:00:01", "Check at most every 5 seconds"),
        ("timeout", "-00:00:05", "The timeout must be longer than zero"),
    ],
)
def test_a_probe_out_of_range_in_the_admin_is_a_form_error_in_words(client, field, value, said):
    user = User.objects.create_user("devops", password="pw")
    roles.assign(user, "DevOps")
    client.force_login(user)
    form = {
        "name": "api",
        "url": "https://example.com/health",
        "expected_status": "200",
        "interval": "00:01:00",
        "timeout": "00:00:10",
        "failures_before_down": "2",
        "enabled": "on",
        "results-TOTAL_FORMS": "0",
        "results-INITIAL_FORMS": "0",
        field: value,
    }
    response = client.post(reverse("admin:drportal_probe_add"), form)
    page = response.content.decode()
    assert response.status_code == 200
    assert "probe_interval_min_5s" not in page and "probe_timeout_positive" not in page
    assert said in page
