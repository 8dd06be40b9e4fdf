"""Beat's scheduler: django-celery-beat's, plus a heartbeat so /health knows beat is ticking."""

import time

from django_celery_beat.schedulers import DatabaseScheduler

from .health import BEAT, record_heartbeat

HEARTBEAT_EVERY = 15.0


class PortalScheduler(DatabaseScheduler):
    _last_heartbeat = 0.0

    def tick(self, *args, **kwargs):
        now = time.monotonic()
        if now - self._last_heartbeat >= HEARTBEAT_EVERY:
            self._last_heartbeat = now
            record_heartbeat(BEAT)
        return super().tick(*args, **kwargs)
