"""The testing schedule, drills with their evidence and findings, plan documents and their reviews."""

from __future__ import annotations

from datetime import UTC, date, datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from drportal.cron import validate_cron
from drportal.validators import validate_name

from .cadence import Cadence, occurrence


class TestActivity(models.Model):
    """One line of the plan's testing schedule: what is tested, how often, and whether the portal does it."""

    __test__ = False  # not a pytest test class, whatever its name

    class Automation(models.TextChoices):
        NONE = "", "performed by people"
        RESTORE_TEST = "restore_test", "restore test (the portal performs it)"

    key = models.CharField(max_length=63, unique=True, validators=[validate_name], help_text="e.g. backup-verification")
    name = models.CharField(max_length=120, help_text="e.g. Backup Verification")
    cadence = models.CharField(max_length=10, choices=Cadence.choices, default=Cadence.MONTHLY)
    cron = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_cron],
        help_text="For a cron cadence: minute hour day month weekday, in UTC (e.g. '0 9 * * 1').",
    )
    starts_at = models.DateTimeField(
        help_text="The first occurrence. Later ones keep its day of month and time "
        "(a 31st falls on the month's last day in shorter months)."
    )
    description = models.TextField(blank=True)
    scenario = models.ForeignKey(
        "incidents.Scenario",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="test_activities",
        help_text="The recovery scenario it rehearses; its RTO and RPO become each drill's targets.",
    )
    automation = models.CharField(max_length=20, choices=Automation.choices, blank=True, default="")
    target = models.ForeignKey(
        "backups.Target",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="For a restore test: the target whose newest backup is restored; empty: every enabled "
        "database target.",
    )
    enabled = models.BooleanField(default=True)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "key"]
        verbose_name = "test activity"
        verbose_name_plural = "test activities"
        constraints = [
            models.CheckConstraint(condition=~Q(cadence="cron") | ~Q(cron=""), name="cron_cadence_has_expression"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def automated(self) -> bool:
        return bool(self.automation)

    @property
    def cadence_display(self) -> str:
        return f"cron {self.cron} UTC" if self.cadence == Cadence.CRON else self.get_cadence_display()

    def clean(self) -> None:
        if self.cadence == Cadence.CRON and not self.cron:
            raise ValidationError({"cron": "A cron cadence needs a cron expression."})

    def occurrence_after(self, moment: datetime) -> datetime:
        """The first due time strictly after ``moment``."""
        return occurrence(self.cadence, self.starts_at, after=moment, cron=self.cron)


class Drill(models.Model):
    """One occurrence of a test activity: when it was due, how it went, what it proved."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        IN_PROGRESS = "in_progress", "in progress"
        DONE = "done"
        SKIPPED = "skipped"

    class Result(models.TextChoices):
        PASS = "pass"
        PARTIAL = "partial"
        FAIL = "fail"

    OPEN_STATUSES = ("scheduled", "in_progress")

    activity = models.ForeignKey(TestActivity, on_delete=models.PROTECT, related_name="drills")
    due_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SCHEDULED, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    performed_at = models.DateTimeField(null=True, blank=True, help_text="When it was carried out.")
    performed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    participants = models.ManyToManyField("incidents.Contact", blank=True, related_name="drills")
    other_participants = models.TextField(blank=True, help_text="Anyone else who took part, one a line.")
    result = models.CharField(max_length=10, choices=Result.choices, blank=True, db_index=True)
    measured_rto = models.DurationField(null=True, blank=True, help_text="How long recovery took in the drill.")
    measured_rpo = models.DurationField(null=True, blank=True, help_text="How much data would have been lost.")
    target_rto = models.DurationField(null=True, blank=True, help_text="From the scenario when the drill was made.")
    target_rpo = models.DurationField(null=True, blank=True)
    went_well = models.TextField(blank=True, help_text="After action: what went well.")
    went_badly = models.TextField(blank=True, help_text="After action: what did not.")
    recommendations = models.TextField(blank=True)
    skipped_reason = models.TextField(blank=True)
    error = models.TextField(blank=True, help_text="Why an automated drill could not run, if it could not.")
    verification = models.ForeignKey(
        "backups.Verification",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="drills",
        help_text="The restore test this drill ran (automated drills).",
    )
    overdue_since = models.DateTimeField(null=True, blank=True, help_text="Set when the drill was found past due.")
    reminded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [models.Index(fields=["status", "due_at"], name="drill_status_due")]
        constraints = [
            models.UniqueConstraint(fields=["activity", "due_at"], name="one_drill_per_activity_and_due_time"),
            models.CheckConstraint(
                condition=~Q(status="done") | (~Q(result="") & Q(performed_at__isnull=False)),
                name="done_drill_has_result",
            ),
            models.CheckConstraint(
                condition=~Q(status="skipped") | ~Q(skipped_reason=""), name="skipped_drill_has_reason"
            ),
        ]
        permissions = [("perform_drill", "Can record drill results and run automated drills")]

    def __str__(self) -> str:
        return f"{self.activity} due {self.due_at:%Y-%m-%d}"

    def clean(self) -> None:
        # In words, on the fields: otherwise the form shows the database constraints' names.
        errors = {}
        if self.status == self.Status.DONE:
            if not self.result:
                errors["result"] = "A done drill needs its result."
            if self.performed_at is None:
                errors["performed_at"] = "A done drill needs the time it was performed."
        if self.status == self.Status.SKIPPED and not self.skipped_reason.strip():
            errors["skipped_reason"] = "Say why the drill was skipped."
        if errors:
            raise ValidationError(errors)

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    def is_overdue(self, now: datetime | None = None) -> bool:
        return self.is_open and self.due_at < (now or timezone.now())

    @property
    def rto_met(self) -> bool | None:
        if self.measured_rto is None or self.target_rto is None:
            return None
        return self.measured_rto <= self.target_rto

    @property
    def rpo_met(self) -> bool | None:
        if self.measured_rpo is None or self.target_rpo is None:
            return None
        return self.measured_rpo <= self.target_rpo

    # --- state changes ---------------------------------------------------------------
    def start(self, user=None) -> bool:
        """scheduled → in progress, atomically (so two workers never run one automated drill)."""
        now = timezone.now()
        started = Drill.objects.filter(pk=self.pk, status=self.Status.SCHEDULED).update(
            status=self.Status.IN_PROGRESS, started_at=now, performed_by=user
        )
        if started:
            self.status, self.started_at, self.performed_by = self.Status.IN_PROGRESS, now, user
        return bool(started)

    def complete(self, result: str, *, user=None, performed_at: datetime | None = None, **fields) -> None:
        """Record the outcome; the drill is done (whatever the result: a failed drill is still done)."""
        if result not in self.Result.values:
            raise ValidationError(f"result must be one of {', '.join(self.Result.values)}")
        if self.status in (self.Status.DONE, self.Status.SKIPPED):
            raise ValidationError(f"{self} is already {self.get_status_display()}")
        self.result = result
        self.status = self.Status.DONE
        self.performed_at = performed_at or timezone.now()
        if user is not None:
            self.performed_by = user
        for name, value in fields.items():
            setattr(self, name, value)
        self.overdue_since = None
        self.save()

    def skip(self, reason: str, *, user=None) -> None:
        if not reason.strip():
            raise ValidationError("Say why the drill is skipped.")
        if not self.is_open:
            raise ValidationError(f"{self} is already {self.get_status_display()}")
        self.status, self.skipped_reason, self.overdue_since = self.Status.SKIPPED, reason.strip(), None
        if user is not None:
            self.performed_by = user
        self.save()


def evidence_path(instance: DrillEvidence, filename: str) -> str:
    return f"drills/{instance.drill_id}/{filename}"


class DrillEvidence(models.Model):
    """A file that proves what happened in a drill, kept in the default storage (S3 in production)."""

    drill = models.ForeignKey(Drill, on_delete=models.CASCADE, related_name="evidence")
    file = models.FileField(upload_to=evidence_path, max_length=500)
    description = models.CharField(max_length=200, blank=True)
    uploaded_at = models.DateTimeField(default=timezone.now)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["drill", "uploaded_at", "id"]
        verbose_name_plural = "drill evidence"

    def __str__(self) -> str:
        return self.description or self.file.name.rsplit("/", 1)[-1]


class Finding(models.Model):
    """Something a drill showed needs fixing, with an owner and a due date."""

    class Status(models.TextChoices):
        OPEN = "open"
        IN_PROGRESS = "in_progress", "in progress"
        DONE = "done"
        WONT_FIX = "wont_fix", "won't fix"

    OPEN_STATUSES = ("open", "in_progress")

    drill = models.ForeignKey(Drill, on_delete=models.CASCADE, related_name="findings")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    owner_contact = models.ForeignKey(
        "incidents.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="findings"
    )
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN, db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    overdue_since = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["status", "due_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(status__in=["open", "in_progress"]) & Q(closed_at__isnull=True))
                | (Q(status__in=["done", "wont_fix"]) & Q(closed_at__isnull=False)),
                name="finding_closed_at_matches_status",
            )
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs):
        # closed_at follows the status, so the admin's status select is enough to close a finding.
        if self.status in self.OPEN_STATUSES:
            self.closed_at = None
        elif self.closed_at is None:
            self.closed_at = timezone.now()
            self.overdue_since = None
        super().save(*args, **kwargs)

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    def is_overdue(self, now: datetime | None = None) -> bool:
        return self.is_open and self.due_at is not None and self.due_at < (now or timezone.now())

    @property
    def owner_display(self) -> str:
        if self.owner_id:
            return self.owner.get_full_name() or self.owner.get_username()
        return str(self.owner_contact) if self.owner_contact_id else "-"


# --- Plan documents and reviews ---------------------------------------------------------------


def bump_version(version: str, *, major: bool = False) -> str:
    """'1.0' → '1.1'; major: '1.4' → '2.0'. Anything unparsable becomes '<version>.1'."""
    parts = version.strip().split(".")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        return f"{version}.1"
    if len(numbers) == 1:
        numbers.append(0)
    if major:
        return f"{numbers[0] + 1}.0"
    return f"{numbers[0]}.{numbers[1] + 1}"


def version_key(version: str) -> tuple:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return ()


class PlanDocument(models.Model):
    """The DR plan as a living document: its version, owner and review cycle."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        UNDER_REVIEW = "under_review", "changes requested"
        RETIRED = "retired"

    key = models.CharField(max_length=63, unique=True, validators=[validate_name])
    title = models.CharField(max_length=200)
    version = models.CharField(max_length=20, default="1.0")
    owner = models.CharField(max_length=120, help_text="Who keeps it up to date, e.g. DevOps Team.")
    overview = models.TextField(blank=True, help_text="Markdown: purpose, scope and assumptions.")
    review_cadence = models.CharField(
        max_length=10,
        choices=[c for c in Cadence.choices if c[0] != Cadence.CRON],
        default=Cadence.QUARTERLY,
    )
    last_reviewed_at = models.DateField(null=True, blank=True, help_text="Last updated / reviewed.")
    next_review_at = models.DateField(
        null=True, blank=True, help_text="Computed from the last review and the cadence when a review is signed off."
    )
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.ACTIVE)
    overdue_since = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(
        default=timezone.now,
        editable=False,
        help_text="No overdue-review alert until FIRST_ALERT_GRACE_SECONDS after this (a fresh install is calm).",
    )

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.title} v{self.version}"

    def next_review_after(self, reviewed: date) -> date:
        start = datetime(reviewed.year, reviewed.month, reviewed.day, tzinfo=UTC)
        return occurrence(self.review_cadence, start, after=start).date()

    def is_review_overdue(self, today: date | None = None) -> bool:
        today = today or timezone.now().date()
        return self.status != self.Status.RETIRED and self.next_review_at is not None and self.next_review_at < today


class PlanReview(models.Model):
    """One review of a plan document; signing it off applies its outcome to the document."""

    class Outcome(models.TextChoices):
        NO_CHANGE = "no_change", "no change"
        CHANGES_NEEDED = "changes_needed", "changes needed"
        APPROVED = "approved", "approved (with the changes below)"

    document = models.ForeignKey(PlanDocument, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewer_name = models.CharField(max_length=120, blank=True, help_text="If the reviewer has no portal account.")
    reviewed_at = models.DateField(default=timezone.localdate)
    outcome = models.CharField(max_length=15, choices=Outcome.choices)
    notes = models.TextField(blank=True)
    changes = models.TextField(blank=True, help_text="What changed; becomes the change-log entry when approved.")
    major = models.BooleanField(default=False, help_text="A major revision: 1.x → 2.0.")
    signed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    signed_off_at = models.DateTimeField(null=True, blank=True)
    version_after = models.CharField(max_length=20, blank=True, help_text="The document's version after sign-off.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        help_text="Who wrote the review down; they may not sign it off either.",
    )

    class Meta:
        ordering = ["-reviewed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(outcome="approved") | ~Q(changes="") | Q(signed_off_at__isnull=True),
                name="approved_review_names_its_changes",
            )
        ]
        permissions = [("sign_off_planreview", "Can sign off plan reviews")]

    def __str__(self) -> str:
        return f"{self.document.key} review {self.reviewed_at}: {self.get_outcome_display()}"

    def save(self, *args, **kwargs) -> None:
        # A signed-off review is a record: its outcome is already applied to the document.
        if self.pk and PlanReview.objects.filter(pk=self.pk, signed_off_at__isnull=False).exists():
            raise ValidationError(f"{self} was signed off: it is read-only (write a new review instead).")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.pk and PlanReview.objects.filter(pk=self.pk, signed_off_at__isnull=False).exists():
            raise ValidationError(f"{self} was signed off: it is kept as a record and cannot be deleted.")
        return super().delete(*args, **kwargs)

    def authors(self) -> set[int]:
        """User ids of who wrote this review (the reviewer, and whoever entered it)."""
        return {pk for pk in (self.reviewer_id, self.created_by_id) if pk}

    def sign_off_refusal(self, user) -> str | None:
        """Why ``user`` may not sign this review off, in words; None if they may (four eyes)."""
        if self.signed_off_at:
            return f"{self} was already signed off on {self.signed_off_at:%Y-%m-%d}."
        if user is None or not getattr(user, "pk", None):
            return "A sign-off needs a signed-in user: who signs is recorded."
        if user.pk in self.authors():
            return f"{self} cannot be signed off by its own author: another person must sign it off."
        return None

    @property
    def reviewer_display(self) -> str:
        if self.reviewer_id:
            return self.reviewer.get_full_name() or self.reviewer.get_username()
        return self.reviewer_name or "-"


class ChangeLogEntry(models.Model):
    document = models.ForeignKey(PlanDocument, on_delete=models.CASCADE, related_name="change_log")
    date = models.DateField()
    version = models.CharField(max_length=20)
    changes = models.TextField()
    author = models.CharField(max_length=120)
    review = models.ForeignKey(PlanReview, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["document", "date", "id"]
        verbose_name_plural = "change log entries"
        constraints = [models.UniqueConstraint(fields=["document", "version"], name="one_change_log_entry_per_version")]

    def __str__(self) -> str:
        return f"{self.version} ({self.date})"
