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
from contextlib import nullcontext

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

from .workers import release_beat_lease, take_beat_lease, this_process

logger = logging.getLogger(__name__)

# Renewing at most this often keeps a burst of due entries (each one tick) from costing a
# write each; the lease stays far fresher than BEAT_LEASE_SECONDS either way.
RENEW_EVERY = 2.0

# Celery's beat sends one due entry per tick, and django-celery-beat asks the database whether the
# schedule changed on every tick (a commit and a query), then compares every entry with its copy:
# with every target due on the same minute that was paid once per send. Asking at most this often
# still picks up an edited schedule within a second.
SCHEDULE_CHECK_EVERY = 1.0


class PortalScheduler(DatabaseScheduler):
    _holder = ""
    _active = False
    _announced = False
    _checked_at = float("-inf")
    _schedule_checked_at = float("-inf")

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

    @property
    def schedule(self) -> dict:
        now = time.monotonic()
        if self._schedule is not None and now - self._schedule_checked_at < SCHEDULE_CHECK_EVERY:
            return self._schedule
        self._schedule_checked_at = now
        return super().schedule

    def sync(self) -> None:
        """Save each sent entry's last run with one UPDATE (CELERY_BEAT_SYNC_EVERY = 1: after every send).

        django-celery-beat's own save reads the row back, validates its unique name and rewrites every
        column: four queries a send, each while the next due target waits. A standby beat that takes
        over reads these two columns, so what it needs is written just the same.
        """
        from django.db import DatabaseError, InterfaceError, close_old_connections, transaction

        if not self._dirty or self._schedule is None:
            return
        names, self._dirty = self._dirty, set()
        failed = set()
        try:
            close_old_connections()
            # One entry (the usual case: a sync after every send) is one UPDATE, atomic by itself.
            with transaction.atomic() if len(names) > 1 else nullcontext():
                for name in names:
                    entry = self._schedule.get(name)
                    if entry is None:
                        continue  # removed from the schedule meanwhile
                    self.Model.objects.filter(pk=entry.model.pk).update(
                        last_run_at=entry.model.last_run_at, total_run_count=entry.model.total_run_count
                    )
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("beat could not save the last run of %s (tries again at the next send): %r", names, exc)
            failed = names
        finally:
            self._dirty |= failed

    def tick(self, *args, **kwargs):
        if not self._may_schedule():
            return RENEW_EVERY
        return super().tick(*args, **kwargs)

    def close(self) -> None:
        super().close()
        if self._active:
            release_beat_lease(self._holder)
