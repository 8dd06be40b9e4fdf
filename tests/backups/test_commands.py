"""Jobs started from manage.py name the person at the shell: OS user and host, in the catalogue and the admin."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from backups.management import command_line_user
from backups.models import BackupRun, Restore, Verification
from tests.conftest import ROOT, pg_url, table_rows

pytestmark = pytest.mark.django_db

HOST = socket.gethostname()


@pytest.fixture
def alice(monkeypatch):
    """A shell logged in as alice: getpass reads LOGNAME first, as it does for a real login."""
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.delenv("SUDO_USER", raising=False)
    return f"alice@{HOST}"


def run_command(*args: str) -> dict:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def test_backup_and_its_verification_record_who_ran_them(alice, source_db, local_location, make_target):
    make_target("botflow-db", source_db, [local_location])

    printed = run_command("backup", "botflow-db", "--verify", "now", "--json")

    run = BackupRun.objects.get()
    assert (run.status, run.trigger, run.command_user, run.triggered_by) == ("succeeded", "command", alice, None)
    assert run.trigger_description == f"command line ({alice})"
    assert printed["triggered_by"] == alice
    verification = Verification.objects.get()
    assert (verification.status, verification.command_user) == ("passed", alice)


def test_a_verification_queued_for_the_workers_names_who_ran_the_backup(alice, source_db, local_location, make_target):
    make_target("botflow-db", source_db, [local_location])
    call_command("backup", "botflow-db", stdout=StringIO(), stderr=StringIO())  # default: verification queued
    queued = Verification.objects.get()
    assert (queued.status, queued.trigger, queued.command_user) == ("queued", "command", alice)


def test_listbackups_json_says_who_ran_each_run(alice, source_db, local_location, make_target, monkeypatch):
    make_target("botflow-db", source_db, [local_location])
    call_command("backup", "botflow-db", "--verify", "no", stdout=StringIO())
    monkeypatch.setenv("LOGNAME", "bob")
    call_command("backup", "botflow-db", "--verify", "no", stdout=StringIO())
    BackupRun.objects.create(target=BackupRun.objects.first().target, trigger="schedule", status="failed")

    listed = run_command("listbackups", "--json")

    assert [(r["trigger"], r["triggered_by"]) for r in listed] == [
        ("schedule", None),
        ("command", f"bob@{HOST}"),
        ("command", alice),
    ]


def test_verify_command_records_who_ran_it(alice, source_db, local_location, make_target):
    target = make_target("botflow-db", source_db, [local_location])
    call_command("backup", target.name, "--verify", "no", stdout=StringIO())
    run = BackupRun.objects.get()

    printed = run_command("verify", str(run.pk), "--json")

    verification = Verification.objects.get()
    assert (verification.status, verification.trigger, verification.command_user) == ("passed", "command", alice)
    assert (printed["trigger"], printed["triggered_by"]) == ("command", alice)


def test_restore_command_records_who_ran_it(alice, source_db, local_location, make_target, scratch_db_name):
    make_target("botflow-db", source_db, [local_location])
    call_command("backup", "botflow-db", "--verify", "no", stdout=StringIO())
    new = scratch_db_name("drp_copy")

    printed = run_command("restore", str(BackupRun.objects.get().pk), "--to", pg_url(new), "--yes", "--json")

    record = Restore.objects.get()
    assert (record.status, record.trigger, record.command_user) == ("succeeded", "command", alice), record.error
    assert (printed["trigger"], printed["triggered_by"]) == ("command", alice)
    assert table_rows(pg_url(new)) == table_rows(source_db)


def test_the_admin_shows_who_ran_a_command_line_job(alice, admin_client, source_db, local_location, make_target):
    make_target("botflow-db", source_db, [local_location])
    call_command("backup", "botflow-db", "--verify", "now", stdout=StringIO(), stderr=StringIO())
    run = BackupRun.objects.get()
    said = f"command line ({alice})"

    assert said in admin_client.get(reverse("admin:backups_backuprun_changelist")).content.decode()
    assert said in admin_client.get(reverse("admin:backups_verification_changelist")).content.decode()
    page = admin_client.get(reverse("admin:backups_backuprun_change", args=[run.pk])).content.decode()
    assert said in page  # the run's verifications inline
    assert "Command-line user" in page and alice in page


def test_the_person_behind_sudo_is_named(monkeypatch):
    monkeypatch.setenv("LOGNAME", "drportal")
    monkeypatch.setenv("SUDO_USER", "alice")
    assert command_line_user() == f"alice as drportal@{HOST}"
    monkeypatch.setenv("SUDO_USER", "drportal")  # sudo to oneself adds nothing
    assert command_line_user() == f"drportal@{HOST}"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to run as another uid")
def test_a_uid_without_a_name_is_still_recorded():
    """A container running as an arbitrary uid: no LOGNAME/USER and no passwd entry, so getpass raises."""
    import pwd

    uid = 54321
    with pytest.raises(KeyError):
        pwd.getpwuid(uid)  # the premise: this uid has no name on this machine
    # Import as root (the interpreter may live under /root), then become the nameless uid.
    code = (
        "import os; from backups.management import command_line_user; "
        f"os.setgid({uid}); os.setuid({uid}); print(command_line_user())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"uid {uid}@{HOST}"
