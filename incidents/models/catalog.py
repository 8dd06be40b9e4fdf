"""The plan's incident-response catalogue: severities, scenarios and their steps, checklist templates,
roles, contacts and service providers."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from drportal.validators import validate_name

# An ongoing customer-facing incident is never "operational" on the status page: the mildest is degraded.
PUBLIC_IMPACTS = [("major", "major outage"), ("partial", "partial outage"), ("degraded", "degraded performance")]


class Severity(models.Model):
    """P1–P4: how bad, how fast to respond, how fast to recover."""

    key = models.CharField(max_length=10, unique=True, help_text="P1, P2, P3, P4")
    name = models.CharField(max_length=40, help_text="Critical, High, Medium, Low")
    description = models.TextField(blank=True)
    examples = models.TextField(blank=True)
    response_time = models.DurationField(
        null=True, blank=True, help_text="How soon someone must respond; empty means immediately."
    )
    target_rto = models.DurationField(help_text="Target recovery time for incidents of this severity.")
    report_due = models.DurationField(
        default=timedelta(hours=24), help_text="Post-incident report due this long after resolution."
    )
    color = models.CharField(max_length=7, default="#7a7a7a", help_text="Badge colour, e.g. #c0392b.")
    order = models.PositiveSmallIntegerField(default=0)
    public_impact = models.CharField(
        max_length=10,
        choices=PUBLIC_IMPACTS,
        default="major",
        help_text="What an open customer-facing incident of this severity shows on the status page's banner "
        "(as a component state would): major outage is red, partial orange, degraded yellow.",
    )

    class Meta:
        ordering = ["order", "key"]
        verbose_name_plural = "severities"

    def __str__(self) -> str:
        return f"{self.key} – {self.name}"

    @property
    def response_time_display(self) -> str:
        if not self.response_time:
            return "immediate"
        hours = self.response_time.total_seconds() / 3600
        return f"< {hours:g} h"


class Scenario(models.Model):
    """A recovery scenario: a runbook with ordered steps and its targets."""

    key = models.CharField(max_length=63, unique=True, validators=[validate_name])
    number = models.PositiveSmallIntegerField(default=0, help_text="Its number in the plan (Scenario 1, 2...).")
    title = models.CharField(max_length=200)
    severity = models.ForeignKey(Severity, on_delete=models.PROTECT, related_name="scenarios")
    target_rto = models.DurationField(null=True, blank=True, help_text="Empty: immediate.")
    target_rpo = models.DurationField(null=True, blank=True)
    impact = models.TextField(blank=True)
    description = models.TextField(blank=True)
    estimated_recovery = models.CharField(max_length=100, blank=True, help_text="e.g. 30-60 minutes")
    targets = models.ManyToManyField(
        "backups.Target",
        blank=True,
        related_name="scenarios",
        help_text="The backed-up data this scenario puts at risk: an incident's data-loss window is measured "
        "from the newest verified copy of these. Empty: it risks no backed-up data (the window stays unknown).",
    )

    class Meta:
        ordering = ["number", "key"]

    def __str__(self) -> str:
        return f"Scenario {self.number}: {self.title}" if self.number else self.title


class ScenarioStep(models.Model):
    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField()
    text = models.TextField()
    command = models.TextField(blank=True, help_text="A command to copy, if the step has one.")
    expected_duration = models.DurationField(null=True, blank=True)

    class Meta:
        ordering = ["scenario", "order"]
        constraints = [models.UniqueConstraint(fields=["scenario", "order"], name="one_step_per_position")]

    def __str__(self) -> str:
        return f"{self.order}. {self.text[:60]}"

    def clean(self) -> None:
        # Same check as the plan loader: a typo would otherwise reach responders as a literal "{locaton}".
        from ..runbook import PLACEHOLDERS, unknown_placeholders

        unknown = unknown_placeholders(self.command)
        if unknown:
            known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
            raise ValidationError({"command": f"Unknown placeholder(s) {', '.join(unknown)} (known: {known})."})


class ChecklistItemTemplate(models.Model):
    """The plan's incident response checklist; copied onto each incident when it opens."""

    key = models.CharField(max_length=63, unique=True, validators=[validate_name])
    text = models.CharField(max_length=200)
    order = models.PositiveSmallIntegerField()
    requires_evidence = models.BooleanField(
        default=False, help_text="May only be ticked with evidence (a linked restore or verification, or a note)."
    )

    class Meta:
        ordering = ["order"]

    def __str__(self) -> str:
        return self.text


class ResponseRole(models.Model):
    """Incident Commander, Technical Lead, Communications Lead, Database Administrator..."""

    name = models.CharField(max_length=80, unique=True)
    responsibilities = models.TextField(blank=True)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    """A person to call: the plan's emergency contacts."""

    key = models.CharField(
        max_length=63, blank=True, help_text="Its key in the plan ([contacts.KEY]); empty for contacts added here."
    )
    name = models.CharField(max_length=120)
    title = models.CharField(max_length=120, blank=True, help_text="e.g. CTO / Technical Lead")
    phone = models.CharField(max_length=40, blank=True)
    email = models.EmailField(blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The portal user this contact is, if any.",
    )
    default_role = models.ForeignKey(ResponseRole, null=True, blank=True, on_delete=models.SET_NULL)
    stakeholder = models.BooleanField(default=False, help_text="Receives stakeholder emails on status updates.")
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["key"], condition=~Q(key=""), name="one_contact_per_plan_key")]

    def __str__(self) -> str:
        return f"{self.name} ({self.title})" if self.title else self.name


class ServiceProvider(models.Model):
    name = models.CharField(max_length=120, unique=True)
    service = models.CharField(max_length=120)
    support_url = models.URLField(blank=True)
    contact = models.CharField(max_length=120, blank=True, help_text="Phone or support email.")
    status_url = models.URLField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
