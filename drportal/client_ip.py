"""The one way the portal finds a client's address: failed-login lockouts (django-axes) and pings.

Behind ``PROXY_COUNT`` reverse proxies that each append the address they received from to
``X-Forwarded-For``, the client is the PROXY_COUNT-th address from the right; anything to its
left was written by the client and is not trusted. With no proxy the header is ignored. What is
not an address (``unknown``, garbage) is skipped; the answer is an address or None, never an error.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from ipware import get_client_ip


def client_address(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR") or None
    hops = settings.PROXY_COUNT
    if hops == 0:
        return remote
    # python-ipware counts the proxies whose addresses appear in the header: ours minus the last one,
    # which is REMOTE_ADDR. Not strict, so a client-written prefix does not void the whole header.
    address, _routable = get_client_ip(
        request,
        proxy_count=hops - 1,
        strict=False,
        request_header_order=["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"],
    )
    return address or remote
