"""A fresh `make run` is calm: the real scripts/run-dev.sh (web server, Celery worker and beat on the SQLite
and filesystem-broker defaults, in a var dir of its own) sends no alert during the first-backup grace
period, and the dashboard says "waiting for the first backup".

Slow (about two minutes: beat's every-minute RPO and queue checks must have run at least once), so it
carries the `deploy` marker with the other process-level smoke tests.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests import make_run
from tests.conftest import ROOT, free_port
from tests.core.test_run_env import PY, bare_env

pytestmark = pytest.mark.deploy

# Beat's every-minute checks that would raise the alerts of a fresh install: RPO breached, queue without worker.
EVERY_MINUTE = ("backups.tasks.evaluate_objectives", "backups.tasks.watch_queues")


def wait_for(log: Path, proc: subprocess.Popen, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, text := log.read_text(errors="replace")):
        assert proc.poll() is None, f"make run stopped ({proc.returncode}):\n{text[-4000:]}"
        assert time.monotonic() < deadline, f"no {pattern!r} after {timeout:.0f} s:\n{text[-4000:]}"
        time.sleep(0.5)
    return text


def portal_shell(home: Path, code: str) -> str:
    """Run `code` in `manage.py shell` against the running portal, as another terminal would (source var/env)."""
    env = {k: v for k, v in bare_env(home).items() if not k.startswith(("DRPORTAL_", "BACKUP_AGE_"))}
    script = f"source {home / 'env'} && {PY} manage.py shell -c {code!r}"
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]  # after Django's "N objects imported automatically"


def log_in(base: str, password: str) -> requests.Session:
    session = requests.Session()
    login = session.get(f"{base}/admin/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    done = session.post(
        f"{base}/admin/login/?next=/admin/",
        data={"csrfmiddlewaretoken": token, "username": "admin", "password": password, "next": "/admin/"},
        headers={"Referer": f"{base}/admin/login/"},
        timeout=30,
    )
    assert done.status_code == 200 and 'id="dash-verdict"' in done.text, done.text[:2000]
    return session


def test_a_fresh_make_run_sends_no_alert_and_waits_for_the_first_backup(tmp_path):
    home = tmp_path / "var"
    env = bare_env(home)  # no DATABASE_URL, REDIS_URL: the embedded defaults, as on a new machine
    env.pop("FIRST_ALERT_GRACE_SECONDS", None)  # the shipped grace (26 h)
    env["PORT"] = str(free_port())
    base = f"http://127.0.0.1:{env['PORT']}"
    log_path = tmp_path / "run.log"
    proc = make_run.start(env, log_path)
    try:
        wait_for(log_path, proc, "DR Portal is running", 240)
        password = (home / "admin-password.txt").read_text().strip()
        started = time.monotonic()

        # Until beat's every-minute checks have run (and a little after, for their alerts to be written).
        for task in EVERY_MINUTE:
            wait_for(log_path, proc, rf"\[worker\].*Task {re.escape(task)}\[[^\]]+\] succeeded", 150)
        time.sleep(3)
        output = log_path.read_text(errors="replace")
        assert "Traceback" not in output, output[-4000:]

        # The outbox is empty: nothing was sent, nothing is waiting to be sent.
        notifications = portal_shell(
            home,
            "from alerts.models import Notification; print(list(Notification.objects.values_list('event', 'subject')))",
        )
        assert notifications == "[]", notifications

        # The dashboard, after logging in as the administrator make run created.
        session = log_in(base, password)
        page = session.get(f"{base}/admin/", timeout=30).text
        verdict = re.search(r'id="dash-verdict" data-verdict="(\w+)">(.*?)</section>', page, re.S)
        assert verdict, page[:3000]
        words = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", verdict.group(2)))
        assert verdict.group(1) == "waiting", words
        assert "waiting for the first backup" in words
        assert "no alert is sent until the first-backup grace period is over" in words
        assert "breached" not in words.lower()
        # Every objective of the shipped plan waits, none is called breached.
        for name in ("configuration", "database", "files", "logs", "portal"):
            assert f"objective {name}: waiting for its first" in words, words
        assert "rpo-state-breached" not in page
        # /health is still honest: waiting is not safe.
        assert requests.get(f"{base}/health", timeout=30).status_code == 503
        print(f"checked {time.monotonic() - started:.0f} s after the portal answered")
    finally:
        make_run.stop(proc, home)
