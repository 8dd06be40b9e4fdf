"""A target's stanza: its repositories, the escrow of the cipher passphrase, setup, and which backup type is next."""

from __future__ import annotations

import logging
from datetime import datetime

import psycopg
from django.utils import timezone

from ...engines import pgbackrest as pgbr
from ...engines.base import SourceError
from ...keys import KeyProblem, load_recipients
from ...locations import LocationError
from ...models import BackupRun, PgBackRestBackup, PgBackRestStanza, Target

logger = logging.getLogger(__name__)


ESCROW_SUFFIX = ".cipher-pass.age"
TYPE_ORDER = ("full", "diff", "incr")
HEARTBEAT_SECONDS = 10


# --- the stanza -----------------------------------------------------------------------------


def stanza_of(target: Target) -> PgBackRestStanza:
    try:
        return PgBackRestStanza.objects.select_related("target").get(target=target)
    except PgBackRestStanza.DoesNotExist:
        raise SourceError(
            f"target {target.name} has no pgBackRest settings (data directory, port, OS user): add them first"
        ) from None


def repos_of(target: Target) -> list[pgbr.Repo]:
    return pgbr.repos_for(list(target.locations.filter(enabled=True).order_by("name")))


def escrow_key(target_name: str) -> str:
    return f"{pgbr.REPO_FOLDER}/{target_name}{ESCROW_SUFFIX}"


def write_escrow(stanza: PgBackRestStanza, repos: list[pgbr.Repo]) -> list[str]:
    """Beside each repository: the passphrase encrypted with age to BACKUP_AGE_RECIPIENTS.

    Whoever holds the offline escrow key opens the repository with `age -d` and pgbackrest alone.
    """
    import pyrage

    recipients = load_recipients()
    sealed = pyrage.encrypt(stanza.cipher_pass.encode(), list(recipients.keys))
    written = []
    for repo in repos:
        key = escrow_key(stanza.target.name)
        repo.location.backend().put_bytes(key, sealed)
        written.append(f"{repo.location.name}:{key}")
    return written


def setup(target: Target) -> list[str]:
    """Write the configuration, create the stanza, check archiving end to end, escrow the passphrase."""
    stanza = stanza_of(target)
    repos = repos_of(target)
    path = pgbr.write_config(stanza, repos)
    notes = [f"wrote {path}"]
    try:
        pgbr.run(stanza, "stanza-create", timeout=600)
        notes.append("stanza-create: ok")
        notes += [f"passphrase escrowed with age at {where}" for where in write_escrow(stanza, repos)]
        pgbr.run(stanza, "check", timeout=600)
        notes.append("check: ok (a WAL segment was archived to every repository)")
    except (SourceError, LocationError, KeyProblem) as exc:
        PgBackRestStanza.objects.filter(pk=stanza.pk).update(last_error=str(exc)[:10000])
        raise
    PgBackRestStanza.objects.filter(pk=stanza.pk).update(checked_at=timezone.now(), last_error="")
    return notes


def connect(stanza: PgBackRestStanza, dbname: str = "postgres", *, port: int | None = None) -> psycopg.Connection:
    host = stanza.pg_socket or stanza.pg_host or "/var/run/postgresql"
    return psycopg.connect(
        host=host,
        port=port or stanza.pg_port,
        user=stanza.os_user,
        dbname=dbname,
        connect_timeout=10,
        autocommit=True,
        application_name="drportal",
    )


# --- which type the schedule takes next -------------------------------------------------


def next_type(stanza: PgBackRestStanza, now: datetime | None = None) -> str:
    """The type of the soonest scheduled backup (full wins a tie); full when nothing is scheduled."""
    from celery.schedules import crontab

    from drportal.cron import cron_fields

    now = now or timezone.now()
    best = None
    for kind, expression in zip(
        TYPE_ORDER, (stanza.target.schedule, stanza.schedule_diff, stanza.schedule_incr), strict=True
    ):
        if not expression:
            continue
        wait = crontab(**cron_fields(expression)).remaining_estimate(now)
        if best is None or wait < best[0]:
            best = (wait, kind)
    return best[1] if best else "full"


def request_type(run: BackupRun, kind: str) -> None:
    if kind not in TYPE_ORDER:
        raise SourceError(f"backup type must be full, diff or incr, not {kind!r}")
    PgBackRestBackup.objects.update_or_create(run=run, defaults={"requested_type": kind})


# --- backing up -----------------------------------------------------------------------------
