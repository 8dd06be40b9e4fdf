"""Status-page updates: saved (public), component states changed, stakeholders emailed, channels told.

Every delivery is recorded as a Notification (sent or failed, with the error) tied to the incident
by ``object_ref = "incident:<id>"``, so the incident page shows what went out and what did not.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from .. import notify
from ..models import Contact, Incident, Notification, StatusComponent, StatusUpdate, TimelineEntry

logger = logging.getLogger(__name__)


def object_ref(incident: Incident) -> str:
    return f"incident:{incident.pk}"


def _email_stakeholders(subject: str, body: str, ref: str) -> list[Notification]:
    records = []
    for contact in Contact.objects.filter(stakeholder=True).exclude(email=""):
        error = ""
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [contact.email], fail_silently=False)
        except Exception as exc:  # every transport fails its own way; all are recorded the same
            error = str(exc) or type(exc).__name__
            logger.warning("stakeholder email to %s failed: %s", contact.email, error)
        records.append(
            notify.record("status_update", f"stakeholder:{contact.email}", "email", subject, body, error, ref)
        )
    return records


def post_update(
    incident: Incident,
    message: str,
    *,
    phase: str = StatusUpdate.Phase.INVESTIGATING,
    components: dict[str, str] | None = None,
    user=None,
    without_recovery: str = "",
) -> tuple[StatusUpdate, list[Notification]]:
    """Publish a status update; returns it with the delivery records (email and webhook).

    An update in phase "Resolved" on an open incident resolves it, with the same requirements as
    any resolution (recovery verified, or ``without_recovery``, a reason); when it may not be
    resolved, the update is refused with that reason and nothing is published or changed.
    """
    message = message.strip()
    if not message:
        raise ValidationError("A status update needs a public message.")
    if phase not in StatusUpdate.Phase.values:
        raise ValidationError(f"Unknown phase {phase!r}.")
    components = components or {}
    unknown_states = set(components.values()) - set(StatusComponent.State.values)
    if unknown_states:
        raise ValidationError(f"Unknown component state(s): {', '.join(sorted(unknown_states))}.")
    with transaction.atomic():
        if phase == StatusUpdate.Phase.RESOLVED and incident.is_open:
            try:
                incident.change_status(Incident.Status.RESOLVED, user, without_recovery=without_recovery)
            except ValidationError as exc:
                raise ValidationError(
                    f"A “Resolved” update resolves the incident, and it was refused: {' '.join(exc.messages)}"
                ) from None
        known = {c.name: c for c in StatusComponent.objects.select_for_update().filter(name__in=list(components))}
        missing = set(components) - set(known)
        if missing:
            raise ValidationError(f"Unknown component(s): {', '.join(sorted(missing))}.")
        for name, state in components.items():
            if known[name].state != state:
                known[name].state = state
                known[name].save(update_fields=["state", "updated_at"])
        update = StatusUpdate.objects.create(
            incident=incident, phase=phase, message=message, component_states=components, author=user
        )
        states = "; ".join(f"{name}: {state}" for name, state in components.items())
        incident.log(
            TimelineEntry.Kind.COMMUNICATION,
            f"Status update ({update.get_phase_display()}): {message}" + (f" [{states}]" if states else ""),
            user=user,
        )
    # Slow I/O after the transaction: mail servers and webhooks may take seconds.
    title = incident.public_title or incident.title
    subject = f"[{incident.severity.key}] {title}: {update.get_phase_display()}"
    body = f"{message}\n"
    if states:
        body += f"\nComponents: {states}\n"
    body += f"\nStatus page: {settings.PORTAL_URL}{reverse('status_page')}\n"
    ref = object_ref(incident)
    records = _email_stakeholders(subject, body, ref)
    records += notify.send("status_update", subject, body, object_ref=ref)
    failed = [r for r in records if r.status == Notification.Status.FAILED]
    if records:
        summary = f"Update sent: {len(records) - len(failed)} delivered"
        if failed:
            summary += ", " + ", ".join(f"{r.channel} FAILED ({r.error})" for r in failed)
        incident.log(TimelineEntry.Kind.COMMUNICATION, summary + ".")
    return update, records
