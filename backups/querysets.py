from __future__ import annotations

from datetime import datetime, timedelta

from django.apps import apps
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .leases import PHASE_LIMITS, silence_limit


class BackupRunQuerySet(models.QuerySet):
    def succeeded(self):
        return self.filter(status=self.model.Status.SUCCEEDED)

    def with_artifact(self):
        """Succeeded or partial: the artifact is complete and landed in at least one location.

        What verification, restore choices and RPO credit accept; a partial run's copies that
        landed are as good as a succeeded run's.
        """
        return self.filter(status__in=(self.model.Status.SUCCEEDED, self.model.Status.PARTIAL))

    def verified(self):
        """Runs with a passed verification: a copy known to restore, whatever else the run did."""
        # Looked up by name: models.py imports this module, so importing it back would be a cycle.
        Verification = apps.get_model("backups", "Verification")
        passed = Verification.objects.filter(run=models.OuterRef("pk"), status=Verification.Status.PASSED)
        return self.filter(models.Exists(passed))

    def active(self):
        return self.filter(status__in=(self.model.Status.QUEUED, self.model.Status.RUNNING))

    def stale(self, now: datetime | None = None):
        """Running runs silent for longer than their phase allows (``leases.PHASE_LIMITS``).

        Stale means suspect, not dead: a reaper still needs ``leases.proof_of_death`` before failing one.
        """
        now = now or timezone.now()
        other_phases = Q()
        silent = Q()
        for kind in PHASE_LIMITS:
            if kind == "dump":
                continue
            in_phase = Q(phase__startswith=f"{kind}:")
            other_phases |= in_phase
            silent |= in_phase & Q(heartbeat_at__lt=now - timedelta(seconds=silence_limit(kind)))
        silent |= ~other_phases & Q(heartbeat_at__lt=now - timedelta(seconds=silence_limit("dump")))
        return self.filter(silent, status=self.model.Status.RUNNING)
