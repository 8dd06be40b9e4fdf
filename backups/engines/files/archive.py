"""The files engine's dump: a PAX tar archive written by a producer thread into a pipe.

Compression (zstd) and encryption (age) happen downstream in ``backups/pipeline.py``, as for
every engine; this module only makes the tar stream and bounds how long reading the source takes.
"""

from __future__ import annotations

import logging
import os
import select
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from ..base import Dump, SourceError
from .bucket import S3Prefix, parse_s3, s3_client, s3_problem, write_bucket
from .tree import CHUNK, JOIN_GRACE_SECONDS, StopSignal, TreeCounts, local_folder, write_folder

logger = logging.getLogger(__name__)


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
