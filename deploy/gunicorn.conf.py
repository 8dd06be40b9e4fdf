"""gunicorn settings for the portal's web process (deploy/systemd/drportal-web.service, Procfile).

Read from the environment so one file serves every host: BIND (default 127.0.0.1:8000, the
TLS proxy forwards there), WEB_CONCURRENCY (worker processes, default 2 per core + 1, at most 8).
"""

import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", min(8, multiprocessing.cpu_count() * 2 + 1)))
# Admin pages and /health answer in well under this; a stuck request is killed, not queued behind.
timeout = 60
graceful_timeout = 30
# X-Forwarded-* is believed from the local proxy only; Django reads it when BEHIND_PROXY=true.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
# Heartbeat files in memory, not on a possibly slow disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
