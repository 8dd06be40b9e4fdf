"""Location backends: a registry keyed by URL scheme, each a small class.

Writes are atomic (a copy is complete or absent), reads stream, and every network
call has a timeout. S3 goes through django-storages (multipart uploads, storage
class, credentials) with boto3 underneath for streaming reads.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
from collections.abc import Iterator
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


# Folders no file:// location may be, be inside or contain, whatever the machine: the operating
# system's own and PostgreSQL's data. Writing a backup there could overwrite system files, and
# retention or a reaper walking a location that holds them would take them for its own objects.
# The portal's code folder (BASE_DIR, except its state folder DRPORTAL_HOME) and the spool
# (BACKUP_SPOOL_DIR) are added from the settings by protected_folders().
SYSTEM_FOLDERS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/lib/postgresql",
)


def protected_folders() -> list[tuple[PurePosixPath, str]]:
    """(folder, what it is) for every folder a location must keep clear of."""
    found = [(PurePosixPath(folder), "the system folder") for folder in SYSTEM_FOLDERS]
    found.append((PurePosixPath(settings.BACKUP_SPOOL_DIR), "the backup spool folder"))
    return found


def overlap(path: PurePosixPath, other: PurePosixPath) -> str:
    """'is' / 'is inside' / 'contains' when the two folders overlap, else ''."""
    if path == other:
        return "is"
    if path.is_relative_to(other):
        return "is inside"
    if other.is_relative_to(path):
        return "contains"
    return ""


def _path_problem(url: str, path: PurePosixPath, *, how: str = "") -> str:
    """Why this folder may not hold backups (system, spool or code folder), or ''."""
    for folder, what in protected_folders():
        relation = overlap(path, folder)
        if relation:
            return f"{url}{how} {relation} {what} {folder}; keep backups in a folder of their own"
    code, home = PurePosixPath(settings.BASE_DIR), PurePosixPath(settings.PORTAL_HOME)
    relation = overlap(path, code)
    # The portal's state folder (var/ by default, where `make run` keeps its backups) may sit inside its code.
    if relation and not (relation == "is inside" and path.is_relative_to(home) and path != home):
        return f"{url}{how} {relation} the portal's code folder {code}; keep backups in a folder of their own"
    return ""


def local_location_problem(url: str) -> str:
    """Why a file:// URL is not a usable folder for backups, or '' when it is (no database needed).

    It must be ``file:///absolute/path`` (an empty host: ``file://tmp/x`` means host "tmp", path /x),
    written normalised (no ``..``, ``.`` or ``//``), and clear of the filesystem root, system folders,
    the spool and the portal's code, also once symbolic links are followed on this machine.
    """
    parts = urlsplit(url)
    if parts.netloc:
        return f"{url} has a host {parts.netloc!r}; write file:///{parts.netloc}{parts.path}"
    if not url.startswith("file:///"):
        return f"{url} is not an absolute folder; write file:///absolute/path, e.g. file:///var/backups/portal"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return f"{url} has a query or fragment (? or #); a file location is a folder path only"
    if "%" in parts.path or any(ord(c) < 32 or ord(c) == 127 for c in parts.path):
        return f"{url} has %-escapes or control characters; write the folder path as it is"
    raw = parts.path.rstrip("/") or "/"
    segments = raw.split("/")[1:]
    if ".." in segments:
        return f"{url} has a '..' segment; write the folder it means without '..'"
    if raw != "/" and ("" in segments or "." in segments):
        return f"{url} is not normalised ('//' or '.'); write file://{posixpath.normpath(raw)}"
    path = PurePosixPath(raw)
    if path == PurePosixPath("/"):
        return f"{url} is the filesystem root; name a folder for backups, e.g. file:///var/backups/portal"
    problem = _path_problem(url, path)
    if problem:
        return problem
    real = PurePosixPath(os.path.realpath(raw))
    if real != path:
        return _path_problem(url, real, how=f" (through a symbolic link, {real})")
    return ""


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

    def put_file(self, path: Path, key: str) -> StoredObject:
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


def _discard(partial: Path) -> None:
    """Remove a half-written file; its folder may not exist (or be a file), which must not hide the real error."""
    try:
        partial.unlink(missing_ok=True)
    except OSError:
        pass


class LocalBackend(LocationBackend):
    def __init__(self, location) -> None:
        super().__init__(location)
        self.root = Path(urlsplit(location.url).path)
        # A row saved without clean() (or before the check existed) may name a folder that must not
        # be written, e.g. file://tmp/x, whose path is /x. Reading its old copies stays possible.
        self.write_problem = local_location_problem(location.url)

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    def _writable_path(self, key: str) -> Path:
        if self.write_problem:
            raise LocationError(f"location {self.name}: {self.write_problem}; nothing was written")
        return self._path(key)

    def _write_atomically(self, key: str, write) -> Path:
        final = self._writable_path(key)
        partial = final.with_name(f".{final.name}.partial")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, final)
        except LocationError:
            _discard(partial)
            raise
        except OSError as exc:
            _discard(partial)
            raise LocationError(f"location {self.name}: cannot write {final}: {exc.strerror or exc}") from None
        return final

    def put_file(self, path: Path, key: str) -> StoredObject:
        final = self._writable_path(key)
        partial = final.with_name(f".{final.name}.partial")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            # Same filesystem as the spool: a hard link stores the copy without rewriting it.
            os.link(path, partial)
        except OSError:
            _discard(partial)

            def copy(out):
                try:
                    src = open(path, "rb")
                except OSError as exc:  # the file to copy, not the destination (e.g. a spool removed under us)
                    raise LocationError(
                        f"location {self.name}: cannot read the file to copy, {path}: {exc.strerror or exc}; "
                        "nothing was stored"
                    ) from None
                with src:
                    shutil.copyfileobj(src, out, 1 << 20)

            final = self._write_atomically(key, copy)
            return StoredObject(key=key, url=self.url_for(key), size=final.stat().st_size)
        try:
            with open(partial, "rb") as linked:
                os.fsync(linked.fileno())
            os.replace(partial, final)
        except OSError as exc:
            _discard(partial)
            raise LocationError(f"location {self.name}: cannot write {final}: {exc.strerror or exc}") from None
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
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except NotADirectoryError:
            pass  # a parent is a file, so the object cannot exist
        except OSError as exc:
            raise LocationError(f"location {self.name}: cannot delete {path}: {exc.strerror or exc}") from None

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

    def put_file(self, path: Path, key: str) -> StoredObject:
        from django.core.files import File

        _safe_key(key)
        try:
            with open(path, "rb") as src:
                # A failed multipart upload is aborted by boto3, so no partial object remains.
                self.storage.save(key, File(src, name=key))
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
