"""Shared fixtures: real PostgreSQL, Redis, a Celery worker process, moto's S3 server, age keys.

Nothing here mocks a part a user would have: databases are created on the local
PostgreSQL, S3 is moto's HTTP server on loopback, the worker is `celery worker`.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from devtools.processes import stop

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# --- age keys -------------------------------------------------------------------------


@dataclass(frozen=True)
class AgeKey:
    identity_file: Path
    recipient: str


@pytest.fixture(scope="session")
def age_key(tmp_path_factory) -> AgeKey:
    from backups.keys import generate_identity_file

    path = tmp_path_factory.mktemp("keys") / "identity.txt"
    recipient = generate_identity_file(path)
    # Workers started by the tests inherit these.
    os.environ["BACKUP_AGE_RECIPIENTS"] = recipient
    os.environ["BACKUP_AGE_IDENTITY_FILE"] = str(path)
    return AgeKey(path, recipient)


@pytest.fixture(scope="session", autouse=True)
def _age_settings(age_key):
    """Every test encrypts to the session key; a test may override with the `settings` fixture."""
    from django.conf import settings

    settings.BACKUP_AGE_RECIPIENTS = [age_key.recipient]
    settings.BACKUP_AGE_IDENTITY_FILE = str(age_key.identity_file)


# --- a loopback HTTP server -------------------------------------------------------------


@pytest.fixture
def http_stub():
    """A started `tests.http_stub.HttpStub`: answers 200 "ok" until scripted otherwise; stopped after the test."""
    from tests.http_stub import HttpStub

    with HttpStub() as stub:
        yield stub


# A Slack-style incoming-webhook path: the token is in the URL, so the URL is a secret.
WEBHOOK_PATH = "/services/T000/B000/secret-token"


@pytest.fixture
def webhook(http_stub):
    """An incoming webhook on loopback (the shared stub): ``webhook.url(WEBHOOK_PATH)`` is its URL,
    ``webhook.default = 500`` makes it fail, ``posted(webhook)`` is what it was sent."""
    return http_stub


def posted(stub) -> list:
    """The JSON bodies a stub was sent, in order."""
    return [request.json() for request in stub.requests]


# --- the shipped plan and admin forms ----------------------------------------------------

PLAN = ROOT / "plans" / "botflow.toml"


@pytest.fixture
def plan_applied(db, monkeypatch, tmp_path) -> Path:
    """The shipped BotFlow plan (plans/botflow.toml), applied; returns its "local" location's folder.

    The plan's local location reads BACKUP_LOCAL_DIR; it is pointed under the test's tmp_path.
    Under `transactional_db` or `live_server` (browser tests) the rows are committed, as pytest-django
    makes `db` transactional there.
    """
    from drportal.plan import apply_plan

    local = tmp_path / "plan-backups"
    monkeypatch.setenv("BACKUP_LOCAL_DIR", str(local))
    apply_plan(PLAN)
    return local


def target_form(*locations, **fields) -> dict:
    """POST data for the admin's target form: a postgresql target on ``locations``; ``fields`` override or add.

    It includes the management form of the pgBackRest settings inline, empty ("0" forms), which the
    admin needs whenever it shows that inline; a pgbackrest target passes its own `pgbackrest-*` keys.
    """
    return {
        "name": "db",
        "engine": "postgresql",
        "source": "env:BOTFLOW_DATABASE_URL",
        "locations": [location.pk for location in locations],
        "enabled": "on",
        "timezone": "UTC",
        "compression": "zstd",
        "pgbackrest-TOTAL_FORMS": "0",
        "pgbackrest-INITIAL_FORMS": "0",
        **fields,
    }


# --- PostgreSQL -----------------------------------------------------------------------


def pg_admin() -> psycopg.Connection:
    return psycopg.connect(PG_ADMIN_URL, autocommit=True)


def pg_url(dbname: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{dbname}"


def drop_database(name: str) -> None:
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def table_rows(url: str) -> dict[str, list[tuple]]:
    """Every row of every BotFlow table, ordered, for exact comparisons."""
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in ("organizations", "conversations", "messages")
        }


BOTFLOW_SCHEMA = """
CREATE TABLE organizations (
    id bigserial PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE conversations (
    id bigserial PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations(id),
    channel text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE messages (
    id bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations(id),
    direction text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation ON messages (conversation_id);
"""

# Values that break naive dump parsers: embedded newlines, tabs, backslashes, a line
# that is exactly the COPY terminator, a fake COPY header, and non-ASCII text.
TRICKY_BODIES = [
    "hello\nworld",
    "tab\there",
    "back\\slash",
    "\\.",
    "\n\\.\n",
    "COPY public.messages (id) FROM stdin;",
    "Sawubona, ngiyabonga 🙏 — ñandú",
    "",
]


def create_botflow_db(name: str, organizations: int = 3, conversations: int = 20, messages: int = 500) -> str:
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_url(name)
    with psycopg.connect(url) as conn:
        conn.execute(BOTFLOW_SCHEMA)
        conn.execute(
            "INSERT INTO organizations (name) SELECT 'org ' || g FROM generate_series(1, %s) g", (organizations,)
        )
        conn.execute(
            "INSERT INTO conversations (organization_id, channel) "
            "SELECT 1 + g %% %s, 'whatsapp' FROM generate_series(1, %s) g",
            (organizations, conversations),
        )
        conn.execute(
            "INSERT INTO messages (conversation_id, direction, body) "
            "SELECT 1 + g %% %s, CASE WHEN g %% 2 = 0 THEN 'in' ELSE 'out' END, 'message ' || g "
            "FROM generate_series(1, %s) g",
            (conversations, messages),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO messages (conversation_id, direction, body) VALUES (1, 'in', %s)",
                [(body,) for body in TRICKY_BODIES],
            )
    return url


@pytest.fixture
def source_db():
    """A BotFlow-shaped database on the real PostgreSQL; yields its URL."""
    name = f"drp_src_{secrets.token_hex(4)}"
    url = create_botflow_db(name)
    yield url
    # Also any rollback copy (<name>_pre_restore_...) a restore test left behind.
    with pg_admin() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (name + "%",)).fetchall()
        for (db,) in rows:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@pytest.fixture
def scratch_db_name():
    """A database name that is dropped after the test, whatever it created."""
    names = []

    def make(prefix: str = "drp_dst") -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        names.append(name)
        return name

    yield make
    with pg_admin() as conn:
        for name in names:
            rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (name + "%",)).fetchall()
            for (db,) in rows:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


# --- S3 (moto's server on loopback) --------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(endpoint + "/moto-api/")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_endpoint) -> str:
    name = f"drp-{secrets.token_hex(4)}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


# --- catalogue rows --------------------------------------------------------------------


@pytest.fixture
def local_location(db, tmp_path):
    from backups.models import Location

    return Location.objects.create(name="local", url=f"file://{tmp_path / 'local-backups'}")


@pytest.fixture
def s3_location(db, s3_endpoint, s3_bucket):
    from backups.models import Location

    return Location.objects.create(
        name="s3", url=f"s3://{s3_bucket}/daily", endpoint_url=s3_endpoint, storage_class="STANDARD_IA"
    )


@pytest.fixture
def make_target(db):
    from backups.models import Target

    def make(name: str, source: str, locations, engine: str = "postgresql", **fields) -> Target:
        target = Target.objects.create(name=name, engine=engine, source=source, **fields)
        target.locations.set(locations)
        return target

    return make


# --- role users (not superusers), as people sign in ------------------------------------


def role_user(role: str):
    """A user holding one of the portal's roles (drportal.roles), and nothing more."""
    from django.contrib.auth.models import User

    from drportal import roles

    user = User.objects.create_user(role.lower().replace(" ", "-"), password="pw")
    roles.assign(user, role)
    return user


def role_client(role: str):
    """A role user's logged-in client that checks CSRF as a browser does; ``client.token`` is a real token."""
    from django.test import Client
    from django.urls import reverse

    client = Client(enforce_csrf_checks=True)
    client.force_login(role_user(role))
    client.get(reverse("admin:index"))
    client.token = client.cookies["csrftoken"].value
    return client


@pytest.fixture
def people(db) -> dict:
    """One user per role, by role name."""
    from drportal import roles

    return {role: role_user(role) for role in roles.ROLES}


# --- a real Celery worker process ----------------------------------------------------


@dataclass
class Worker:
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_worker(
    log_path: Path,
    extra_env: dict | None = None,
    concurrency: int = 2,
    queues: list[str] | None = None,
    name: str | None = None,
    launcher: tuple[str, ...] = ("-m", "celery"),
) -> Worker:
    """A real `celery worker`; ``queues`` become its ``-Q`` (default: the shared queue only).

    ``launcher``: what Python runs instead of ``-m celery`` (tests/killpoints.py: a worker that kills itself).
    """
    from django.db import connection

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": pg_url(connection.settings_dict["NAME"]),
        **(extra_env or {}),
    }
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            *launcher,
            "-A",
            "drportal",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"{name or 'test-' + secrets.token_hex(3)}@%h",
            *(["-Q", ",".join(queues)] if queues else []),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = Worker(proc, log_path)
    deadline = time.monotonic() + 60
    while "ready." not in worker.log():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("celery worker did not start:\n" + worker.log()[-3000:])
        time.sleep(0.2)
    return worker


def stop_worker(worker: Worker, sig=signal.SIGTERM) -> None:
    stop(worker.proc, grace=20, sig=sig)


@pytest.fixture(scope="session")
def _flush_test_broker():
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


# The session's shared worker, once started: a test that needs to be alone with its own worker pauses it.
SESSION_WORKERS: list[Worker] = []


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, age_key, s3_endpoint, _flush_test_broker, tmp_path_factory):
    with django_db_blocker.unblock():
        worker = start_worker(tmp_path_factory.mktemp("worker") / "worker.log")
    SESSION_WORKERS.append(worker)
    yield worker
    SESSION_WORKERS.remove(worker)
    stop_worker(worker)


@pytest.fixture
def no_other_workers():
    """Pause (SIGSTOP) the session's shared worker for one test, then let it go on (SIGCONT)."""
    paused = [w for w in SESSION_WORKERS if w.proc.poll() is None]
    for worker in paused:
        os.killpg(worker.proc.pid, signal.SIGSTOP)
    yield
    for worker in paused:
        os.killpg(worker.proc.pid, signal.SIGCONT)


def wait_for(predicate, timeout: float = 60, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


# --- running the commands the way a person does -------------------------------------------


def manage_env(**overrides: str | None) -> dict[str, str]:
    """The environment of a `manage.py` subprocess that works on this test's database.

    This process's environment with the test settings and the test database (the one pytest-django
    made, so the subprocess sees the test's committed rows); ``overrides`` add or replace variables,
    and an override of None removes one.
    """
    from django.db import connection

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": pg_url(connection.settings_dict["NAME"]),
    }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage_py(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, **run: object
) -> subprocess.CompletedProcess:
    """`manage.py ARGS` as its own process, from the repository root, output captured as text.

    ``env`` defaults to `manage_env()` (this test's database); other keyword arguments go to
    `subprocess.run` (``input=`` for a prompt, for example).
    """
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=manage_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **run,
    )


def run_backup(target):
    """Back up a target in this process (as `manage.py backup` does); returns the finished run."""
    from backups.services import backup

    return backup.execute(backup.start_backup(target, trigger="command"))


def run_restore(source: str, *args: str) -> tuple[int, dict]:
    """`manage.py restore ... --yes --json` in this process; returns (exit code, JSON)."""
    import json
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    try:
        call_command("restore", source, *args, "--yes", "--json", stdout=out, stderr=StringIO())
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def kill_restore_midway(args: list[str], *, until, message: str, too_fast: str) -> None:
    """Start `manage.py restore ARGS --yes` as its own process group and SIGKILL it once ``until()`` is true.

    As an operator's Ctrl-\\ or the OOM killer would: no cleanup code in the restore runs.
    """
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "restore", *args, "--yes"],
        cwd=ROOT,
        env=manage_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: until() or proc.poll() is not None, timeout=60, interval=0.02, message=message)
        assert proc.poll() is None, f"the restore finished before it could be killed; {too_fast}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


# --- alerts: the outbox delivered by the test ------------------------------------------


@pytest.fixture
def deliver_alerts(monkeypatch):
    """Alerts stay in the outbox (no worker is asked to send them) until the test calls the returned
    function, which makes every due delivery here and now, as a worker would (tests/alerts covers the
    worker, retries and the sweep); mail then lands in ``mail.outbox`` of the test's process."""
    from alerts import delivery, outbox

    monkeypatch.setattr(outbox, "_enqueue", lambda ids: None)
    return delivery.deliver_due
