"""Settings for the test suite: the real settings, pointed at the local PostgreSQL and Redis.

Each can be overridden from the environment (CI may use other ports).
"""

import os
import tempfile

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/drportal")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DRPORTAL_HOME", tempfile.mkdtemp(prefix="drportal-test-home-"))
os.environ.setdefault("BACKUP_PROGRESS_INTERVAL_MS", "100")
os.environ.setdefault("BACKUP_WAIT_RETRY_SECONDS", "1")

from drportal.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
# Objectives made in a test have no copy and are breached at once, as most tests expect; the tests
# of the first-backup grace (tests/portal/test_verdict.py) set the shipped default back.
FIRST_ALERT_GRACE_SECONDS = 0
