"""`manage.py backup` in a child process that SIGKILLs itself at a chosen point of the copy phase.

The kill is real (no cleanup code runs, as with the OOM killer or `kill -9`); only where it
lands is chosen, by wrapping one function in the child.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from backups.models import BackupRun
from tests.conftest import ROOT, manage_env

PART_MB = 5  # S3's smallest part: a 12 MB artifact is a three-part multipart upload

# Runs in the child: wrap one function so the process SIGKILLs itself right after (or before) it.
KILLER = r"""
import os, signal, sys
import django
django.setup()
from django.core.management import call_command

target, point = sys.argv[1], sys.argv[2]

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if point == "after-upload":
    from backups import locations
    original = locations.S3Backend.put_file
    def put_file(self, *args, **kwargs):
        original(self, *args, **kwargs)
        die()
    locations.S3Backend.put_file = put_file
elif point == "mid-upload":
    from s3transfer.upload import UploadPartTask
    original = UploadPartTask._main
    def _main(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        die()
    UploadPartTask._main = _main
elif point == "after-local-upload":
    from backups import locations
    original = locations.LocalBackend.put_file
    def put_file(self, *args, **kwargs):
        original(self, *args, **kwargs)
        die()
    locations.LocalBackend.put_file = put_file
elif point == "before-publish":
    from backups import locations
    locations.S3Backend.publish = die
call_command("backup", target, "--verify", "no")
"""


def backup_killed(target: str, point: str, **env_overrides: str) -> BackupRun:
    """`manage.py backup TARGET` in its own process, SIGKILLed at ``point``; returns its run, still 'running'."""
    env = manage_env(**{"BACKUP_S3_PART_SIZE_MB": str(PART_MB)} | env_overrides)
    result = subprocess.run(
        [sys.executable, "-c", KILLER, target, point], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == -signal.SIGKILL, f"the backup was not killed at {point}: {result.stderr[-2000:]}"
    run = BackupRun.objects.filter(target__name=target).latest("pk")
    assert run.status == BackupRun.Status.RUNNING, "a SIGKILLed run cannot have recorded its own end"
    return run


# A Celery worker that SIGKILLs its whole process group (itself, its pool, the pgbackrest it runs; not a
# cluster pg_ctl started, which has a session of its own) at a chosen point of a restore to a moment.
WORKER_KILLER = r"""
import os, signal, sys, threading, time
from pathlib import Path
import django
django.setup()

point = sys.argv.pop(1)

def die(*args, **kwargs):
    os.killpg(os.getpgid(0), signal.SIGKILL)

if point == "during-pgbackrest-restore":
    from backups.engines import pgbackrest as pgbr
    original = pgbr.run
    def run(stanza, command, *args, **kwargs):
        if command == "restore":
            data = Path(next(a for a in args if a.startswith("--pg1-path=")).split("=", 1)[1])
            def watch():
                # Once pgbackrest has written its first file into the data directory: mid-restore.
                while not (data.is_dir() and any(data.iterdir())):
                    time.sleep(0.002)
                die()
            threading.Thread(target=watch, daemon=True).start()
        return original(stanza, command, *args, **kwargs)
    pgbr.run = run
elif point == "after-cluster-started":
    from backups.services.pgbackrest import pitr
    pitr.wait_and_check = die  # pg_ctl start returned; the check never runs
else:
    raise SystemExit(f"unknown kill point {point}")

from celery.__main__ import main
sys.argv[0] = "celery"
main()
"""


def killer_launcher(point: str) -> tuple[str, ...]:
    """``start_worker(..., launcher=killer_launcher(point))``: a real worker that kill -9s itself at ``point``."""
    return ("-c", WORKER_KILLER, point)
