"""Beat's scheduler: django-celery-beat's, run by exactly one beat at a time.

Two beats (a second host for failover, or an operator starting one by mistake) would send
every due job twice. So each tick first renews a lease in the portal's database (the ``beat``
heartbeat row, see ``drportal.workers.take_beat_lease``); only the holder schedules. Another
beat idles on standby, says so in its log and in a ``standby-beat`` heartbeat row (the
dashboard and /health show it), and takes over once the holder has not renewed the lease for
BEAT_LEASE_SECONDS. The lease is a database row, so it works on the embedded SQLite portal of
``make run`` as well as on PostgreSQL, with any broker.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

from .workers import release_beat_lease, take_beat_lease, this_process

logger = logging.getLogger(__name__)

# Renewing at most this often keeps a burst of due entries (each one tick) from costing a
# write each; the lease stays far fresher than BEAT_LEASE_SECONDS either way.
RENEW_EVERY = 2.0


class PortalScheduler(DatabaseScheduler):
    _holder = ""
    _active = False
    _announced = False
    _checked_at = float("-inf")

    def __init__(self, *args, **kwargs):
        self._holder = this_process()
        super().__init__(*args, **kwargs)

    def _may_schedule(self) -> bool:
        now = time.monotonic()
        # Within RENEW_EVERY (well under the 5 s minimum lease) the last answer still holds;
        # a stall longer than that makes this beat ask again before sending anything.
        if now - self._checked_at < RENEW_EVERY:
            return self._active
        self._checked_at = now
        active = take_beat_lease(self._holder)
        if active and not self._active:
            logger.warning("beat %s holds the scheduler lease: scheduling", self._holder)
            # Start from what the previous holder saved (it syncs after every send), so a job it
            # already sent is not sent again.
            self._schedule = self.all_as_schedule()
            self._heap = None
        elif not active and (self._active or not self._announced):
            logger.warning(
                "beat %s is on standby: another beat holds the scheduler lease, so this one sends nothing; "
                "it takes over if that one stops renewing the lease for %s s",
                self._holder,
                settings.BEAT_LEASE_SECONDS,
            )
        self._active, self._announced = active, True
        return active

    def tick(self, *args, **kwargs):
        if not self._may_schedule():
            return RENEW_EVERY
        return super().tick(*args, **kwargs)

    def close(self) -> None:
        super().close()
        if self._active:
            release_beat_lease(self._holder)
