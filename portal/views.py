from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from . import health as health_checks


@never_cache
def health(request):
    """200 when we would be safe if disaster struck now (see portal.health); else 503 naming what fails."""
    ok, checks = health_checks.status()
    body = {
        "status": "ok" if ok else "unhealthy",
        "checked_at": timezone.now().isoformat(),
        "failing": health_checks.failing_checks(checks),
        "checks": checks,
    }
    return JsonResponse(body, status=200 if ok else 503)


@never_cache
def live(request):
    """For load balancers: 200 while the process runs and its database answers; nothing about backups."""
    ok, checks = health_checks.liveness()
    body = {"status": "ok" if ok else "unhealthy", "checked_at": timezone.now().isoformat(), "checks": checks}
    return JsonResponse(body, status=200 if ok else 503)
