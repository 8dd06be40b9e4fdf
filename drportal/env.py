"""Typed helpers for reading settings from the environment.

Every helper fails loudly with ``ImproperlyConfigured`` naming the variable, so a
typo in production stops start-up instead of silently falling back to a default.
``*_FILE`` variants (as in Docker secrets) are supported for secrets.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def envint(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def envlist(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def envsecret(name: str, default: str = "") -> str:
    """Read a secret from ``NAME`` or from the file named by ``NAME_FILE``."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_name}: {exc.strerror}") from None
    return os.environ.get(name, default)


BASE_DIR = Path(__file__).resolve().parent.parent
PORTAL_DATABASE_FILE = "portal.sqlite3"
# Commands that may run on a DRPORTAL_HOME with no portal in it: migrate creates the portal;
# the others read no data.
COMMANDS_WITHOUT_PORTAL = {
    "migrate",
    "check",
    "makemigrations",
    "collectstatic",
    "help",
    "version",
    "--help",
    "-h",
    "--version",
}


def portal_home() -> Path:
    """Where the embedded defaults keep their state (SQLite file, broker folder, demo backups)."""
    return Path(env("DRPORTAL_HOME", str(BASE_DIR / "var"))).expanduser().resolve()


def refuse_empty_home(command: str) -> None:
    """Exit with one line if the portal would start on the embedded SQLite default of a DRPORTAL_HOME
    that holds no portal database: it would quietly make a second, empty portal there instead of
    using the one `make run` set up (and then fail on missing tables)."""
    if env("DATABASE_URL") or env("DJANGO_SETTINGS_MODULE", "drportal.settings") != "drportal.settings":
        return
    home = portal_home()
    if command in COMMANDS_WITHOUT_PORTAL or (home / PORTAL_DATABASE_FILE).is_file():
        return
    sys.exit(
        f"DRPORTAL_HOME={home} holds no portal database ({PORTAL_DATABASE_FILE}); point DRPORTAL_HOME at the "
        "portal's folder (`make run` writes var/env: source it), set DATABASE_URL, or create a portal there "
        "with `manage.py migrate`"
    )
