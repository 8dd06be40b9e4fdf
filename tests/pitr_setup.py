"""A module's restore-to-a-moment setup: one throwaway cluster, a worker of its target's queue, a target per test.

One cluster for the module (they are slow to make): each test gives it a new target (always named
maindb: the cluster's archive_command names that stanza) with a repository of its own, on the queue
``db-host``, and a fresh messages table of 1000 rows. A Celery worker of that queue only runs the
restores, as the cluster's OS user would on the database host; it has its own settings (its own
process), so a test may change the web side's (PGBACKREST_BIN) without touching the worker's.

Import the fixtures into a test module:
`from tests.pitr_setup import cluster, conf_dir, db_host_worker, target  # noqa: F401`.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse

from backups.engines import pgbackrest as pgbr
from backups.models import Restore, Target
from tests.conftest import start_worker, stop_worker, wait_for
from tests.pg_cluster import destroy, make_cluster, make_pgbr_target, posix_location

QUEUE = "db-host"


@pytest.fixture(scope="module")
def conf_dir():
    folder = Path(tempfile.mkdtemp(prefix="drp-pitr-conf-"))
    folder.chmod(0o755)
    with override_settings(PGBACKREST_CONFIG_DIR=folder):
        yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(conf_dir):
    made = make_cluster(pgbr.archive_command("maindb"))
    yield made
    destroy(made)


@pytest.fixture(scope="module")
def db_host_worker(django_db_setup, django_db_blocker, age_key, conf_dir, tmp_path_factory):
    """A worker of the target's queue only, reading the same generated configuration folder."""
    with django_db_blocker.unblock():
        worker = start_worker(
            tmp_path_factory.mktemp("db-host-worker") / "worker.log",
            extra_env={"PGBACKREST_CONFIG_DIR": str(conf_dir)},
            queues=[QUEUE],
            name="db-host",
        )
    yield worker
    stop_worker(worker)


def ensure_roles() -> None:
    """A transactional test's flush empties the role groups the migration made; make them again."""
    from django.contrib.auth.models import Group

    from drportal import roles

    for name in roles.ROLES:
        Group.objects.get_or_create(name=name)
    roles.sync_role_permissions()


@pytest.fixture
def target(cluster, request) -> Target:
    return new_target(cluster, request.node.name)


def new_target(cluster, test_name: str) -> Target:
    """A new target maindb on the module's cluster, with a repository of its own and a fresh 1000-row messages."""
    ensure_roles()
    repo = f"repo-{test_name[:40]}"
    made = make_pgbr_target(cluster, [posix_location(cluster, repo)])
    Target.objects.filter(pk=made.pk).update(queue=QUEUE)
    made.refresh_from_db()
    cluster.sql("DROP TABLE IF EXISTS messages")
    cluster.sql("CREATE TABLE messages (id bigserial PRIMARY KEY, body text NOT NULL)")
    cluster.sql("INSERT INTO messages (body) SELECT 'message ' || g FROM generate_series(1, 1000) g")
    return made


def write_then_make_the_mistake(cluster) -> tuple[list, list, object]:
    """Rows after the backup, the moment T (to the second, as people type it), then most rows deleted."""
    cluster.sql("SELECT pg_sleep(1.1)", dbname="postgres")  # pgBackRest keeps whole seconds: T after the backup
    cluster.sql("INSERT INTO messages (body) SELECT 'after the backup ' || g FROM generate_series(1, 500) g")
    at_t = cluster.sql("SELECT id, body FROM messages ORDER BY id")
    cluster.sql("SELECT pg_sleep(1.1)", dbname="postgres")
    moment = cluster.sql("SELECT date_trunc('second', now())")[0][0].astimezone(UTC)
    cluster.sql("SELECT pg_sleep(1.1)", dbname="postgres")
    cluster.sql("DELETE FROM messages WHERE id > 100")  # the mistake
    after = cluster.sql("SELECT id, body FROM messages ORDER BY id")
    assert len(at_t) == 1500 and len(after) == 100
    return at_t, after, moment


def finished(record: Restore) -> Restore:
    wait_for(
        lambda: Restore.objects.get(pk=record.pk).status in ("succeeded", "failed"),
        timeout=300,
        interval=0.5,
        message=f"the db-host worker to finish restore #{record.pk}",
    )
    return Restore.objects.get(pk=record.pk)


def moment_url(target: Target, query: str = "") -> str:
    return reverse("admin:backups_target_restore_moment", args=[target.pk]) + query


def post(client, url: str, data: dict):
    return client.post(url, {**data, "csrfmiddlewaretoken": client.token})
