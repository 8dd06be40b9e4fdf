"""The Celery application: `celery -A drportal worker` and `celery -A drportal beat`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drportal.settings")

app = Celery("drportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
