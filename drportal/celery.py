"""The Celery application: `celery -A drportal worker` and `celery -A drportal beat`."""

import os
import sys
from pathlib import Path

from celery import Celery, bootsteps

from .env import refuse_empty_home

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drportal.settings")
# Run as the `celery` program (worker, beat), not imported by the web process or manage.py.
if Path(sys.argv[0]).name == "celery" or sys.argv[0].endswith(os.path.join("celery", "__main__.py")):
    refuse_empty_home("celery")

app = Celery("drportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

HEARTBEAT_SECONDS = 10.0


class PortalHeartbeat(bootsteps.StartStopStep):
    """Every worker writes a heartbeat row, so /health can tell a live worker from a dead one.

    The row also says where the worker runs, which queues it consumes (``-Q``) and which
    targets' ``env:`` names it can see, so the portal can tell "queue X has nobody" apart
    from "queue X's worker lacks the variable target Y needs".
    """

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        from drportal.workers import record_worker

        queues = sorted(worker.app.amqp.queues.consume_from or worker.app.amqp.queues)
        record_worker(worker.hostname, queues)
        self.tref = worker.timer.call_repeatedly(
            HEARTBEAT_SECONDS, record_worker, (worker.hostname, queues), priority=10
        )

    def stop(self, worker):
        from drportal.workers import forget_heartbeat

        if self.tref is not None:
            self.tref.cancel()
        # A worker that stops cleanly says so at once; a killed one goes stale after a minute.
        forget_heartbeat(worker.hostname)


app.steps["worker"].add(PortalHeartbeat)
