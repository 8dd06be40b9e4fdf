"""Deployment smoke test: start exactly what deploy/ and README "Deploying" describe, then use it over HTTP.

The systemd units' ExecStart lines are run as written (paths moved from /opt/drportal to this
checkout, %i to the queue), with the environment-file template's variables, on PostgreSQL and a
Redis of its own: gunicorn, a worker on the shared queue, a worker on a "database host" queue
(the only one that has its target's env: source), and beat. It logs in, presses "Back up now" on a
target of each queue, sees both succeed on their own queue's worker, and /health answers 200.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import secrets
import shlex
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest

from devtools.processes import stop_all
from tests.conftest import ROOT, create_botflow_db, free_port, pg_admin, pg_url, wait_for, wait_for_http

pytestmark = pytest.mark.deploy

DEPLOY = ROOT / "deploy"


def unit_command(unit: str, instance: str = "") -> list[str]:
    """The unit's ExecStart as a process argv, as systemd would expand it on a host installed in ROOT."""
    text = (DEPLOY / "systemd" / unit).read_text()
    (line,) = [x for x in text.splitlines() if x.startswith("ExecStart=")]
    command = line.removeprefix("ExecStart=").replace("/opt/drportal", str(ROOT))
    command = command.replace("%i", instance).replace("%%", "%")
    assert "%" not in command.replace("%h", ""), f"unexpanded systemd specifier in {unit}: {command}"
    return shlex.split(command)


def procfile_command(name: str, queue: str = "celery") -> list[str]:
    (line,) = [x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith(f"{name}:")]
    command = line.split(":", 1)[1].replace("${WORKER_QUEUE:-celery}", queue)
    return [str(ROOT / part) if part.startswith(".venv/") else part for part in shlex.split(command)]


def env_template() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "drportal.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_the_env_template_holds_no_secret():
    text = (DEPLOY / "drportal.env.example").read_text()
    assert "AGE-SECRET-KEY" not in text
    for key, value in env_template().items():
        if any(word in key for word in ("PASSWORD", "SECRET", "KEYS", "TOKEN")) and not key.endswith("_FILE"):
            assert "REPLACE" in value, f"{key} in the template must be a placeholder"
    assert "REPLACE_WITH_PASSWORD" in env_template()["DATABASE_URL"]


def test_the_procfile_runs_the_same_commands_as_the_units():
    assert procfile_command("web") == unit_command("drportal-web.service")
    assert procfile_command("worker", "db-eu") == unit_command("drportal-worker@.service", "db-eu")
    assert procfile_command("beat") == unit_command("drportal-beat.service")


class Browser:
    """Just enough of a browser: cookies, CSRF tokens from forms, form POSTs."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post_form(self, path: str, fields: dict | list) -> tuple[int, str]:
        _, page = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        items = list(fields.items()) if isinstance(fields, dict) else list(fields)
        data = urllib.parse.urlencode([("csrfmiddlewaretoken", token), *items]).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Referer": self.base + path})
        with self.opener.open(request, timeout=30) as response:
            return response.status, response.read().decode()


def test_the_deployment_recipe_runs_and_backs_up_on_each_queue(tmp_path, age_key):
    tag = secrets.token_hex(3)
    portal_db, source_db = f"drp_deploy_{tag}", f"drp_deploy_src_{tag}"
    redis_port, web_port = free_port(), free_port()
    processes: dict[str, subprocess.Popen] = {}
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{portal_db}"')
    source_url = create_botflow_db(source_db)
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        home = tmp_path / "var"
        (tmp_path / "secret_key").write_text(secrets.token_urlsafe(50))
        from cryptography.fernet import Fernet

        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            **env_template(),
            # What an operator fills in on the host:
            "DATABASE_URL": pg_url(portal_db),
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "DJANGO_SECRET_KEY_FILE": str(tmp_path / "secret_key"),
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DRPORTAL_HOME": str(home),
            "STATIC_ROOT": str(home / "static"),
            "ALLOWED_HOSTS": "127.0.0.1",
            "CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{web_port}",
            "PORTAL_URL": f"http://127.0.0.1:{web_port}",
            "BIND": f"127.0.0.1:{web_port}",
            "WEB_CONCURRENCY": "2",
            "BACKUP_AGE_RECIPIENTS": age_key.recipient,
            "BACKUP_AGE_IDENTITY_FILE": str(age_key.identity_file),
            "BACKUP_SPOOL_DIR": str(home / "spool"),
            # No TLS proxy here: plain HTTP to gunicorn, so no secure cookies or HTTPS redirect.
            "HTTPS": "false",
        }
        for unset in ("EMAIL_HOST", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD_FILE", "ALERT_EMAIL_TO"):
            env.pop(unset)
        plan = tmp_path / "plan.toml"
        plan.write_text(
            f"""
[locations.local]
url = "file://{tmp_path / "backups"}"

[targets.central]
engine = "sqlite"
source = "sqlite:///{tmp_path / "central.sqlite3"}"
locations = ["local"]

[targets.orders]
engine = "postgresql"
source = "env:ORDERS_DATABASE_URL"
locations = ["local"]
queue = "dbhost"
"""
        )
        import sqlite3

        with sqlite3.connect(tmp_path / "central.sqlite3") as db:
            db.execute("CREATE TABLE t (x)")
            db.execute("INSERT INTO t VALUES (1)")

        def manage(*args: str, **extra: str) -> None:
            subprocess.run(
                [str(ROOT / ".venv/bin/python"), "manage.py", *args],
                cwd=ROOT,
                env={**env, **extra},
                check=True,
                capture_output=True,
                timeout=120,
            )

        # README "Deploying": migrate, collectstatic, an administrator, the plan.
        manage("migrate", "--noinput")
        manage("collectstatic", "--noinput")
        password = secrets.token_urlsafe(12)
        manage("createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.com",
               DJANGO_SUPERUSER_PASSWORD=password)  # fmt: skip
        manage("applyplan", str(plan))

        def start(name: str, argv: list[str], **extra: str) -> None:
            processes[name] = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**env, **extra},
                stdout=open(tmp_path / f"{name}.log", "wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        start("web", unit_command("drportal-web.service"))
        start("worker-celery", unit_command("drportal-worker@.service", "celery"))
        # /etc/drportal/worker-dbhost.env on the database host: the source only this worker can read.
        start("worker-dbhost", unit_command("drportal-worker@.service", "dbhost"), ORDERS_DATABASE_URL=source_url)
        start("beat", unit_command("drportal-beat.service"))

        base = f"http://127.0.0.1:{web_port}"
        wait_for_http(base + "/admin/login/", timeout=60)
        portal = psycopg.connect(pg_url(portal_db), autocommit=True)

        def live_queues() -> set[str]:
            rows = portal.execute("SELECT queues FROM drportal_heartbeat WHERE kind = 'worker'").fetchall()
            return {q for (queues,) in rows for q in queues}

        wait_for(lambda: live_queues() >= {"celery", "dbhost"}, timeout=60, message="both workers' heartbeats")

        browser = Browser(base)
        status, page = browser.post_form("/admin/login/?next=/admin/", {"username": "admin", "password": password})
        assert status == 200 and "Log out" in page, page[:500]
        assert browser.get("/static/admin/css/base.css")[0] == 200  # collected static files are served
        targets = dict(portal.execute("SELECT name, id FROM backups_target").fetchall())
        status, page = browser.post_form(
            "/admin/backups/target/",
            [("action", "back_up_now"), *[("_selected_action", targets[name]) for name in ("central", "orders")]],
        )
        assert status == 200 and "queued as" in page

        def finished() -> list[tuple]:
            rows = portal.execute(
                "SELECT t.name, r.status, r.queue, r.worker, r.error FROM backups_backuprun r "
                "JOIN backups_target t ON t.id = r.target_id WHERE r.status IN ('succeeded', 'failed') ORDER BY t.name"
            ).fetchall()
            return rows if len(rows) == 2 else []

        rows = wait_for(finished, timeout=60, message="both backups to finish")
        assert [(name, status, queue) for name, status, queue, _, _ in rows] == [
            ("central", "succeeded", "celery"),
            ("orders", "succeeded", "dbhost"),
        ], rows
        assert rows[0][3].startswith("celery@") and rows[1][3].startswith("dbhost@")

        wait_for(lambda: browser.get("/health")[0] == 200, timeout=30, message="/health 200")
        assert browser.get("/health/live")[0] == 200  # the load balancers' liveness probe
    finally:
        stop_all(processes.values(), grace=30)
        redis.terminate()
        redis.wait(10)
        time.sleep(0.2)
        with pg_admin() as conn:
            for name in (portal_db, source_db):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for name in processes:
            log = tmp_path / f"{name}.log"
            if log.exists():
                print(f"--- {name} ---\n{Path(log).read_text()[-2000:]}")
