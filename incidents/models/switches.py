"""Portal-wide switches flipped during a security incident."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class PortalSwitch(models.Model):
    """Portal-wide switches flipped during a security incident (one row per switch)."""

    name = models.CharField(max_length=40, unique=True)
    on = models.BooleanField(default=False)
    changed_at = models.DateTimeField(auto_now=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.name}: {'on' if self.on else 'off'}"
