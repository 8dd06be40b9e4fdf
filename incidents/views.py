"""The public status page: no login, read-only, only what customers may see."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Prefetch
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from .models import Incident, StatusComponent, StatusUpdate

HISTORY_DAYS = 90
BANNER_RANK = ["operational", "maintenance", "degraded", "partial", "major"]


@require_safe
@cache_control(max_age=30, public=True)
def status(request):
    """Current customer-facing incidents with their public updates, component states, and history.

    Only public fields are read here: never the timeline, summaries, root causes or internal titles
    when a public title is set.
    """
    public = Incident.objects.filter(customer_facing=True).select_related("severity")
    updates = Prefetch("status_updates", queryset=StatusUpdate.objects.order_by("-at"))
    current = public.filter(status__in=Incident.OPEN_STATUSES).prefetch_related(updates).order_by("-detected_at")
    since = timezone.now() - timedelta(days=HISTORY_DAYS)
    history = (
        public.filter(status__in=["resolved", "closed"], resolved_at__gte=since)
        .prefetch_related(updates)
        .order_by("-resolved_at")
    )
    components = list(StatusComponent.objects.all())
    current = list(current)
    # As Statuspage does: the banner is the worst of every component's state and every open
    # customer-facing incident's impact (its severity's), so an ongoing P1 is never green.
    states = [c.state for c in components] + [i.severity.public_impact for i in current]
    worst = max(states, key=BANNER_RANK.index, default="operational")
    return render(
        request,
        "incidents/status.html",
        {
            "current": current,
            "history": history,
            "components": components,
            "overall": worst,
            "history_days": HISTORY_DAYS,
        },
    )
