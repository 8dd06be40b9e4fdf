"""Location backends: a registry keyed by URL scheme, each a small class.

Nothing that looks like a finished backup appears before the run can describe it:
an artifact is written under the location's temporary prefix (``.incomplete/<key>``),
its manifest is written, and only then is it made final (a rename on disk; a
server-side copy and a delete in S3). Readers never look under the temporary
prefix; the reaper removes what a killed run left there. Reads stream, and every
network call is bounded (see ``backups/s3.py``, the one S3 module).
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

from django.conf import settings

from . import s3
from .errors import LocationError, ObjectNotFound, StorageStalled

__all__ = ["LocationError", "ObjectNotFound", "StorageStalled", "LocationBackend", "backend_for", "Leftover"]

logger = logging.getLogger(__name__)


# Where artifacts are written until their manifest exists; readers skip it, the reaper cleans it.
TEMP_PREFIX = ".incomplete/"
# An artifact's manifest is its key plus this suffix.
SIDECAR_SUFFIX = ".json"
# Copy and hash in chunks of this size: memory stays flat whatever the size of an artifact.
CHUNK = 1 << 20


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


@dataclass(frozen=True)
class Leftover:
    """Something under the temporary prefix: a staged object or an unfinished multipart upload."""

    key: str  # the final key it was meant for
    age_seconds: float
    upload_id: str = ""  # set for an unfinished multipart upload

    @property
    def kind(self) -> str:
        return "unfinished multipart upload" if self.upload_id else "temporary object"


def temp_key(key: str) -> str:
    return TEMP_PREFIX + key


class LocationBackend:
    def __init__(self, location) -> None:
        self.location = location
        self.name = location.name

    def put_file(self, path: Path, key: str, progress: Callable[[int], None] | None = None) -> StoredObject:
        """Stage ``path`` under the temporary key for ``key``; ``progress`` gets the bytes sent so far.

        The returned object describes the copy ``key`` will be once :meth:`publish` makes it final.
        """
        raise NotImplementedError

    def publish(self, key: str) -> None:
        """Make the staged copy of ``key`` final (after its manifest is written)."""
        raise NotImplementedError

    def discard(self, key: str) -> None:
        """Remove every trace of a copy that failed: staged object, manifest and final object."""
        for doomed in (temp_key(key), key + SIDECAR_SUFFIX, key):
            self.delete(doomed)

    def put_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def open(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def size(self, key: str) -> int:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def list(self, prefix: str = "") -> Iterator[str]:
        """Finished keys under ``prefix``; never what lies under the temporary prefix."""
        raise NotImplementedError

    def leftovers(self) -> Iterator[Leftover]:
        """What runs left under the temporary prefix (in flight, or killed)."""
        raise NotImplementedError

    def remove_leftover(self, leftover: Leftover) -> None:
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


def is_temporary(key: str) -> bool:
    """A key, or a path relative to a location, under the temporary prefix."""
    return key.startswith(TEMP_PREFIX) or f"/{TEMP_PREFIX}" in key


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

    def _problem(self, action: str, key: str, exc: OSError, path: Path | None = None) -> LocationError:
        """A failure naming the file it concerns (``path``, default the key's), and the folder at fault if another."""
        where = str(path or self._path(key))
        if exc.filename and str(exc.filename) != where:
            where += f" (at {exc.filename})"
        return LocationError(f"location {self.name}: cannot {action} {where}: {exc.strerror or exc}")

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
            raise self._problem("write", key, exc) from None
        return final

    def put_file(self, path: Path, key: str, progress: Callable[[int], None] | None = None) -> StoredObject:
        staged = self._writable_path(temp_key(key))
        try:
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.unlink(missing_ok=True)
            try:
                # Same filesystem as the spool: a hard link stores the copy without rewriting it.
                os.link(path, staged)
                if progress is not None:
                    progress(staged.stat().st_size)
            except OSError:
                self._copy(path, staged, progress)
            with open(staged, "rb") as written:
                os.fsync(written.fileno())
            size = staged.stat().st_size
        except LocationError as exc:  # the file to copy could not be read
            _discard(staged)
            raise LocationError(f"location {self.name}: {exc}") from None
        except OSError as exc:
            _discard(staged)
            raise self._problem("write", key, exc, staged) from None
        except BaseException:  # e.g. ``progress`` stopping a run that lost its lease: leave nothing half-written
            _discard(staged)
            raise
        return StoredObject(key=key, url=self.url_for(key), size=size)

    @staticmethod
    def _copy(path: Path, staged: Path, progress: Callable[[int], None] | None) -> None:
        try:
            src = open(path, "rb")
        except OSError as exc:  # the file to copy, not the destination (e.g. a spool removed under us)
            raise LocationError(
                f"cannot read the file to copy, {path}: {exc.strerror or exc}; nothing was stored"
            ) from None
        sent = 0
        with src, open(staged, "wb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)
                sent += len(chunk)
                if progress is not None:
                    progress(sent)
            out.flush()

    def publish(self, key: str) -> None:
        final = self._path(key)
        staged = self._path(temp_key(key))
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)
            # The rename is durable only once the folder holding the new name is synced.
            folder = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            raise self._problem("finish", key, exc, final) from None
        self._prune_empty_folders(staged.parent)

    def _prune_empty_folders(self, folder: Path) -> None:
        """Remove the staged copy's now empty day/month/year folders, never the temporary prefix itself.

        Only this target's folders: runs of one target never overlap, so no other run is filling them.
        """
        top = self.root / TEMP_PREFIX
        while folder != top and top in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): stop there
                return
            folder = folder.parent

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write_atomically(key, lambda out: out.write(data))

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"location {self.name}: {key} not found") from None
        except OSError as exc:
            raise self._problem("read", key, exc) from None

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(f"location {self.name}: {key} not found") from None
        except OSError as exc:
            raise self._problem("read", key, exc) from None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except NotADirectoryError:
            pass  # a parent is a file, so the object cannot exist
        except OSError as exc:
            raise self._problem("delete", key, exc) from None

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return
        for dirpath, dirs, files in os.walk(base):
            # Hidden folders (the temporary prefix among them) hold nothing finished.
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                yield str((Path(dirpath) / name).relative_to(self.root))

    def leftovers(self) -> Iterator[Leftover]:
        import time

        base = self.root / TEMP_PREFIX
        if not base.is_dir():
            return
        now = time.time()
        for dirpath, _dirs, files in os.walk(base):
            for name in sorted(files):
                path = Path(dirpath) / name
                try:
                    age = now - path.stat().st_mtime
                except FileNotFoundError:  # finished meanwhile
                    continue
                yield Leftover(key=str(path.relative_to(base)), age_seconds=age)

    def remove_leftover(self, leftover: Leftover) -> None:
        self.delete(temp_key(leftover.key))


class S3Backend(LocationBackend):
    def __init__(self, location) -> None:
        super().__init__(location)
        parts = urlsplit(location.url)
        self.bucket_name = parts.netloc
        self.prefix = parts.path.strip("/")
        self.endpoint_url = location.endpoint_url or ""
        self._client = None

    @property
    def client(self):
        if self._client is None:
            try:
                self._client = s3.client(
                    endpoint_url=self.endpoint_url,
                    region=self.location.region or "",
                    access_key=self.location.access_key_id or "",
                    secret_key=self.location.secret_access_key or "",
                )
            except LocationError as exc:
                raise LocationError(f"location {self.name}: {exc}") from None
        return self._client

    def _full_key(self, key: str) -> str:
        key = _safe_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def _wrap(self, action: str, key: str, exc: BaseException) -> LocationError:
        return s3.location_error(
            exc, location=self.name, action=action, key=key, endpoint_url=self.endpoint_url, bucket=self.bucket_name
        )

    def put_file(self, path: Path, key: str, progress: Callable[[int], None] | None = None) -> StoredObject:
        staged = self._full_key(temp_key(key))
        try:
            # Staged in the default class: a cold class bills a minimum duration for an object that lives seconds.
            s3.upload_file(self.client, path, self.bucket_name, staged, progress=progress)
            size = self.client.head_object(Bucket=self.bucket_name, Key=staged)["ContentLength"]
        except Exception as exc:  # botocore raises many unrelated classes
            raise self._wrap("upload", key, exc) from None
        return StoredObject(
            key=key,
            url=self.url_for(key),
            size=size,
            storage_class=self.location.storage_class or "STANDARD",
        )

    def publish(self, key: str) -> None:
        staged = self._full_key(temp_key(key))
        extra = {"StorageClass": self.location.storage_class} if self.location.storage_class else {}
        try:
            s3.copy(self.client, self.bucket_name, staged, self._full_key(key), extra_args=extra)
        except Exception as exc:
            raise self._wrap("finish", key, exc) from None
        try:
            self.client.delete_object(Bucket=self.bucket_name, Key=staged)
        except Exception as exc:  # the copy is final and good; the reaper removes the staged one
            logger.warning("%s", self._wrap("delete", temp_key(key), exc))

    def discard(self, key: str) -> None:
        super().discard(key)
        # s3transfer aborts a failed multipart upload itself; this catches one whose abort did not get through.
        staged = self._full_key(temp_key(key))
        try:
            uploads = self.client.list_multipart_uploads(Bucket=self.bucket_name, Prefix=staged).get("Uploads", [])
            for upload in uploads:
                if upload["Key"] == staged:
                    self.client.abort_multipart_upload(Bucket=self.bucket_name, Key=staged, UploadId=upload["UploadId"])
        except Exception as exc:
            raise self._wrap("abort the upload of", temp_key(key), exc) from None

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket_name, Key=self._full_key(key), Body=data, ContentType="application/json"
            )
        except Exception as exc:
            raise self._wrap("write", key, exc) from None

    def open(self, key: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket_name, Key=self._full_key(key))["Body"]
        except Exception as exc:
            raise self._wrap("read", key, exc) from None

    def size(self, key: str) -> int:
        try:
            return self.client.head_object(Bucket=self.bucket_name, Key=self._full_key(key))["ContentLength"]
        except Exception as exc:
            raise self._wrap("read", key, exc) from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket_name, Key=self._full_key(key))
        except Exception as exc:
            raise self._wrap("delete", key, exc) from None

    def _keys(self, full_prefix: str) -> Iterator[dict]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket_name, Prefix=full_prefix):
            yield from page.get("Contents", [])

    def list(self, prefix: str = "") -> Iterator[str]:
        full = self._full_key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        try:
            for obj in self._keys(full):
                key = self._relative(obj["Key"])
                if not is_temporary(key):
                    yield key
        except Exception as exc:
            raise self._wrap("list", prefix or "/", exc) from None

    def leftovers(self) -> Iterator[Leftover]:
        from django.utils import timezone

        base = self._full_key(TEMP_PREFIX)
        now = timezone.now()
        try:
            for obj in self._keys(base):
                key = obj["Key"][len(base) :]
                yield Leftover(key=key, age_seconds=(now - obj["LastModified"]).total_seconds())
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket_name, Prefix=base):
                for upload in page.get("Uploads", []):
                    yield Leftover(
                        key=upload["Key"][len(base) :],
                        age_seconds=(now - upload["Initiated"]).total_seconds(),
                        upload_id=upload["UploadId"],
                    )
        except Exception as exc:
            raise self._wrap("list", TEMP_PREFIX, exc) from None

    def remove_leftover(self, leftover: Leftover) -> None:
        if not leftover.upload_id:
            self.delete(temp_key(leftover.key))
            return
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket_name, Key=self._full_key(temp_key(leftover.key)), UploadId=leftover.upload_id
            )
        except Exception as exc:
            if s3.is_not_found(exc, "NoSuchUpload"):  # completed or aborted meanwhile
                return
            raise self._wrap("abort the upload of", temp_key(leftover.key), exc) from None


BACKENDS: dict[str, type[LocationBackend]] = {"file": LocalBackend, "s3": S3Backend}


def backend_for(location) -> LocationBackend:
    scheme = urlsplit(location.url).scheme
    try:
        return BACKENDS[scheme](location)
    except KeyError:
        raise LocationError(f"location {location.name}: unsupported URL scheme {scheme!r}") from None
