"""Editing and resolving an incident: the clock stops, the public hears it, the status page's components come back.

The requirement itself (recovery verified, or a reason for resolving without it) is the model's
(``Incident.change_status``), so it holds however the incident is resolved; this module adds what
a resolution offers: the public "Resolved" update and resetting the components it affected.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from ..models import Incident, StatusComponent, StatusUpdate, TimelineEntry
from . import communicate

DEFAULT_RESOLUTION_MESSAGE = "This incident has been resolved. Thank you for your patience."


@dataclass
class ComponentOffer:
    component: StatusComponent
    named_by_incident: bool  # this incident's updates set it to a non-operational state: reset by default


def component_offers(incident: Incident) -> list[ComponentOffer]:
    """Components not operational now, those this incident's updates named first: what resolving offers to reset."""
    named = set()
    for states in incident.status_updates.values_list("component_states", flat=True):
        named |= {name for name, state in (states or {}).items() if state != StatusComponent.State.OPERATIONAL}
    offers = [
        ComponentOffer(c, c.name in named)
        for c in StatusComponent.objects.exclude(state=StatusComponent.State.OPERATIONAL)
    ]
    return sorted(offers, key=lambda o: (not o.named_by_incident, o.component.order, o.component.name))


def save_edit(incident: Incident, user, *, changed: list[str] | tuple[str, ...] = ()) -> None:
    """Save an edit of an open incident's page: plain fields as typed; status and severity through the
    model's methods, which stamp times and write the timeline. ``changed`` names the fields the person
    changed (a corrected impact start goes on the timeline)."""
    old = Incident.objects.get(pk=incident.pk)
    new_status, new_severity = incident.status, incident.severity
    incident.status, incident.severity = old.status, old.severity
    incident.save()
    if "impact_started_at" in changed:
        incident.log(
            TimelineEntry.Kind.NOTE,
            f"Impact start corrected: {old.impact_started_at:%Y-%m-%d %H:%M} → "
            f"{incident.impact_started_at:%Y-%m-%d %H:%M} UTC.",
            user=user,
        )
    incident.change_severity(new_severity, user)
    incident.change_status(new_status, user, without_recovery=incident.resolved_without_recovery)


def resolution_published(incident: Incident) -> bool:
    return incident.status_updates.filter(phase=StatusUpdate.Phase.RESOLVED).exists()


def offers_resolution_update(incident: Incident) -> bool:
    """Resolved (or closed) with no public "Resolved" update yet, while customers could be waiting for one."""
    if incident.is_open or resolution_published(incident):
        return False
    return incident.customer_facing or bool(component_offers(incident))


def resolve(
    incident: Incident,
    user=None,
    *,
    without_recovery: str = "",
    public_message: str = "",
    reset_components: list[str] | tuple[str, ...] = (),
) -> StatusUpdate | None:
    """Resolve the incident; with a public message or components to reset, as one "Resolved" status update.

    Also publishes the resolution of an incident already resolved (the page's one-click offer).
    Refused with a ValidationError naming why, and then nothing changed.
    """
    public_message = (public_message or "").strip()
    if reset_components and not public_message:
        raise ValidationError("Resetting components posts a public update: write its message.")
    if public_message:
        components = {name: StatusComponent.State.OPERATIONAL for name in reset_components}
        update, _records = communicate.post_update(
            incident,
            public_message,
            phase=StatusUpdate.Phase.RESOLVED,
            components=components,
            user=user,
            without_recovery=without_recovery,
        )
        return update
    if not incident.is_open:
        raise ValidationError(f"Incident #{incident.pk} is already {incident.status}.")
    incident.change_status(Incident.Status.RESOLVED, user, without_recovery=without_recovery)
    return None
