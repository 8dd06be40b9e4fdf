from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from . import health as health_checks


@never_cache
def health(request):
    """200 when the database, broker, workers, beat and the newest backup are all fine; else 503."""
    ok, checks = health_checks.status()
    body = {"status": "ok" if ok else "unhealthy", "checked_at": timezone.now().isoformat(), "checks": checks}
    return JsonResponse(body, status=200 if ok else 503)
