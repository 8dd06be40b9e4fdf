"""Walking a local folder tree for the files engine: names, counts, tar entries, and reads a backup can stop.

A local folder is written into the archive in sorted order, folders before their
contents, symlinks stored as symlinks and never followed; the same counts a backup
records are counted again on a restored copy.
"""

from __future__ import annotations

import logging
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..base import SourceError

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
# Threads blocked on S3 get this long past the read timeout before we stop waiting for them.
JOIN_GRACE_SECONDS = 30


def local_folder(location: str) -> Path:
    """An absolute path or ``file:///path`` → the folder's path."""
    path = urlsplit(location).path if location.startswith("file:") else location
    folder = Path(path).expanduser()
    if not folder.is_absolute():
        raise SourceError("a folder must be an absolute path or file:///absolute/path")
    return Path(os.path.normpath(folder))


def safe_member_name(name: str) -> str:
    """A relative archive name with no ``..``, ``.`` or empty parts, or SourceError."""
    clean = name.rstrip("/")
    parts = clean.split("/")
    if not clean or clean.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise SourceError(f"refusing unsafe path {name!r} (absolute, empty or with . or .. parts)")
    return clean


def ancestors(name: str) -> Iterator[str]:
    """``a/b/c`` → ``a``, ``a/b``."""
    parts = name.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


# --- counting -------------------------------------------------------------------------------


@dataclass
class TreeCounts:
    files: int = 0
    directories: int = 0
    bytes: int = 0
    symlinks: int = 0

    def tables(self) -> dict[str, int]:
        """What a backup records: symlinks only when there are any, so most manifests stay at three."""
        tables = {"files": self.files, "directories": self.directories, "bytes": self.bytes}
        if self.symlinks:
            tables["symlinks"] = self.symlinks
        return tables

    def lookup(self, names: list[str]) -> dict[str, int]:
        """The counts a restore is asked for (all of them when none are named)."""
        every = {**self.tables(), "symlinks": self.symlinks}
        return {name: every.get(name, -1) for name in names} if names else self.tables()


def _raise(exc: OSError) -> None:
    raise exc


def count_folder(root: Path) -> TreeCounts:
    """Count what a folder holds below ``root`` the way a backup of it counts (links not followed)."""
    counts = TreeCounts()
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
        for name in [*dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISLNK(st.st_mode):
                counts.symlinks += 1
            elif stat.S_ISDIR(st.st_mode):
                counts.directories += 1
            elif stat.S_ISREG(st.st_mode):
                counts.files += 1
                counts.bytes += st.st_size
    return counts


# --- reading, stoppably ----------------------------------------------------------------------


class ProducerStopped(Exception):
    """Raised in the producer thread when the backup must end: the deadline passed or the pipeline gave up."""


def _shut_down(body) -> None:
    """End a read blocked on an S3 object's body, from another thread."""
    # botocore's StreamingBody wraps a urllib3 response, whose shutdown() shuts the socket for reading without
    # taking the locks the blocked read holds (closing the body would wait for that read to end).
    raw = getattr(body, "_raw_stream", None)
    try:
        raw.shutdown()
    except (AttributeError, NotImplementedError, ValueError, RuntimeError, OSError):
        pass  # finished or released meanwhile: the producer sees the stop at its next read


class StopSignal:
    """Tells the producer thread to stop, and cuts short the S3 read it may be blocked in.

    A flag checked between reads is not enough on its own: a source that trickles
    bytes never trips the socket's read timeout, and one read of a chunk can last
    for hours. So the body being read is registered here and shut down on stop.
    """

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._body = None

    def check(self) -> None:
        """Raise ProducerStopped once ``stop()`` was called."""
        if self._stopped.is_set():
            raise ProducerStopped

    @contextmanager
    def reading(self, body) -> Iterator[None]:
        """Register ``body`` as the read to cut short while the block runs."""
        with self._lock:
            self.check()
            self._body = body
        try:
            yield
        finally:
            with self._lock:
                self._body = None

    def stop(self) -> None:
        """Make the next ``check()`` raise and end the registered read now; safe to call more than once."""
        with self._lock:
            self._stopped.set()
            if self._body is not None:
                _shut_down(self._body)


class ExactReader:
    """Reads until ``size`` bytes or the end: tarfile treats a short read as a truncated file.

    With a ``stop`` signal it raises ProducerStopped between reads once the backup must end.
    """

    def __init__(self, raw, stop: StopSignal | None = None) -> None:
        self.raw = raw
        self.stop = stop

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.raw.read()
        chunks, wanted = [], size
        while wanted > 0:
            if self.stop is not None:
                self.stop.check()
            chunk = self.raw.read(wanted)
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)


def _entry(arcname: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mtime = st.st_mtime
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    return info


def _add_path(tar: tarfile.TarFile, path: str, arcname: str, counts: TreeCounts, stop: StopSignal) -> None:
    """Add one folder entry, file or symlink (never followed); vanished entries are skipped."""
    stop.check()
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        logger.info("skipping %s: removed during the backup", path)
        return
    info = _entry(arcname, st)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        counts.directories += 1
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        tar.addfile(info)
        counts.symlinks += 1
    elif stat.S_ISREG(st.st_mode):
        try:
            # O_NOFOLLOW: a file swapped for a symlink since lstat is refused, not followed out of the tree.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            logger.info("skipping %s: removed during the backup", path)
            return
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(handle.fileno())
            info = _entry(arcname, st)
            info.size = st.st_size
            try:
                tar.addfile(info, ExactReader(handle, stop))
            except OSError as exc:
                if exc.args == ("unexpected end of data",):
                    raise SourceError(f"{path} shrank while it was read; run the backup again") from None
                raise
        counts.files += 1
        counts.bytes += info.size
    else:
        logger.warning("skipping %s: not a regular file, folder or symbolic link", path)


def write_folder(tar: tarfile.TarFile, root: Path, counts: TreeCounts, stop: StopSignal) -> None:
    """Walk ``root`` in sorted order, folders before their contents, links stored as links."""
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
        # os.walk lists symlinks to folders among dirnames but (followlinks=False) never enters them.
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if d not in links)
        relative = os.path.relpath(dirpath, root)
        if relative != ".":
            _add_path(tar, dirpath, Path(relative).as_posix(), counts, stop)
        for name in sorted([*filenames, *links]):
            arcname = name if relative == "." else Path(relative, name).as_posix()
            _add_path(tar, os.path.join(dirpath, name), arcname, counts, stop)
