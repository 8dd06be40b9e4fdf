"""pgBackRest targets' stanza settings and the backups pgBackRest made."""

from __future__ import annotations

from django.db import models

from drportal.cron import validate_cron
from drportal.fields import EncryptedTextField

from .runs import BackupRun
from .targets import Target


def new_cipher_passphrase() -> str:
    import secrets

    return secrets.token_urlsafe(48)


BACKUP_TYPES = [("full", "full"), ("diff", "differential"), ("incr", "incremental")]


class PgBackRestStanza(models.Model):
    """How the portal drives pgBackRest for one `pgbackrest` target: the cluster and its schedules.

    The target's own ``schedule`` is the full backups'; its locations become the stanza's
    repositories, in name order (repo1, repo2...).
    """

    # What a person sets (plan keys and admin fields); the passphrase is generated, escrowed, never typed.
    SETTINGS = ("pg_path", "pg_port", "pg_socket", "pg_host", "os_user", "schedule_diff", "schedule_incr", "verify_tls")

    target = models.OneToOneField(Target, on_delete=models.CASCADE, related_name="pgbackrest")
    pg_path = models.CharField(
        "data directory", max_length=500, help_text="The cluster's data directory, e.g. /var/lib/postgresql/15/main."
    )
    pg_port = models.PositiveIntegerField("port", default=5432)
    pg_socket = models.CharField(
        "socket folder", max_length=500, blank=True, help_text="Unix socket folder, e.g. /var/run/postgresql."
    )
    pg_host = models.CharField(
        "host", max_length=255, blank=True, help_text="TCP host instead of the socket folder (empty: the socket)."
    )
    os_user = models.CharField(
        "OS user",
        max_length=63,
        default="postgres",
        help_text="The operating-system user that owns the cluster; pgBackRest runs as this user.",
    )
    schedule_diff = models.CharField(
        "differential schedule", max_length=100, blank=True, validators=[validate_cron], help_text="Cron expression."
    )
    schedule_incr = models.CharField(
        "incremental schedule", max_length=100, blank=True, validators=[validate_cron], help_text="Cron expression."
    )
    verify_tls = models.BooleanField(
        "verify S3 certificates",
        default=True,
        help_text="Turn off only for a test S3 server with a self-signed certificate.",
    )
    cipher_pass = EncryptedTextField(
        default=new_cipher_passphrase,
        help_text="The repositories' aes-256-cbc passphrase. Encrypted at rest; escrowed with age beside "
        "each repository; never shown back.",
    )
    wal_points = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per location: the newest WAL segment seen archived there and when it landed.",
    )
    checked_at = models.DateTimeField(null=True, blank=True, help_text="When stanza-create and check last passed.")
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name = "pgBackRest stanza"

    def __str__(self) -> str:
        return f"pgBackRest stanza {self.target.name}"


class PgBackRestBackup(models.Model):
    """What pgBackRest says about the backup a run made (from `pgbackrest info --output=json`)."""

    run = models.OneToOneField(BackupRun, on_delete=models.CASCADE, related_name="pgbackrest")
    requested_type = models.CharField(max_length=4, choices=BACKUP_TYPES, blank=True)
    type = models.CharField(max_length=4, choices=BACKUP_TYPES, blank=True, help_text="What pgBackRest made.")
    label = models.CharField(max_length=60, blank=True, db_index=True)
    prior = models.CharField(max_length=60, blank=True, help_text="The backup a diff/incr depends on.")
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    lsn_start = models.CharField(max_length=20, blank=True)
    lsn_stop = models.CharField(max_length=20, blank=True)
    wal_start = models.CharField(max_length=24, blank=True)
    wal_stop = models.CharField(max_length=24, blank=True)
    database_size = models.BigIntegerField(null=True, blank=True)
    repository_size = models.BigIntegerField(null=True, blank=True, help_text="In the first repository.")

    class Meta:
        verbose_name = "pgBackRest backup"

    def __str__(self) -> str:
        return f"{self.type or self.requested_type} {self.label}"
