"""The one way the portal talks to S3: a client factory, the transfer settings, bounded transfers, one error mapper.

Every S3 call of the backup locations and of the files engine goes through here, so
the timeouts, retries and wording are decided once:

- **Each request** connects within ``S3_CONNECT_TIMEOUT``, gives up when no byte moves
  for ``S3_READ_TIMEOUT`` (sending or receiving: the socket timeout covers both) and is
  tried ``S3_MAX_ATTEMPTS`` times; both timeouts are shrunk when needed so that all
  attempts of one request fit in ``BACKUP_STORAGE_TIMEOUT_SECONDS``.
- **Each transfer** (an upload or a server-side copy, many requests when multipart) is
  watched: when no byte has moved for ``BACKUP_STORAGE_TIMEOUT_SECONDS`` it is cancelled
  and fails at once, naming the location, rather than waiting for every queued part to
  time out in turn. A failed multipart upload is aborted by s3transfer as it fails; one
  that could not be aborted (a hung server, a killed process) lives under the location's
  temporary prefix, where the reaper aborts it.
- **Memory** stays bounded: parts of ``BACKUP_S3_PART_SIZE_MB`` read from the file as
  they are sent, at most ``BACKUP_S3_CONCURRENCY`` at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from .errors import LocationError, ObjectNotFound, StorageStalled

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]

# How often a transfer's waiter looks at the watchdog; small beside any deadline a person would set.
_POLL_SECONDS = 0.2
_DENIED = ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch")
_NOT_FOUND = ("404", "NoSuchKey", "NotFound")


def request_timeouts() -> tuple[float, float]:
    """(connect, read) seconds per attempt, so that every attempt of one request fits in the storage deadline."""
    budget = settings.BACKUP_STORAGE_TIMEOUT_SECONDS / settings.S3_MAX_ATTEMPTS
    connect = max(1.0, min(float(settings.S3_CONNECT_TIMEOUT), budget / 2))
    read = max(1.0, min(float(settings.S3_READ_TIMEOUT), budget - connect))
    return connect, read


def client(*, endpoint_url: str = "", region: str = "", access_key: str = "", secret_key: str = ""):
    """A boto3 S3 client with bounded timeouts, retries and TCP keepalive.

    Empty credentials fall back to the worker's own (``AWS_*`` variables, instance role).
    A session per client: boto3 sessions are not thread-safe, and clients are used from threads.
    """
    import boto3
    from botocore.config import Config

    connect, read = request_timeouts()
    config = Config(
        connect_timeout=connect,
        read_timeout=read,
        retries={"total_max_attempts": settings.S3_MAX_ATTEMPTS, "mode": "standard"},
        # A dead peer behind a NAT is noticed by the kernel, not only by the read timeout.
        tcp_keepalive=True,
        signature_version="s3v4",
        max_pool_connections=max(COPY_CONCURRENCY, settings.BACKUP_S3_CONCURRENCY) + 2,
    )
    session = boto3.session.Session(
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None,
        region_name=region or None,
    )
    try:
        return session.client("s3", endpoint_url=endpoint_url or None, config=config)
    except ValueError as exc:  # e.g. "Invalid endpoint": configuration, safe to show
        raise LocationError(f"cannot use the S3 endpoint {endpoint_url!r}: {exc}") from None


# A server-side copy moves no byte through the worker: its parts can be large and many at once.
COPY_PART_BYTES = 256 << 20
COPY_CONCURRENCY = 8


def transfer_config(*, copy: bool = False):
    """Multipart above one part's size; parts read from the file as sent, a bounded number at a time.

    For a server-side copy, parts of 256 MiB, 8 at a time (UploadPartCopy: the data stays in S3);
    above one part it is multipart, so objects over CopyObject's 5 GB limit copy too.
    """
    from boto3.s3.transfer import TransferConfig

    part = COPY_PART_BYTES if copy else settings.BACKUP_S3_PART_SIZE_MB << 20
    return TransferConfig(
        multipart_threshold=part,
        multipart_chunksize=part,
        max_concurrency=COPY_CONCURRENCY if copy else settings.BACKUP_S3_CONCURRENCY,
        # The classic transfer client, never the CRT one: its memory and timeouts are not these.
        preferred_transfer_client="classic",
    )


def cause(exc: BaseException, *, endpoint_url: str = "", bucket: str = "", where: str = "") -> str:
    """What went wrong, in words, naming the endpoint and bucket (configuration, never a secret)."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    endpoint = endpoint_url or "AWS"
    if isinstance(exc, StorageStalled):
        return str(exc)
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return f"bucket {bucket} does not exist at {endpoint} (NoSuchBucket)"
        if code in _DENIED:
            return f"access to {where or bucket} was denied ({code}); check the credentials"
        if code in _NOT_FOUND:
            return "not found"
        return f"S3 error {code or 'unknown'}"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials (set them on the location, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return f"cannot reach the S3 endpoint {endpoint}"
    if isinstance(exc, ReadTimeoutError):
        _connect, read = request_timeouts()
        return f"the S3 endpoint {endpoint} did not answer within {read:g} s ({settings.S3_MAX_ATTEMPTS} attempts)"
    return f"{type(exc).__name__}: {exc}"


def is_not_found(exc: BaseException, *codes: str) -> bool:
    """A 404 (no such key), or one of ``codes``."""
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code", "") in (*_NOT_FOUND, *codes)


def is_unanswered(exc: BaseException) -> bool:
    """The server did not answer (timed out or unreachable): cleaning up there now would hang again."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    return isinstance(exc, (StorageStalled, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError))


def location_error(exc: BaseException, *, location: str, action: str, key: str, endpoint_url: str, bucket: str):
    """The one mapper from an S3 failure to a LocationError naming the location, the operation and the key."""
    if isinstance(exc, LocationError) and not isinstance(exc, StorageStalled):
        return exc
    if is_not_found(exc):
        return ObjectNotFound(f"location {location}: {key} not found")
    text = f"location {location}: cannot {action} {key}: {cause(exc, endpoint_url=endpoint_url, bucket=bucket)}"
    return StorageStalled(text) if is_unanswered(exc) else LocationError(text)


class _Watch:
    """Counts bytes moved by a transfer and when the last one moved; forwards the total to ``progress``."""

    def __init__(self, progress: Progress | None) -> None:
        self.total = 0
        self.last = time.monotonic()
        self.progress = progress
        self._lock = threading.Lock()

    def moved(self, amount: int) -> None:
        with self._lock:
            self.total += amount
            self.last = time.monotonic()
            total = self.total
        if self.progress is not None and amount > 0:
            self.progress(total)


def _subscriber(watch: _Watch):
    from s3transfer.subscribers import BaseSubscriber

    class Subscriber(BaseSubscriber):
        def on_progress(self, future, bytes_transferred, **kwargs):
            watch.moved(bytes_transferred)

    return Subscriber()


def _run_transfer(s3, start: Callable, progress: Progress | None, *, copy: bool = False) -> None:
    """Start a transfer on a fresh manager and wait for it, cancelling it when it stalls."""
    from boto3.s3.transfer import create_transfer_manager

    deadline = settings.BACKUP_STORAGE_TIMEOUT_SECONDS
    manager = create_transfer_manager(s3, transfer_config(copy=copy))
    watch = _Watch(progress)
    future = start(manager, [_subscriber(watch)])
    while not future.done():
        time.sleep(_POLL_SECONDS)
        if time.monotonic() - watch.last > deadline:
            future.cancel()
            # Its threads end at their own request timeout; s3transfer then aborts the multipart upload if the
            # server answers again, else the reaper does. Nobody waits for them: the run fails now.
            threading.Thread(target=manager.shutdown, name="s3-cancelled-transfer", daemon=True).start()
            raise StorageStalled(f"no byte moved for {deadline} s (BACKUP_STORAGE_TIMEOUT_SECONDS); the server hangs")
    try:
        future.result()
    finally:
        manager.shutdown()


def upload_file(
    s3, path: Path, bucket: str, key: str, *, extra_args: dict | None = None, progress: Progress | None = None
) -> None:
    """boto3's managed upload (multipart above one part), bounded by the storage deadline.

    ``progress`` gets the bytes sent so far. s3transfer aborts the multipart upload when a part or
    the completion fails, so a failed upload leaves no parts behind when the server still answers.
    """
    _run_transfer(
        s3,
        lambda manager, subscribers: manager.upload(
            str(path), bucket, key, extra_args=extra_args or {}, subscribers=subscribers
        ),
        progress,
    )


def upload_fileobj(s3, fileobj: BinaryIO, bucket: str, key: str, *, extra_args: dict | None = None) -> None:
    """The same managed upload as :func:`upload_file`, from a stream read once (e.g. a file inside a tar stream).

    Parts are read from ``fileobj`` as they are sent; multipart above one part, aborted when it fails.
    """
    _run_transfer(
        s3,
        lambda manager, subscribers: manager.upload(
            fileobj, bucket, key, extra_args=extra_args or {}, subscribers=subscribers
        ),
        None,
    )


def copy(s3, bucket: str, source_key: str, key: str, *, extra_args: dict | None = None) -> None:
    """Server-side copy within a bucket; multipart (UploadPartCopy) above one part, so objects over 5 GB copy too."""
    _run_transfer(
        s3,
        lambda manager, subscribers: manager.copy(
            {"Bucket": bucket, "Key": source_key}, bucket, key, extra_args=extra_args or {}, subscribers=subscribers
        ),
        None,
        copy=True,
    )
