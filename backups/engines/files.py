"""Files: a local folder or an S3 bucket prefix, streamed as one PAX tar archive.

A producer thread writes the archive into an ``os.pipe`` while the pipeline
reads the other end, so memory stays constant whatever the size of the tree:
files and objects are copied into the archive a chunk at a time and the bucket
listing is paginated. Plain tar keeps the no-portal path to standard tools:
``age -d | zstd -d | tar -x``.

The archive holds paths relative to the source root; directories (including
empty ones) have their own entries, symlinks are stored as symlinks and never
followed. ``finish()`` reports ``files``, ``directories`` and ``bytes`` (and
``symlinks`` when there are any), which a restore counts again on the copy.

Like ``pg_dump``, reading the source is bounded by ``BACKUP_TIMEOUT_SECONDS``:
the pipeline stops waiting at the deadline, the producer thread is stopped
(its S3 read cut short), and the run fails without storing anything.
"""

from __future__ import annotations

import logging
import os
import secrets
import select
import shutil
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from .. import s3
from ..errors import LocationError
from .base import Dump, Place, SourceError, path_place, resolve_source, s3_place
from .restorers import RestorePlan, Restorer, _stamp, swap_into_place

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
# Threads blocked on S3 get this long past the read timeout before we stop waiting for them.
JOIN_GRACE_SECONDS = 30


# --- sources and destinations --------------------------------------------------------------


@dataclass(frozen=True)
class S3Prefix:
    bucket: str
    prefix: str  # "" for the whole bucket, else ends with "/"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3(url: str) -> S3Prefix:
    """``s3://bucket/prefix/`` → bucket and a prefix that ends with ``/`` (a folder, never a key stem)."""
    parts = urlsplit(url)
    if not parts.netloc:
        raise SourceError("an S3 source or destination must look like s3://bucket/prefix/")
    prefix = parts.path.strip("/")
    return S3Prefix(parts.netloc, f"{prefix}/" if prefix else "")


def local_folder(location: str) -> Path:
    """An absolute path or ``file:///path`` → the folder's path."""
    path = urlsplit(location).path if location.startswith("file:") else location
    folder = Path(path).expanduser()
    if not folder.is_absolute():
        raise SourceError("a folder must be an absolute path or file:///absolute/path")
    return Path(os.path.normpath(folder))


def s3_client(endpoint_url: str = ""):
    """The one S3 client (``backups/s3.py``) with the worker's own AWS_* credentials and bounded timeouts."""
    try:
        return s3.client(endpoint_url=endpoint_url)
    except LocationError as exc:  # e.g. "Invalid endpoint": configuration, safe to show
        raise SourceError(str(exc)) from None


def s3_problem(exc: BaseException, where: S3Prefix, endpoint_url: str) -> SourceError:
    """A SourceError for an S3 failure, naming the prefix and endpoint (configuration, never a secret)."""
    return SourceError(f"{where.url}: {s3.cause(exc, endpoint_url=endpoint_url, bucket=where.bucket, where=where.url)}")


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


def count_s3(client, where: S3Prefix) -> TreeCounts:
    """Count objects under a prefix: folders are the key prefixes in between, plus ``name/`` markers."""
    counts = TreeCounts()
    folders: set[str] = set()
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=where.bucket, Prefix=where.prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(where.prefix) :]
            if not name:
                continue
            if name.endswith("/"):
                folders.add(name.rstrip("/"))
            else:
                counts.files += 1
                counts.bytes += obj["Size"]
            folders.update(ancestors(name.rstrip("/")))
    counts.directories = len(folders)
    return counts


# --- writing the archive --------------------------------------------------------------------


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


class _ExactReader:
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
                tar.addfile(info, _ExactReader(handle, stop))
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


def write_bucket(tar: tarfile.TarFile, client, where: S3Prefix, counts: TreeCounts, stop: StopSignal) -> None:
    """Stream every object under the prefix into the archive, with an entry for every folder."""
    folders: set[str] = set()
    seen_any = False
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=where.bucket, Prefix=where.prefix):
        for obj in page.get("Contents", []):
            stop.check()
            seen_any = True
            name = obj["Key"][len(where.prefix) :]
            if not name:
                continue  # the prefix's own folder marker
            is_folder = name.endswith("/")
            try:
                name = safe_member_name(name)
            except SourceError as exc:
                raise SourceError(f"object key {obj['Key']!r} cannot be archived safely: {exc}") from None
            # S3 has no folders: give every key prefix its entry, so empty and nested ones restore alike.
            for folder in [*ancestors(name), *([name] if is_folder else [])]:
                if folder not in folders:
                    folders.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, obj["LastModified"].timestamp()
                    tar.addfile(info)
                    counts.directories += 1
            if is_folder:
                continue
            try:
                response = client.get_object(Bucket=where.bucket, Key=obj["Key"])
            except Exception as exc:  # botocore raises many unrelated classes
                if s3.is_not_found(exc):
                    logger.info("skipping %s: deleted during the backup", obj["Key"])
                    continue
                raise
            info = tarfile.TarInfo(name)
            info.size, info.mode = response["ContentLength"], 0o644
            info.mtime = response["LastModified"].timestamp()
            body = response["Body"]
            try:
                with stop.reading(body):
                    tar.addfile(info, _ExactReader(body, stop))
            except OSError as exc:
                if exc.args == ("unexpected end of data",):
                    raise SourceError(f"object {obj['Key']} ended early while it was read") from None
                raise
            finally:
                body.close()
            counts.files += 1
            counts.bytes += info.size
    if not seen_any:
        # A typo in the prefix must fail the run, not store an empty archive that looks fine.
        raise SourceError(f"{where.url} holds no objects; check the bucket and prefix")


# --- the dump -------------------------------------------------------------------------------


class _DeadlineReader:
    """The pipe's read end as the pipeline sees it: it waits for the producer no later than a deadline.

    It waits in ``poll()``, not in ``read()``, so the deadline holds whatever the
    producer is stuck in. At the deadline it calls ``on_deadline`` and reads as
    the end of the stream, as a killed ``pg_dump`` does; ``finish()`` then fails the run.
    """

    def __init__(self, fd: int, deadline: float, on_deadline: Callable[[], None]) -> None:
        self.fd = fd
        self.deadline = deadline
        self.on_deadline = on_deadline
        self.expired = False
        self.closed = False
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def _wait_for_data(self) -> bool:
        """True when there is data or the end of the stream to read; False once the deadline passed."""
        while (remaining := self.deadline - time.monotonic()) > 0:
            # Waits of at most a minute: poll() takes milliseconds as a C int.
            if self._poll.poll(min(remaining, 60) * 1000):
                return True
        return False

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all when negative), fewer only at the end of the stream or the deadline."""
        chunks: list[bytes] = []
        wanted = size if size is not None and size >= 0 else float("inf")
        while wanted > 0 and not self.expired:
            if not self._wait_for_data():
                self.expired = True
                self.on_deadline()
                break
            chunk = os.read(self.fd, int(min(wanted, CHUNK)))
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._poll.unregister(self.fd)
            os.close(self.fd)


class FilesDump(Dump):
    """A tar archive written by a producer thread into a pipe; ``stream`` is the pipe's read end.

    Bounded by ``BACKUP_TIMEOUT_SECONDS`` from the start, like every engine's source.
    """

    format = "tar"
    extension = ".tar"

    def __init__(self, source: str, *, endpoint_url: str = "") -> None:
        self.endpoint_url = endpoint_url
        self.counts = TreeCounts()
        self.error: BaseException | None = None
        self.stop = StopSignal()
        self.timeout = settings.BACKUP_TIMEOUT_SECONDS
        if source.startswith("s3://"):
            self.where: S3Prefix | Path = parse_s3(source)
            client = s3_client(endpoint_url)
            self._write: Callable[[tarfile.TarFile], None] = lambda tar: write_bucket(
                tar, client, self.where, self.counts, self.stop
            )
        else:
            self.where = local_folder(source)
            if not self.where.is_dir():
                raise SourceError(f"folder {self.where} does not exist or is not a folder")
            self._write = lambda tar: write_folder(tar, self.where, self.counts, self.stop)
        read_fd, write_fd = os.pipe()
        self.stream = _DeadlineReader(read_fd, time.monotonic() + self.timeout, on_deadline=self.stop.stop)
        self._out = os.fdopen(write_fd, "wb")
        self._thread = threading.Thread(target=self._produce, name="files-dump", daemon=True)
        self._thread.start()

    @property
    def source_label(self) -> str:
        """The folder or ``s3://bucket/prefix/`` read, for messages (neither holds a secret)."""
        return self.where.url if isinstance(self.where, S3Prefix) else str(self.where)

    def _produce(self) -> None:
        try:
            # Only a complete walk gets the end-of-archive marker: on an exception TarFile's __exit__
            # closes the stream without it, and finish() fails the run.
            with tarfile.open(fileobj=self._out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                self._write(tar)
        except BaseException as exc:  # kept for finish(): the pipeline only sees the stream end
            self.error = exc
        finally:
            try:
                self._out.close()
            except OSError:
                pass

    def _describe(self, exc: BaseException) -> SourceError:
        if isinstance(exc, SourceError):
            return exc
        if isinstance(self.where, S3Prefix):
            return s3_problem(exc, self.where, self.endpoint_url)
        if isinstance(exc, PermissionError):
            return SourceError(f"cannot read {exc.filename or self.where}: permission denied")
        if isinstance(exc, FileNotFoundError):
            return SourceError(f"{exc.filename or self.where} disappeared during the backup")
        if isinstance(exc, OSError):
            return SourceError(f"reading {exc.filename or self.where} failed: {exc.strerror or exc}")
        return SourceError(f"reading {self.where} failed: {type(exc).__name__}: {exc}")

    def finish(self) -> dict:
        if self.stream.expired:
            self._end_producer()
            raise SourceError(
                f"reading {self.source_label} did not finish within {self.timeout:g} s "
                "(BACKUP_TIMEOUT_SECONDS) and was stopped"
            )
        self._thread.join()
        if self.error is not None:
            raise self._describe(self.error)
        return {"tables": self.counts.tables()}

    def abort(self) -> None:
        self._end_producer()

    def _end_producer(self) -> None:
        """Stop the producer and wait for it, boundedly: it must not outlive the run by more than one S3 read."""
        self.stop.stop()
        # Closing the read end also ends a producer blocked writing into a full pipe (EPIPE).
        self.stream.close()
        self._thread.join(timeout=settings.S3_READ_TIMEOUT + JOIN_GRACE_SECONDS)
        if self._thread.is_alive():
            logger.warning("the thread reading %s has not stopped yet; it ends at its next read", self.source_label)


class FilesEngine:
    name = "files"
    label = "Files: a local folder or an S3 bucket prefix (tar)"
    uses_endpoint = True

    def dump(self, source: str, *, endpoint_url: str = "") -> Dump:
        return FilesDump(source, endpoint_url=endpoint_url)

    def places(self, source: str) -> list[Place]:
        """The live folder or S3 prefix (for the restore guards)."""
        source = resolve_source(source)
        if source.startswith("s3://"):
            where = parse_s3(source)
            return [s3_place(where.bucket, where.prefix)]
        return [path_place(local_folder(source))]

    def local_path(self, source: str) -> Path | None:
        """The folder this source reads on the worker's disk; None for an S3 prefix."""
        return None if source.startswith("s3://") else local_folder(source)


# --- restoring ------------------------------------------------------------------------------


class _PipeConsumer:
    """A thread that reads a pipe with ``work``; the restore writes into ``writer``.

    When ``work`` fails its end is closed, so the writer gets EPIPE instead of
    blocking on a full pipe; ``finish()`` then hands back the real error.
    """

    def __init__(self, work: Callable[[BinaryIO], None], name: str) -> None:
        read_fd, write_fd = os.pipe()
        self.reader = os.fdopen(read_fd, "rb")
        self.writer = os.fdopen(write_fd, "wb")
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[BinaryIO], None]) -> None:
        try:
            work(self.reader)
            # tar stops at its end-of-archive marker; read the padding after it so the writer never blocks.
            while self.reader.read(CHUNK):
                pass
        except BaseException as exc:
            self.error = exc
        finally:
            self.reader.close()

    def finish(self) -> BaseException | None:
        try:
            self.writer.close()
        except OSError:  # EPIPE: the consumer already stopped, and its error says why
            pass
        self._thread.join()
        return self.error

    def abort(self) -> None:
        try:
            self.writer.close()
        except OSError:
            pass
        self._thread.join(timeout=settings.S3_READ_TIMEOUT + JOIN_GRACE_SECONDS)


def _load_problem(exc: BaseException) -> SourceError:
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, tarfile.FilterError):
        return SourceError(f"the archive holds an unsafe entry, refused: {exc}")
    if isinstance(exc, tarfile.TarError):
        return SourceError(f"the archive did not extract: {exc}")
    if isinstance(exc, OSError):
        return SourceError(f"extracting the archive failed: {exc.strerror or exc} ({exc.filename or ''})")
    return SourceError(f"extracting the archive failed: {type(exc).__name__}: {exc}")


class TarRestorer(Restorer):
    """Extract into a new folder beside the destination, count it, then rename it into place.

    An ``s3://`` destination gets an :class:`S3TarRestorer` instead (except for
    a restore test, which always extracts into a temporary folder).
    """

    format = "tar"
    uses_endpoint = True

    def __new__(cls, destination: str, **kwargs):
        if cls is TarRestorer and destination.startswith("s3://") and not kwargs.get("scratch_prefix"):
            return super().__new__(S3TarRestorer)
        return super().__new__(cls)

    def __init__(self, destination: str, *, scratch_prefix: str | None = None, endpoint_url: str = "") -> None:
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
        if scratch_prefix:
            # A restore test never swaps: it extracts into a temporary folder whatever the destination.
            self.scratch = Path(tempfile.gettempdir()) / f"{scratch_prefix}_{stamp}"
            self.path = self.scratch
        else:
            self.path = local_folder(destination)
            if self.path.parent == self.path:
                raise SourceError("refusing to restore over the root folder")
            self.scratch = self.path.with_name(f".{self.path.name}.restoring-{stamp}")
        self.rollback: Path | None = self.path.with_name(f"{self.path.name}.pre_restore_{_stamp()}")
        self.consumer: _PipeConsumer | None = None

    def _extract(self, stream: BinaryIO) -> None:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            # "data": no absolute paths, no .., no links out of the folder, no devices, no owners.
            tar.extractall(self.scratch, filter="data")

    def places(self) -> list[Place]:
        return [path_place(self.path)]

    def plan(self) -> RestorePlan:
        if self.path.exists() and not self.path.is_dir():
            raise SourceError(f"{self.path} exists and is not a folder")
        exists = self.path.is_dir()
        return RestorePlan(
            destination=str(self.path),
            replaces=f"folder {self.path} (kept as {self.rollback.name})" if exists else None,
            rollback_name=str(self.rollback) if exists else None,
        )

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir()
        self.consumer = _PipeConsumer(self._extract, "tar-restore")

    def sink(self) -> BinaryIO:
        assert self.consumer is not None
        return self.consumer.writer

    def finish_load(self) -> None:
        assert self.consumer is not None
        error = self.consumer.finish()
        if error is not None:
            raise _load_problem(error)

    def count_rows(self, tables: list[str]) -> dict[str, int]:
        return count_folder(self.scratch).lookup(tables)

    def swap(self) -> str:
        assert self.rollback is not None
        self.rollback = swap_into_place(self.scratch, self.path, self.rollback)
        if self.rollback is None:
            return f"{self.path} did not exist before; nothing to roll back"
        return (
            f"previous folder kept as {self.rollback}. "
            f"To roll back: mv {self.path} {self.path}.bad && mv {self.rollback} {self.path}"
        )

    @property
    def rollback_name(self) -> str | None:
        return str(self.rollback) if self.rollback else None

    def discard(self) -> None:
        if self.consumer is not None:
            self.consumer.abort()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def recover(self, scratch: str, rollback: str | None) -> list[str]:
        done = []
        if rollback and not self.path.exists() and Path(rollback).is_dir():
            os.replace(rollback, self.path)
            done.append(f"moved {rollback} back to {self.path}")
        if scratch and Path(scratch).is_dir() and Path(scratch) != self.path:
            shutil.rmtree(scratch)
            done.append(f"removed the half-restored folder {scratch}")
        return done


# User metadata on every object a restore uploads, valued with that restore's token (S3 lowercases the name).
RESTORE_MARKER = "drportal-restore"
RESTORE_TOKEN_FRAGMENT = "restore="


def restore_token(scratch: str) -> str:
    """The token in a scratch name ``s3://bucket/prefix/#restore=<token>``, or "" (e.g. a name from before tokens)."""
    fragment = urlsplit(scratch).fragment
    return fragment[len(RESTORE_TOKEN_FRAGMENT) :] if fragment.startswith(RESTORE_TOKEN_FRAGMENT) else ""


class S3TarRestorer(TarRestorer):
    """Upload into an empty S3 prefix: nothing is replaced, so the upload is the restore.

    A prefix that already holds objects is refused ("restore to an empty prefix,
    then switch"), which keeps live data untouched by construction; ``discard()``
    deletes exactly the objects this restore uploaded. Every object it uploads
    carries this restore's token in its metadata, so after a killed process
    ``recover()`` can delete those and only those.
    """

    def __init__(self, destination: str, *, scratch_prefix: str | None = None, endpoint_url: str = "") -> None:
        self.where = parse_s3(destination)
        self.endpoint_url = endpoint_url
        self.token = secrets.token_hex(8)
        # Recorded as the restore's scratch name before anything is uploaded: the token in it is how a reaper,
        # with no list of what a dead process uploaded, tells this restore's objects from anyone else's.
        self.scratch = f"{self.where.url}#{RESTORE_TOKEN_FRAGMENT}{self.token}"
        self.rollback = None
        self.uploaded: list[str] = []
        self.consumer = None
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = s3_client(self.endpoint_url)
        return self._client

    def _refuse_unless_empty(self) -> None:
        try:
            page = self.client.list_objects_v2(Bucket=self.where.bucket, Prefix=self.where.prefix, MaxKeys=1)
        except Exception as exc:  # botocore raises many unrelated classes
            raise s3_problem(exc, self.where, self.endpoint_url) from None
        if page.get("KeyCount", len(page.get("Contents", []))):
            raise SourceError(f"{self.where.url} already holds objects; restore to an empty prefix, then switch to it")

    @property
    def _marker(self) -> dict[str, str]:
        return {RESTORE_MARKER: self.token}

    def _upload(self, stream: BinaryIO) -> None:
        # The portal's one transfer configuration: bounded part size and concurrency, so bounded memory.
        transfer = s3.transfer_config()
        files: list[str] = []
        folders: set[str] = set()
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = safe_member_name(member.name)
                if member.isdir():
                    folders.add(name)
                    continue
                if not member.isreg():
                    raise SourceError(f"{name} is not a regular file; S3 cannot hold it, restore to a folder instead")
                key = self.where.prefix + name
                body = tar.extractfile(member)
                self.client.upload_fileobj(
                    _ExactReader(body), self.where.bucket, key, ExtraArgs={"Metadata": self._marker}, Config=transfer
                )
                self.uploaded.append(key)
                files.append(name)
        # Empty folders exist in S3 only as zero-byte "name/" markers; the others are implied by their keys.
        implied = {parent for name in [*files, *folders] for parent in ancestors(name)}
        for folder in sorted(folders - implied - set(files)):
            key = f"{self.where.prefix}{folder}/"
            self.client.put_object(Bucket=self.where.bucket, Key=key, Body=b"", Metadata=self._marker)
            self.uploaded.append(key)

    def places(self) -> list[Place]:
        return [s3_place(self.where.bucket, self.where.prefix)]

    def plan(self) -> RestorePlan:
        self._refuse_unless_empty()
        return RestorePlan(destination=self.where.url, replaces=None, rollback_name=None)

    def prepare(self) -> None:
        self._refuse_unless_empty()  # again: something may have arrived since the plan was shown
        self.consumer = _PipeConsumer(self._upload, "tar-restore-s3")

    def finish_load(self) -> None:
        assert self.consumer is not None
        error = self.consumer.finish()
        if error is not None:
            if not isinstance(error, (SourceError, tarfile.TarError, OSError)):
                raise s3_problem(error, self.where, self.endpoint_url)
            raise _load_problem(error)

    def count_rows(self, tables: list[str]) -> dict[str, int]:
        try:
            counts = count_s3(self.client, self.where)
        except Exception as exc:
            raise s3_problem(exc, self.where, self.endpoint_url) from None
        return counts.lookup(tables)

    def swap(self) -> str:
        return f"restored into {self.where.url}; nothing was replaced, so nothing to roll back (delete it to undo)"

    def discard(self) -> None:
        if self.consumer is not None:
            self.consumer.abort()
        keys = list(self.uploaded)
        try:
            for start in range(0, len(keys), 1000):
                batch = [{"Key": key} for key in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=self.where.bucket, Delete={"Objects": batch, "Quiet": True})
        except Exception as exc:  # cleaning up must not hide the reason the restore failed
            logger.warning("could not delete the %d object(s) uploaded to %s: %s", len(keys), self.where.url, exc)

    def recover(self, scratch: str, rollback: str | None) -> list[str]:
        token = restore_token(scratch)
        if not token:
            # Nothing tells this restore's objects apart, and deleting by prefix could remove objects written since.
            if not scratch:
                return []
            where = self.where.url
            return [f"objects the interrupted restore uploaded under {where} were left; delete them, then retry"]
        try:
            return self._delete_marked(token)
        except Exception as exc:  # botocore raises many unrelated classes
            raise s3_problem(exc, self.where, self.endpoint_url) from None

    def _marked_etag(self, key: str, token: str) -> str | None:
        """The object's ETag when it carries ``token``; None when it does not, or is gone."""
        try:
            head = self.client.head_object(Bucket=self.where.bucket, Key=key)
        except Exception as exc:  # botocore raises many unrelated classes
            if s3.is_not_found(exc):
                return None
            raise
        return head["ETag"] if head.get("Metadata", {}).get(RESTORE_MARKER) == token else None

    def _delete_marked(self, token: str) -> list[str]:
        """Delete the objects under the prefix that carry ``token``; report what was removed and what was left."""
        marked: list[dict[str, str]] = []
        others = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.where.bucket, Prefix=self.where.prefix
        ):
            for obj in page.get("Contents", []):
                etag = self._marked_etag(obj["Key"], token)
                if etag is None:
                    others += 1
                else:
                    marked.append({"Key": obj["Key"], "ETag": etag})
        failed: list[dict] = []
        for start in range(0, len(marked), 1000):
            # The ETag makes each delete conditional: an object overwritten since its HEAD is someone else's now.
            batch = marked[start : start + 1000]
            response = self.client.delete_objects(Bucket=self.where.bucket, Delete={"Objects": batch, "Quiet": True})
            failed.extend(response.get("Errors", []))
        removed = len(marked) - len(failed)
        done = [
            f"removed {removed} object(s) the interrupted restore had uploaded under {self.where.url} "
            f"and left the {others} other object(s) there untouched"
        ]
        if failed:
            first = failed[0]
            done.append(
                f"{len(failed)} of its object(s) were not removed (changed since it was checked, or refused), "
                f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".rstrip()
            )
        done.extend(self._unfinished_uploads())
        return done

    def _unfinished_uploads(self) -> list[str]:
        """A killed multipart upload leaves parts that are billed but listed nowhere else: say so."""
        try:
            unfinished = self.client.list_multipart_uploads(Bucket=self.where.bucket, Prefix=self.where.prefix)
        except Exception as exc:  # the objects are dealt with; a missing permission here must not hide that
            problem = s3_problem(exc, self.where, self.endpoint_url)
            return [f"could not check for unfinished multipart uploads: {problem}"]
        count = len(unfinished.get("Uploads", []))
        if not count:
            return []
        # S3 lists unfinished uploads without their metadata, so there is no telling whose they are.
        return [
            f"{count} unfinished multipart upload(s) under {self.where.url} were left, as they may not be this "
            "restore's; a lifecycle rule with AbortIncompleteMultipartUpload clears them"
        ]
