"""The phases of a backup (dump, compress/encrypt into the spool, copy, manifest) and how a failure in each is told.

Every message names the phase, the folder or location, and the cause, in words an operator can act
on: "compress/encrypt: the spool folder /var/spool is full (No space left on device) while writing
run #7's encrypted dump", never a bare "I/O error" or a wrapped exception with a traceback.
"""

from __future__ import annotations

import errno
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from ..engines import SourceError
from ..locations import LocationError
from ..pipeline import PipelineError, StreamError

# A disk that is full, or a quota that is used up, is told as "full".
_FULL = (errno.ENOSPC, errno.EDQUOT)


class BackupFailure(Exception):
    """A backup failed in a known phase; the message is complete and safe to show."""


def os_cause(exc: OSError) -> str:
    """The cause of an OSError in words, with the file it concerns when it names one."""
    cause = exc.strerror or str(exc)
    return f"{cause} ({exc.filename})" if exc.filename else cause


def _spool_problem(run, exc: OSError, doing: str) -> str:
    folder = settings.BACKUP_SPOOL_DIR
    if exc.errno in _FULL:
        return (
            f"compress/encrypt: the spool folder {folder} is full ({exc.strerror}) while {doing}; "
            "free space there or point BACKUP_SPOOL_DIR at a larger disk"
        )
    return f"compress/encrypt: cannot write to the spool folder {folder} while {doing}: {exc.strerror or exc}"


def create_spool_file(run) -> tuple[int, Path]:
    """A new spool file for ``run`` (its descriptor and path), or a BackupFailure naming the spool folder."""
    folder = settings.BACKUP_SPOOL_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"run{run.pk}-", suffix=".age", dir=folder)
    except OSError as exc:
        if exc.errno in _FULL:
            raise BackupFailure(_spool_problem(run, exc, f"creating run #{run.pk}'s spool file")) from None
        raise BackupFailure(
            f"compress/encrypt: cannot create a file in the spool folder {folder}: {exc.strerror or exc}"
        ) from None
    return fd, Path(name)


@contextmanager
def dumping_into_spool(run) -> Iterator[None]:
    """Around the dump → compress → encrypt → spool file loop: each failure told by the phase it belongs to."""
    try:
        yield
    except SourceError as exc:
        raise BackupFailure(f"dump: {exc}") from None
    except StreamError as exc:
        raise BackupFailure(_stream_problem(run, exc)) from None
    except PipelineError as exc:
        raise BackupFailure(f"compress/encrypt: {exc}") from None
    except OSError as exc:  # e.g. the spool file's last buffer, written when it is closed
        earlier = exc.__context__  # closing a file that failed to write fails again: tell the first failure
        if isinstance(earlier, StreamError):
            raise BackupFailure(_stream_problem(run, earlier)) from None
        raise BackupFailure(_spool_problem(run, exc, f"writing run #{run.pk}'s encrypted dump")) from None


def _stream_problem(run, exc: StreamError) -> str:
    if exc.side == "source":
        return f"dump: reading the source failed: {os_cause(exc.cause)}"
    return _spool_problem(run, exc.cause, f"writing run #{run.pk}'s encrypted dump ({exc.done} bytes written)")


def copy_problem(phase: str, location, exc: Exception) -> str:
    """A failed copy or manifest write in one location: "copy: location NAME: cause"."""
    if isinstance(exc, LocationError):
        return f"{phase}: {exc}"  # its message starts with "location NAME:"
    if isinstance(exc, OSError):
        return f"{phase}: location {location.name}: {os_cause(exc)}"
    return f"{phase}: location {location.name}: {type(exc).__name__}: {exc}"
