"""Location backends: a registry keyed by URL scheme, each a small class.

Writes are atomic (a copy is complete or absent), reads stream, and every network
call has a timeout. S3 goes through django-storages (multipart uploads, storage
class, credentials) with boto3 underneath for streaming reads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

from django.conf import settings

logger = logging.getLogger(__name__)


class LocationError(Exception):
    """A location could not be reached or written; the message names the location, never a secret."""


class ObjectNotFound(LocationError):
    pass


@dataclass
class StoredObject:
    key: str
    url: str
    size: int
    storage_class: str = ""


class LocationBackend:
    def __init__(self, location) -> None:
        self.location = location
        self.name = location.name

    def put_file(self, path: Path, key: str, progress: Callable[[int], None] | None = None) -> StoredObject:
        """Store the file at ``path`` as ``key``, calling ``progress(bytes sent so far)`` as it goes.

        ``progress`` may be called from another thread; if it raises, the copy is abandoned
        (nothing partial is left) and put_file raises (that exception, or a LocationError).
        """
        raise NotImplementedError

    def put_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def open(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def size(self, key: str) -> int:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def list(self, prefix: str = "") -> Iterator[str]:
        raise NotImplementedError

    def url_for(self, key: str) -> str:
        return self.location.url.rstrip("/") + "/" + key


def _safe_key(key: str) -> str:
    parts = PurePosixPath(key).parts
    if not parts or key.startswith("/") or ".." in parts:
        raise LocationError(f"refusing object key {key!r}")
    return key


class LocalBackend(LocationBackend):
    def __init__(self, location) -> None:
        super().__init__(location)
        self.root = Path(urlsplit(location.url).path)

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    def _write_atomically(self, key: str, write) -> Path:
        final = self._path(key)
        partial = final.with_name(f".{final.name}.partial")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, final)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise LocationError(f"location {self.name}: cannot write {key}: {exc.strerror or exc}") from None
        except BaseException:  # e.g. a progress callback stopping the copy: leave nothing half-written
            partial.unlink(missing_ok=True)
            raise
        return final

    def put_file(self, path: Path, key: str, progress: Callable[[int], None] | None = None) -> StoredObject:
        final = self._path(key)
        partial = final.with_name(f".{final.name}.partial")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            # Same filesystem as the spool: a hard link stores the copy without rewriting it.
            os.link(path, partial)
        except OSError:
            partial.unlink(missing_ok=True)

            def copy(out):
                sent = 0
                with open(path, "rb") as src:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                        sent += len(chunk)
                        if progress is not None:
                            progress(sent)

            final = self._write_atomically(key, copy)
            return StoredObject(key=key, url=self.url_for(key), size=final.stat().st_size)
        try:
            with open(partial, "rb") as linked:
                os.fsync(linked.fileno())
            if progress is not None:
                progress(path.stat().st_size)
            os.replace(partial, final)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise LocationError(f"location {self.name}: cannot write {key}: {exc.strerror or exc}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return StoredObject(key=key, url=self.url_for(key), size=final.stat().st_size)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write_atomically(key, lambda out: out.write(data))

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"location {self.name}: {key} not found") from None
        except OSError as exc:
            raise LocationError(f"location {self.name}: cannot read {key}: {exc.strerror}") from None

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(f"location {self.name}: {key} not found") from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in sorted(files):
                if name.startswith("."):
                    continue
                yield str((Path(dirpath) / name).relative_to(self.root))


class S3Backend(LocationBackend):
    def __init__(self, location) -> None:
        super().__init__(location)
        parts = urlsplit(location.url)
        self.bucket_name = parts.netloc
        self.prefix = parts.path.strip("/")
        self._storage = None

    @property
    def storage(self):
        if self._storage is None:
            from botocore.config import Config
            from storages.backends.s3 import S3Storage

            params = {"StorageClass": self.location.storage_class} if self.location.storage_class else {}
            self._storage = S3Storage(
                bucket_name=self.bucket_name,
                location=self.prefix,
                endpoint_url=self.location.endpoint_url or None,
                region_name=self.location.region or None,
                access_key=self.location.access_key_id or None,
                secret_key=self.location.secret_access_key or None,
                object_parameters=params,
                file_overwrite=True,
                default_acl=None,
                client_config=Config(
                    connect_timeout=settings.S3_CONNECT_TIMEOUT,
                    read_timeout=settings.S3_READ_TIMEOUT,
                    retries={"max_attempts": 3, "mode": "standard"},
                    signature_version="s3v4",
                ),
            )
        return self._storage

    def _full_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _wrap(self, action: str, key: str, exc: Exception) -> LocationError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                return ObjectNotFound(f"location {self.name}: {key} not found")
            return LocationError(f"location {self.name}: cannot {action} {key}: S3 error {code}")
        # Connection errors name the endpoint, which is configuration, not a secret.
        return LocationError(f"location {self.name}: cannot {action} {key}: {type(exc).__name__}: {exc}")

    def put_file(self, path: Path, key: str, progress: Callable[[int], None] | None = None) -> StoredObject:
        callback = None
        if progress is not None:
            # boto3 reports each chunk as its request body is read for sending, from its own threads.
            lock, total = threading.Lock(), [0]

            def callback(amount: int) -> None:
                with lock:
                    total[0] += amount
                    sent = total[0]
                progress(sent)

        full_key = self._full_key(_safe_key(key))
        extra = {"ContentType": "application/octet-stream"}
        if self.location.storage_class:
            extra["StorageClass"] = self.location.storage_class
        try:
            with open(path, "rb") as src:
                # A failed multipart upload is aborted by boto3, so no partial object remains.
                self.storage.bucket.Object(full_key).upload_fileobj(
                    src, ExtraArgs=extra, Config=self.storage.transfer_config, Callback=callback
                )
        except Exception as exc:  # botocore raises many unrelated classes
            raise self._wrap("upload", key, exc) from None
        return StoredObject(
            key=key,
            url=self.url_for(key),
            size=path.stat().st_size,
            storage_class=self.location.storage_class or "STANDARD",
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.storage.bucket.Object(self._full_key(_safe_key(key))).put(Body=data, ContentType="application/json")
        except Exception as exc:
            raise self._wrap("write", key, exc) from None

    def open(self, key: str) -> BinaryIO:
        try:
            return self.storage.bucket.Object(self._full_key(_safe_key(key))).get()["Body"]
        except Exception as exc:
            raise self._wrap("read", key, exc) from None

    def size(self, key: str) -> int:
        try:
            return self.storage.bucket.Object(self._full_key(_safe_key(key))).content_length
        except Exception as exc:
            raise self._wrap("read", key, exc) from None

    def delete(self, key: str) -> None:
        try:
            self.storage.delete(key)
        except Exception as exc:
            raise self._wrap("delete", key, exc) from None

    def list(self, prefix: str = "") -> Iterator[str]:
        full = self._full_key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        try:
            paginator = self.storage.connection.meta.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket_name, Prefix=full):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    yield key[len(self.prefix) + 1 :] if self.prefix else key
        except Exception as exc:
            raise self._wrap("list", prefix or "/", exc) from None


BACKENDS: dict[str, type[LocationBackend]] = {"file": LocalBackend, "s3": S3Backend}


def backend_for(location) -> LocationBackend:
    scheme = urlsplit(location.url).scheme
    try:
        return BACKENDS[scheme](location)
    except KeyError:
        raise LocationError(f"location {location.name}: unsupported URL scheme {scheme!r}") from None
