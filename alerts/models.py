"""Channels (where alerts go) and Notifications (the outbox: one row per alert per channel).

The two tables were created by the incidents app (migration incidents 0001) and moved here with
``SeparateDatabaseAndState``. They keep their old names (``db_table``): renaming a table on a live
install takes an exclusive lock and would leave its sequence and indexes under the old names anyway,
while keeping the names makes the move a change of Django's state only, with nothing to do (and
nothing to lose) on existing installations.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from drportal.fields import EncryptedTextField
from drportal.validators import validate_name

from . import events


class Channel(models.Model):
    """Where alerts go: an email list or a Slack-compatible incoming webhook."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook", "webhook (Slack-compatible)"

    name = models.CharField(max_length=63, unique=True, validators=[validate_name])
    kind = models.CharField(max_length=10, choices=Kind.choices)
    email_to = models.TextField(blank=True, help_text="Comma-separated addresses (email channels).")
    webhook_url = EncryptedTextField(
        blank=True, help_text="Incoming-webhook URL (webhook channels). It is a secret: encrypted, never shown."
    )
    events = models.JSONField(default=list, blank=True, help_text="Events to send; empty: all of them.")
    enabled = models.BooleanField(default=True)

    class Meta:
        db_table = "incidents_notificationchannel"  # created by incidents 0001; see the module docstring
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == self.Kind.EMAIL and not self.recipients:
            raise ValidationError({"email_to": "An email channel needs at least one address."})
        # A disabled webhook channel may wait for its URL (the plan's ${SLACK_WEBHOOK_URL:-} left unset).
        needs_url = self.enabled or self.webhook_url
        if self.kind == self.Kind.WEBHOOK and needs_url and not self.webhook_url.startswith(("https://", "http://")):
            raise ValidationError({"webhook_url": "A webhook channel needs an http(s) URL."})
        unknown = events.unknown(self.events)
        if unknown:
            raise ValidationError({"events": f"Unknown event(s): {', '.join(unknown)}"})

    @property
    def recipients(self) -> list[str]:
        return [a.strip() for a in self.email_to.split(",") if a.strip()]

    def wants(self, event: str) -> bool:
        return self.enabled and (not self.events or event in self.events)


class NotificationQuerySet(models.QuerySet):
    def due(self, now: datetime):
        """Waiting to be (re)sent and due: the sweep's work, and what a delivery may claim."""
        return self.filter(status__in=Notification.WAITING, next_attempt_at__lte=now)


class Notification(models.Model):
    """One alert on one channel, written by the emitter and delivered by a task: the outbox row.

    Pending until its first attempt, retrying (with ``last_error`` and ``next_attempt_at``) while
    attempts fail, delivered, or failed once it gave up after ALERT_DELIVERY_ATTEMPTS.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RETRYING = "retrying"
        DELIVERED = "delivered"
        FAILED = "failed", "failed (gave up)"

    WAITING = (Status.PENDING, Status.RETRYING)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    event = models.CharField(max_length=40, db_index=True)
    channel = models.CharField(
        max_length=80, help_text="Channel name, settings:email / settings:webhook, or stakeholder:/commander:<address>."
    )
    via = models.ForeignKey(
        Channel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
        help_text="The channel it is sent through (empty for settings channels and one-person emails).",
    )
    recipient = models.EmailField(blank=True, help_text="The one address of a one-person email.")
    kind = models.CharField(max_length=10)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Delivery attempts made so far.")
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="When the next attempt is due (while pending or retrying)."
    )
    last_error = models.TextField(blank=True, help_text="Why the last attempt (or the enqueue) failed.")
    delivered_at = models.DateTimeField(null=True, blank=True)
    object_ref = models.CharField(max_length=100, blank=True, help_text="What it is about, e.g. backuprun:42.")

    objects = NotificationQuerySet.as_manager()

    class Meta:
        db_table = "incidents_notification"  # created by incidents 0001; see the module docstring
        ordering = ["-created_at", "-id"]
        permissions = [("retry_notification", "Can retry a failed notification now")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="delivered") | Q(delivered_at__isnull=False),
                name="alerts_notification_delivered_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["pending", "retrying"]) | Q(next_attempt_at__isnull=False),
                name="alerts_notification_waiting_has_next_try",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} via {self.channel}: {self.status}"

    # --- state changes (the delivery service calls these) ------------------------------------

    def claim(self, now: datetime) -> bool:
        """Take the next attempt: one conditional UPDATE, so two workers never both send it.

        The attempt's lease pushes ``next_attempt_at`` past the send's own timeout; a worker that
        dies mid-send leaves the row due again once the lease is over, for the sweep to retry.
        """
        lease = now + timedelta(seconds=settings.ALERT_WEBHOOK_TIMEOUT + 60)
        won = (
            Notification.objects.due(now)
            .filter(pk=self.pk, attempts=self.attempts)
            .update(attempts=models.F("attempts") + 1, next_attempt_at=lease)
        )
        if won:
            self.attempts += 1
            self.next_attempt_at = lease
        return bool(won)

    def succeeded(self, now: datetime) -> None:
        self.status, self.delivered_at, self.next_attempt_at, self.last_error = self.Status.DELIVERED, now, None, ""
        self._save_outcome()

    def attempt_failed(self, error: str, now: datetime) -> None:
        """Record a failed attempt: retry after a backoff, or give up after the last allowed attempt."""
        self.last_error = error
        if self.attempts >= settings.ALERT_DELIVERY_ATTEMPTS:
            self.status, self.next_attempt_at = self.Status.FAILED, None
        else:
            self.status, self.next_attempt_at = self.Status.RETRYING, now + backoff(self.attempts)
        self._save_outcome()

    def _save_outcome(self) -> None:
        # Only the holder of this attempt writes its outcome (attempts is the attempt's number).
        Notification.objects.filter(pk=self.pk, attempts=self.attempts).update(
            status=self.status,
            delivered_at=self.delivered_at,
            next_attempt_at=self.next_attempt_at,
            last_error=self.last_error,
        )

    def retry_now(self, now: datetime | None = None) -> bool:
        """A person's "retry now" on a failed notification: one more attempt, due at once.

        The attempts counter keeps counting (it is the row's history); if this attempt fails too,
        the notification is failed again at once rather than starting a new series of retries.
        """
        now = now or timezone.now()
        return bool(
            Notification.objects.filter(pk=self.pk, status=self.Status.FAILED).update(
                status=self.Status.RETRYING, next_attempt_at=now
            )
        )


def backoff(attempts: int) -> timedelta:
    """Wait before attempt ``attempts + 1``: ALERT_RETRY_SECONDS doubled per attempt, at most an hour."""
    return timedelta(seconds=min(settings.ALERT_RETRY_SECONDS * 2 ** (attempts - 1), 3600))
