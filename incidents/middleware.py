"""Portal read-only mode (scenario 6: "Enable read-only mode"): the admin refuses changes while on."""

from __future__ import annotations

from django.template.response import TemplateResponse
from django.urls import reverse

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class ReadOnlyMiddleware:
    """While the ``read_only`` switch is on, refuse admin writes with a 503 page that says why.

    Login and logout still work (an incident may need people to sign in again), and so does the
    switch itself, so it can be turned off from the same page.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method not in SAFE_METHODS and self._guarded(request.path) and self._on():
            response = TemplateResponse(
                request, "incidents/read_only.html", {"title": "The portal is read-only"}, status=503
            )
            response["Retry-After"] = "300"
            return response.render()
        return self.get_response(request)

    @staticmethod
    def _guarded(path: str) -> bool:
        admin = reverse("admin:index")
        if not path.startswith(admin):
            return False
        allowed = (reverse("admin:login"), reverse("admin:logout"))
        return not path.startswith(allowed) and not path.endswith("/read-only/")

    @staticmethod
    def _on() -> bool:
        # Only asked for writes, so reading pages costs no query.
        from .services.security import read_only_on

        return read_only_on()
