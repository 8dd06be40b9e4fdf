"""Status-page updates: saved (public), component states changed, stakeholders emailed, channels told.

Every delivery is a Notification in the alerts outbox (delivered by a worker, with retries) tied to
the incident by ``object_ref = "incident:<id>"``, so the incident page shows what went out and what
did not; a failed attempt is also written on the timeline (incidents.receivers).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse

import alerts
from alerts.models import Notification

from ..models import STATUS_PAGE_UPDATED, Contact, Incident, StatusComponent, StatusUpdate, TimelineEntry

logger = logging.getLogger(__name__)


def object_ref(incident: Incident) -> str:
    return f"incident:{incident.pk}"


def _email_stakeholders(subject: str, body: str, ref: str) -> list[Notification]:
    return [
        alerts.email("status_update", f"stakeholder:{contact.email}", contact.email, subject, body, ref)
        for contact in Contact.objects.filter(stakeholder=True).exclude(email="")
    ]


def post_update(
    incident: Incident,
    message: str,
    *,
    phase: str = StatusUpdate.Phase.INVESTIGATING,
    components: dict[str, str] | None = None,
    user=None,
    without_recovery: str = "",
) -> tuple[StatusUpdate, list[Notification]]:
    """Publish a status update; returns it with its queued deliveries (email and webhook).

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
        # Publishing is what the checklist's "Status page updated" item asks for: tick it (once). Only for a
        # customer-facing incident: the status page shows no other, so ticking would claim what did not happen.
        item = incident.checklist.filter(key=STATUS_PAGE_UPDATED, done_at__isnull=True).first()
        if item is not None and incident.customer_facing:
            incident.tick_checklist(item, user, evidence_note=f"status update #{update.pk} published")
        incident.log(
            TimelineEntry.Kind.COMMUNICATION,
            f"Status update ({update.get_phase_display()}): {message}" + (f" [{states}]" if states else ""),
            user=user,
        )
    # Queued after the transaction (the outbox's rows); a worker delivers them, with retries.
    title = incident.public_title or incident.title
    subject = f"[{incident.severity.key}] {title}: {update.get_phase_display()}"
    body = f"{message}\n"
    if states:
        body += f"\nComponents: {states}\n"
    body += f"\nStatus page: {settings.PORTAL_URL}{reverse('status_page')}\n"
    ref = object_ref(incident)
    records = _email_stakeholders(subject, body, ref)
    records += alerts.emit("status_update", subject, body, object_ref=ref)
    if records:
        names = ", ".join(r.channel for r in records)
        incident.log(TimelineEntry.Kind.COMMUNICATION, f"Update queued for {len(records)} deliveries: {names}.")
    return update, records
