"""`make run` leaves what another terminal needs; manage.py and celery refuse a DRPORTAL_HOME with no portal."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from tests import make_run
from tests.conftest import ROOT, free_port

PY = sys.executable
HIDDEN = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "PORT", "PORTAL_URL")


def bare_env(home: Path) -> dict:
    """As a new terminal on the machine: no DATABASE_URL (the SQLite default), DRPORTAL_HOME as given."""
    env = {k: v for k, v in os.environ.items() if k not in HIDDEN}
    env["DRPORTAL_HOME"] = str(home)
    return env


def run(args: list[str], env: dict, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def assert_refused(done: subprocess.CompletedProcess, home: Path) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"DRPORTAL_HOME={home} holds no portal database (portal.sqlite3)"), lines[0]


def test_manage_py_refuses_a_home_with_no_portal_and_creates_nothing(tmp_path):
    home = tmp_path / "elsewhere" / "var"
    for command in (["listbackups"], ["backup", "portal"], ["shell", "-c", "print(1)"], ["createsuperuser"]):
        assert_refused(run([PY, "manage.py", *command], bare_env(home)), home)
    assert not home.exists()  # no second, empty portal was made


def test_celery_refuses_a_home_with_no_portal(tmp_path):
    home = tmp_path / "var"
    done = run([PY, "-m", "celery", "-A", "drportal", "worker", "--loglevel=INFO"], bare_env(home))
    assert_refused(done, home)
    assert not home.exists()


def test_migrate_creates_the_portal_then_commands_run(tmp_path):
    home = tmp_path / "var"
    env = bare_env(home)
    assert run([PY, "manage.py", "check"], env).returncode == 0
    migrated = run([PY, "manage.py", "migrate", "--noinput"], env)
    assert migrated.returncode == 0, migrated.stderr
    listed = run([PY, "manage.py", "listbackups"], env)
    assert listed.returncode == 0, listed.stderr


def test_make_run_writes_an_env_file_another_terminal_can_source(tmp_path):
    home = tmp_path / "portal-home"
    env = bare_env(home)
    env["PORT"] = str(free_port())
    proc = make_run.start(env, tmp_path / "run.log")
    try:
        deadline = time.monotonic() + 240
        while "DR Portal is running" not in (tmp_path / "run.log").read_text():
            assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(0.5)
        output = (tmp_path / "run.log").read_text()
        env_file = home / "env"
        assert f"source {env_file}" in output
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        text = env_file.read_text()
        for name in ("DRPORTAL_HOME", "PORTAL_URL", "BACKUP_AGE_RECIPIENTS", "BACKUP_AGE_IDENTITY_FILE"):
            assert f"export {name}=" in text, text

        # Another terminal: a fresh shell elsewhere, with nothing but the file.
        other = {k: v for k, v in bare_env(home).items() if not k.startswith(("DRPORTAL_", "BACKUP_AGE_"))}
        script = f"source {env_file} && cd {ROOT} && {PY} manage.py listbackups && {PY} manage.py rpo"
        done = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=other, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        # ... and without it, the one-line refusal instead of a second ./var and a traceback.
        stray = tmp_path / "stray-var"
        without = run([PY, "manage.py", "listbackups"], {**other, "DRPORTAL_HOME": str(stray)})
        assert_refused(without, stray)
    finally:
        make_run.stop(proc, home)
