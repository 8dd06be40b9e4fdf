"""What the backups app's management commands share."""

from __future__ import annotations

import argparse
import getpass
import math
import os
import socket


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (a limit or a count), refused in one line otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds above 0 (not nan or inf), refused in one line otherwise."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


def command_line_user() -> str:
    """The person running this command, as user@host, recorded on the jobs it starts.

    Under sudo the account is often a shared service user, so the person who ran sudo is
    named too: "alice as drportal@db-host".
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError, ImportError):
        # getpass tries LOGNAME, USER, LNAME, USERNAME, then the password database; a container
        # running as a uid with neither still ran the job, so say which uid (KeyError before
        # Python 3.13, OSError since; ImportError where there is no pwd module).
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown user"
    sudo_user = os.environ.get("SUDO_USER", "")
    if sudo_user and sudo_user != user:
        user = f"{sudo_user} as {user}"
    return f"{user}@{socket.gethostname()}"[:200]
