"""DR Portal settings, read from the environment.

Defaults run the portal on embedded parts (a SQLite file, a filesystem broker, a
local folder for backups) so that `make run` works on a bare machine. Production
sets DATABASE_URL, REDIS_URL, DJANGO_SECRET_KEY and the age keys; see README.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import BASE_DIR, PORTAL_DATABASE_FILE, env, envbool, envint, envlist, envsecret, portal_home

# Where the embedded defaults keep their state (SQLite file, broker folder, demo backups).
PORTAL_HOME = portal_home()


def _persistent_random(name: str, make) -> str:
    """A random value kept in PORTAL_HOME, for running without configuration.

    Production passes its own value through the environment; this only keeps a
    bare-machine install stable across restarts.
    """
    path = PORTAL_HOME / name
    if path.exists():
        return path.read_text().strip()
    PORTAL_HOME.mkdir(parents=True, exist_ok=True)
    value = make()
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value


DEBUG = envbool("DEBUG", False)
SECRET_KEY = envsecret("DJANGO_SECRET_KEY") or _persistent_random("secret_key", lambda: secrets.token_urlsafe(50))
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # The admin with DR Portal's dashboard on its index page (portal.sites.PortalAdminSite).
    "portal.apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "axes",
    "drportal",
    "alerts",
    "backups",
    "incidents",
    "drills",
    # The roof: dashboard, /health, probes; the only app that may import all the others (docs/architecture.md).
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files from the same process: no separate web server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "incidents.middleware.ReadOnlyMiddleware",  # incidents: the portal read-only switch (scenario 6)
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: locks out repeated failed logins.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed logins: lock a username+address pair out after AXES_FAILURE_LIMIT tries for AXES_COOLOFF_MINUTES.
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=envint("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "admin/lockout.html"
# Client addresses (lockouts, pings) through django-ipware, behind PROXY_COUNT reverse proxies that
# append to X-Forwarded-For (BEHIND_PROXY=true means one); see drportal/client_ip.py.
BEHIND_PROXY = envbool("BEHIND_PROXY", False)
PROXY_COUNT = envint("PROXY_COUNT", 1 if BEHIND_PROXY else 0, minimum=0, maximum=10)
AXES_CLIENT_IP_CALLABLE = "drportal.client_ip.client_address"

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "drportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = env("DATABASE_URL") or f"sqlite:///{PORTAL_HOME / PORTAL_DATABASE_FILE}"
try:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
except ValueError as exc:
    # The message may echo the URL; never print credentials.
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL ({type(exc).__name__})") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    PORTAL_HOME.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Web, worker and beat share the file: WAL lets readers run beside the writer,
    # IMMEDIATE transactions avoid "database is locked" upgrades mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(PORTAL_HOME / "static")))
# Without collectstatic (development, tests) whitenoise finds files in the apps directly.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# --- Uploaded files (drill evidence) -----------------------------------------------
# A folder under PORTAL_HOME by default; an S3 bucket (django-storages) when MEDIA_S3_BUCKET
# is set. The admin serves evidence to signed-in users only, so nothing here is public.
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(PORTAL_HOME / "media")))
MEDIA_URL = "media/"
MEDIA_S3_BUCKET = env("MEDIA_S3_BUCKET")
if MEDIA_S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": MEDIA_S3_BUCKET,
            "location": env("MEDIA_S3_PREFIX", "media"),
            "endpoint_url": env("MEDIA_S3_ENDPOINT_URL") or None,
            "region_name": env("MEDIA_S3_REGION") or None,
            "default_acl": None,
            "file_overwrite": False,
            "querystring_auth": True,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": MEDIA_ROOT}}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Celery -----------------------------------------------------------------
# REDIS_URL (or CELERY_BROKER_URL) in production; otherwise kombu's filesystem
# transport, an embedded broker that needs no server.
_broker_folder = PORTAL_HOME / "broker"
# (The host is named only so kombu does not warn "No hostname was supplied" at every message.)
CELERY_BROKER_URL = env("CELERY_BROKER_URL") or env("REDIS_URL") or "filesystem://localhost/"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("in", "processed", "control"):
        (_broker_folder / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_folder / "in"),
        "data_folder_out": str(_broker_folder / "in"),
        "processed_folder": str(_broker_folder / "processed"),
        "control_folder": str(_broker_folder / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A job whose worker died before acknowledging it (SIGKILL, power loss) goes back to its queue
    # after this many seconds, for another worker of that queue. Jobs are claimed atomically, so a
    # second delivery of one that is running or finished is a no-op; shorter than Celery's default
    # hour so a killed worker's reserved jobs are not held back for long.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("BROKER_VISIBILITY_TIMEOUT", 900, minimum=30)}
elif not CELERY_BROKER_URL.startswith(("amqp://", "memory://")):
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL/REDIS_URL must start with redis://, rediss://, amqp:// or filesystem:// (one machine only)"
    )
# The portal's own tables are the source of truth for job state; no result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "drportal.beat:PortalScheduler"
# Beat saves each entry's last run after every send (not every 3 minutes), so a standby beat
# that takes over the scheduler lease starts from what the previous one really sent.
CELERY_BEAT_SYNC_EVERY = 1
# The shared queue: system jobs (RPO checks, probes, reaping, pruning, beat's entry points) and
# every target that names no queue of its own. At least one worker must consume it.
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")
if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", CELERY_TASK_DEFAULT_QUEUE):
    raise ImproperlyConfigured("CELERY_TASK_DEFAULT_QUEUE: use letters, digits, '.', '_' and '-' (at most 100)")
# A backup queued on a queue that no live worker consumes says "waiting for a worker on queue X";
# after this many seconds in the queue it fails with that reason instead of waiting silently.
BACKUP_QUEUE_WAIT_SECONDS = envint("BACKUP_QUEUE_WAIT_SECONDS", 900, minimum=0)
# Only one beat schedules: it holds a lease in the portal's database, renewed at every tick.
# Another beat stays on standby and takes over once the lease is this old (the holder died).
BEAT_LEASE_SECONDS = envint("BEAT_LEASE_SECONDS", 30, minimum=5)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Backups ----------------------------------------------------------------
# Comma-separated age X25519 public keys; every backup is encrypted to all of them
# (the operational key plus an offline escrow key). Without any, backups refuse to run.
BACKUP_AGE_RECIPIENTS = envlist("BACKUP_AGE_RECIPIENTS")
for _recipient in BACKUP_AGE_RECIPIENTS:
    if not _recipient.startswith("age1"):
        raise ImproperlyConfigured(
            f"BACKUP_AGE_RECIPIENTS: {_recipient[:12]!r}... is not an age X25519 public key (age1...)"
        )
# The private key file(s), needed only to verify and restore.
BACKUP_AGE_IDENTITY_FILE = env("BACKUP_AGE_IDENTITY_FILE")
BACKUP_COMPRESSION = env("BACKUP_COMPRESSION", "zstd")
if BACKUP_COMPRESSION not in ("zstd", "gzip"):
    raise ImproperlyConfigured(f"BACKUP_COMPRESSION must be zstd or gzip, got {BACKUP_COMPRESSION!r}")
# 2, as backups.pipeline.DEFAULT_ZSTD_LEVEL (why: there, and bench/README.md "The size target").
BACKUP_ZSTD_LEVEL = envint("BACKUP_ZSTD_LEVEL", 2, minimum=-7, maximum=19)
# Where a run spools its encrypted stream before copying it to each location.
BACKUP_SPOOL_DIR = Path(env("BACKUP_SPOOL_DIR", str(PORTAL_HOME / "spool")))
# pgBackRest: one generated configuration file per target, readable by the cluster's OS user.
PGBACKREST_CONFIG_DIR = Path(env("PGBACKREST_CONFIG_DIR", str(PORTAL_HOME / "pgbackrest")))
PGBACKREST_BIN = env("PGBACKREST_BIN", "pgbackrest")
PG_BINDIR = env("PG_BINDIR", "/usr/lib/postgresql/15/bin")
PGBACKREST_PROCESS_MAX = envint("PGBACKREST_PROCESS_MAX", 2, minimum=1)
# lz4 level 1 is pgBackRest's fastest compression (backups and restores that keep up with pg_dump);
# zst makes smaller repositories for ~2-3x the CPU.
PGBACKREST_COMPRESS_TYPE = env("PGBACKREST_COMPRESS_TYPE", "lz4")
PGBACKREST_COMPRESS_LEVEL = envint("PGBACKREST_COMPRESS_LEVEL", 1, minimum=0)
# repo-bundle=y packs small files into bundles (fewer files to create, encrypt and checksum one by one).
PGBACKREST_REPO_BUNDLE = envbool("PGBACKREST_REPO_BUNDLE", False)
if PGBACKREST_COMPRESS_TYPE not in ("none", "gz", "bz2", "lz4", "zst"):
    raise ImproperlyConfigured("PGBACKREST_COMPRESS_TYPE must be one of none, gz, bz2, lz4, zst")
BACKUP_DEFAULT_LOCAL_DIR = Path(env("BACKUP_LOCAL_DIR", str(PORTAL_HOME / "backups")))
# Hard limit on one backup's source command (pg_dump etc.).
BACKUP_TIMEOUT_SECONDS = envint("BACKUP_TIMEOUT_SECONDS", 6 * 3600, minimum=1)
# Liveness of a running job. A job is failed by a reaper only when (1) it has reported no progress for
# longer than its phase allows and (2) its process is proven gone: on the same host the pid has ended
# (or was reused, by its start time); on another host the lease it renews with each progress report
# has expired. A slow but live job is never failed by someone else, and its lock (the target's one
# running row) is held until then. Silence limits per phase, in seconds:
#   dump: the source command (pg_dump may wait on a table lock), and restores;
BACKUP_STALE_SECONDS = envint("BACKUP_STALE_SECONDS", 300, minimum=1)
#   copy: bytes stop reaching a location. Keep it above the longest storage call with its retries
#   (3 attempts x (S3_CONNECT_TIMEOUT + S3_READ_TIMEOUT) = 390 s at the defaults);
BACKUP_COPY_STALE_SECONDS = envint("BACKUP_COPY_STALE_SECONDS", 600, minimum=1)
#   manifest: writing a location's manifest (one small storage call with its retries).
BACKUP_MANIFEST_STALE_SECONDS = envint("BACKUP_MANIFEST_STALE_SECONDS", 600, minimum=1)
# The name this machine signs its jobs' leases with (host:pid:start-time). Empty: the host name. Set it
# when two machines, or containers with their own process namespace, share a host name.
BACKUP_HOST_ID = env("BACKUP_HOST_ID")
# A second backup of a target queued while one runs waits this long between tries.
BACKUP_WAIT_RETRY_SECONDS = envint("BACKUP_WAIT_RETRY_SECONDS", 30, minimum=1)
BACKUP_PROGRESS_INTERVAL = float(envint("BACKUP_PROGRESS_INTERVAL_MS", 1000, minimum=50)) / 1000
# A separate PostgreSQL server for restore tests' scratch databases (the plan's "test
# environment"); empty = the backed-up database's own server.
RESTORE_TEST_DATABASE_URL = env("RESTORE_TEST_DATABASE_URL")
# Storage deadlines (backups/s3.py): a storage server that stops answering fails the run within
# BACKUP_STORAGE_TIMEOUT_SECONDS, naming the location. Each S3 request connects within
# S3_CONNECT_TIMEOUT and gives up when no byte moves for S3_READ_TIMEOUT, S3_MAX_ATTEMPTS times at
# most (shrunk to fit the storage deadline); a transfer (many requests) is cancelled when no byte
# has moved for the storage deadline.
BACKUP_STORAGE_TIMEOUT_SECONDS = envint("BACKUP_STORAGE_TIMEOUT_SECONDS", 300, minimum=2)
S3_CONNECT_TIMEOUT = envint("S3_CONNECT_TIMEOUT", 10, minimum=1)
S3_READ_TIMEOUT = envint("S3_READ_TIMEOUT", 60, minimum=1)
S3_MAX_ATTEMPTS = envint("S3_MAX_ATTEMPTS", 3, minimum=1, maximum=10)
# Multipart uploads: parts of this size, this many at a time (memory stays near part size x concurrency
# at most; parts are read from the spool file as they are sent). S3 refuses parts under 5 MiB.
BACKUP_S3_PART_SIZE_MB = envint("BACKUP_S3_PART_SIZE_MB", 16, minimum=5, maximum=5 * 1024)
BACKUP_S3_CONCURRENCY = envint("BACKUP_S3_CONCURRENCY", 2, minimum=1, maximum=16)
# What a killed run left in a location (temporary keys, unfinished multipart uploads) is removed by the
# reaper once it is this old, when no run of this portal is known to own it; a failed run's at once.
BACKUP_ORPHAN_GRACE_SECONDS = envint("BACKUP_ORPHAN_GRACE_SECONDS", 24 * 3600, minimum=60)

# --- Alerts -------------------------------------------------------------------
# Where alerts go besides the channels in the plan: a comma-separated list of
# addresses and a Slack-compatible incoming webhook URL.
ALERT_EMAIL_TO = envlist("ALERT_EMAIL_TO")
ALERT_WEBHOOK_URL = envsecret("ALERT_WEBHOOK_URL")
# While an objective stays breached, remind this often.
ALERT_REMINDER_SECONDS = envint("ALERT_REMINDER_SECONDS", 3600, minimum=60)
# The first grace after install: a new objective has this long (from its creation) to get its first good
# copy or ping (meanwhile "waiting for the first backup": still not safe on /health, but no breach alert or
# reminder), and a new plan document's overdue review is shown but not reminded by alert until then.
FIRST_ALERT_GRACE_SECONDS = envint("FIRST_ALERT_GRACE_SECONDS", 26 * 3600, minimum=0)
ALERT_WEBHOOK_TIMEOUT = envint("ALERT_WEBHOOK_TIMEOUT", 10, minimum=1)
# Alerts are delivered by a worker with retries: wait ALERT_RETRY_SECONDS, doubled per attempt (at most an hour),
# and give up after ALERT_DELIVERY_ATTEMPTS (the defaults keep trying for about five hours).
ALERT_RETRY_SECONDS = envint("ALERT_RETRY_SECONDS", 30, minimum=1)
ALERT_DELIVERY_ATTEMPTS = envint("ALERT_DELIVERY_ATTEMPTS", 12, minimum=1)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "dr-portal@localhost")
# SMTP when EMAIL_HOST is set; otherwise mail is written to the log (embedded default).
EMAIL_HOST = env("EMAIL_HOST")
EMAIL_PORT = envint("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envsecret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 20, minimum=1)
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)
# /health: a worker silent for this long counts as down; the newest backup older than this is unhealthy.
HEALTH_WORKER_MAX_SILENCE = envint("HEALTH_WORKER_MAX_SILENCE", 60, minimum=10)
HEALTH_BEAT_MAX_SILENCE = envint("HEALTH_BEAT_MAX_SILENCE", 120, minimum=10)
HEALTH_BACKUP_MAX_AGE = envint("HEALTH_BACKUP_MAX_AGE", 26 * 3600, minimum=60)

# Base URL of the portal, for links in alerts.
PORTAL_URL = env("PORTAL_URL", "http://127.0.0.1:8000").rstrip("/")

# Keys that encrypt credentials stored in the portal's own database (MultiFernet:
# the first encrypts, all decrypt, so keys rotate by prepending a new one).
FIELD_ENCRYPTION_KEYS = envlist("FIELD_ENCRYPTION_KEYS") or [
    _persistent_random("field_key", lambda: __import__("cryptography.fernet").fernet.Fernet.generate_key().decode())
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# --- Production hardening ------------------------------------------------------
# HTTPS=true (production behind TLS) turns on secure cookies, HTTPS redirects and HSTS;
# each can still be set on its own.
HTTPS = envbool("HTTPS", False)
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", HTTPS)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^health(/live)?$", r"^ping/"]  # probes and feeds on plain HTTP inside the network
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 8 * 3600, minimum=300)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
X_FRAME_OPTIONS = "DENY"
