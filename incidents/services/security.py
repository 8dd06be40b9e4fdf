"""Security-incident helpers (scenario 6): force logout, the read-only switch, restore before T (or to T).

Each is logged on the incident's timeline. The restore goes through the backups app's own
confirmation page (the safe restore): nothing here restores anything by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from backups import engines
from backups.engines import SourceError
from backups.locations import LocationError
from backups.models import Artifact, BackupRun, Restore, Target
from backups.services import pgbackrest
from backups.services.restore import RestoreNotAllowed
from drportal import humanize

from ..models import Incident, PortalSwitch, TimelineEntry

logger = logging.getLogger(__name__)

READ_ONLY = "read_only"


def force_logout(incident: Incident, user, keep_session_key: str | None) -> int:
    """End every portal session except the acting user's own; returns how many ended."""
    with transaction.atomic():
        sessions = Session.objects.all()
        if keep_session_key:
            sessions = sessions.exclude(session_key=keep_session_key)
        ended, _ = sessions.delete()
        incident.log(
            TimelineEntry.Kind.SYSTEM,
            f"Forced logout of all portal users: {ended} session(s) ended (the commander's own kept).",
            user=user,
        )
    logger.warning("forced logout by %s: %s sessions ended", user, ended)
    return ended


def read_only_on() -> bool:
    return PortalSwitch.objects.filter(name=READ_ONLY, on=True).exists()


def set_read_only(incident: Incident, on: bool, user) -> PortalSwitch:
    with transaction.atomic():
        switch, _ = PortalSwitch.objects.select_for_update().get_or_create(name=READ_ONLY)
        if switch.on != on:
            switch.on, switch.changed_by = on, user
            switch.save()
            incident.log(
                TimelineEntry.Kind.SYSTEM,
                "Portal switched to READ-ONLY: the admin refuses changes."
                if on
                else "Portal read-only mode switched off: changes allowed again.",
                user=user,
            )
    return switch


def newest_good_run_before(target: Target, before: datetime) -> BackupRun:
    run = (
        BackupRun.objects.with_artifact()  # a partial run's landed copy restores like any other
        .filter(target=target, started_at__lt=before, artifacts__status=Artifact.Status.STORED)
        .order_by("-started_at")
        .distinct()
        .first()
    )
    if run is None:
        raise ValidationError(
            f"No good backup of {target.name} with a stored copy was taken before {before:%Y-%m-%d %H:%M} UTC."
        )
    return run


def restore_before_url(incident: Incident, target: Target, before: datetime, user) -> str:
    """The backups app's confirmation page for restoring ``target`` as of ``before``, linked to the incident.

    A target that restores to a moment (pgBackRest's archived WAL) is restored *to* ``before`` itself: nothing
    written until then is lost. Any other target: the newest good backup taken before it.
    """
    if not incident.is_open:
        # The restore page would refuse it anyway; say so here rather than log a proposal that cannot go ahead.
        raise ValidationError(
            f"Incident #{incident.pk} is {incident.get_status_display().lower()}; restores start only from an open one."
        )
    expires = humanize.duration(RESTORE_PROPOSAL_TTL)
    engine = engines.find(target.engine)
    if engine is not None and engine.restores_to_a_moment:
        try:
            # From the portal's catalogue: this runs in the web process, not on the database host.
            chosen = pgbackrest.backup_set_for(target, before)
        except (pgbackrest.PitrRefused, SourceError, LocationError) as exc:
            raise ValidationError(f"Cannot restore {target.name} to {before:%Y-%m-%d %H:%M:%S} UTC: {exc}") from None
        incident.propose_restore_to_moment(target, before, chosen.label, chosen.run, user, expires=expires)
        query = urlencode({"incident": incident.pk, "time": before.isoformat()})
        return f"{reverse('admin:backups_target_restore_moment', args=[target.pk])}?{query}"
    run = newest_good_run_before(target, before)
    incident.propose_restore(target, run, before, user, expires=expires)
    return f"{reverse('admin:backups_backuprun_restore', args=[run.pk])}?incident={incident.pk}"


# A proposal not confirmed within this time is closed as "expired unconfirmed" (by the incidents beat task,
# every 15 minutes); resolving the incident closes its proposals at once, and confirming links the restore.
RESTORE_PROPOSAL_TTL = timedelta(hours=1)


def expire_restore_proposals(now: datetime | None = None) -> int:
    """Close every restore proposal left awaiting confirmation longer than RESTORE_PROPOSAL_TTL."""
    cutoff = (now or timezone.now()) - RESTORE_PROPOSAL_TTL
    stale = TimelineEntry.objects.filter(proposal_state=TimelineEntry.Proposal.AWAITING, at__lt=cutoff)
    expired = 0
    for incident in Incident.objects.filter(pk__in=stale.values("incident_id")):
        expired += incident.close_restore_proposals(
            TimelineEntry.Proposal.EXPIRED,
            f"not confirmed within {humanize.duration(RESTORE_PROPOSAL_TTL)}",
            before=cutoff,
        )
    return expired


def restore_requested_via_incident(reference: str, user) -> Callable[[Restore], None]:
    """The backups restore service's check for ``?incident=ID`` (registered at ready()).

    Only someone allowed to restore through incidents, naming an incident that exists and is still open,
    may start a restore this way; the restore is then linked to that incident's timeline.
    """
    if not user.has_perm("incidents.restore_via_incident"):
        raise RestoreNotAllowed("you do not have permission to start a restore from an incident")
    incident = Incident.objects.filter(pk=int(reference)).first() if reference.isdigit() else None
    if incident is None:
        raise RestoreNotAllowed(f"there is no incident {reference[:20]!r}")
    if not incident.is_open:
        raise RestoreNotAllowed(
            f"incident #{incident.pk} is {incident.get_status_display().lower()}; restores start only from an open one"
        )

    def link(restore: Restore) -> None:
        incident.link_job(restore=restore, user=user)

    return link
