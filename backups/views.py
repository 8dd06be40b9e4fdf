"""Public endpoints of the backups app: pings from external feeds (WAL archiving, log shipping)."""

from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt

from drportal.client_ip import client_address

from .models import Objective
from .services import rpo


@csrf_exempt
def ping(request, token: str):
    """`POST /ping/<token>`: the feed's data is safe up to now. The token is the only credential."""
    if request.method not in ("POST", "GET", "HEAD"):
        return HttpResponseNotAllowed(["POST", "GET", "HEAD"])
    objective = get_object_or_404(Objective, ping_token=token, ping=True, enabled=True)
    remote = client_address(request)
    body = request.body[:1000].decode("utf-8", "replace") if request.method == "POST" else ""
    rpo.record_ping(objective, remote_addr=remote, user_agent=request.META.get("HTTP_USER_AGENT", ""), body=body)
    return HttpResponse("OK\n", content_type="text/plain")
