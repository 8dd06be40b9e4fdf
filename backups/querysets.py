from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone


class BackupRunQuerySet(models.QuerySet):
    def succeeded(self):
        return self.filter(status="succeeded")

    def verified(self):
        """Runs with a passed verification: a copy known to restore, whatever else the run did."""
        from .models import Verification

        passed = Verification.objects.filter(run=models.OuterRef("pk"), status="passed")
        return self.filter(models.Exists(passed))

    def active(self):
        return self.filter(status__in=("queued", "running"))

    def stale(self, seconds: int):
        """Running runs whose worker has stopped reporting: it most likely died."""
        cutoff = timezone.now() - timedelta(seconds=seconds)
        return self.filter(status="running", heartbeat_at__lt=cutoff)
