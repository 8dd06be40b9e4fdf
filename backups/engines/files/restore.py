"""Restoring a files backup: extract into a new folder and rename it into place, or upload into an empty S3 prefix.

Which of the two is chosen by the engine (``FilesEngine.make_restorer``), never by the class itself.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from ... import s3
from ..base import Place, SourceError, path_place, s3_place
from ..restore_base import RestorePlan, Restorer, minute_stamp, swap_into_place
from .bucket import count_s3, parse_s3, s3_client, s3_problem
from .tree import CHUNK, JOIN_GRACE_SECONDS, ExactReader, ancestors, count_folder, local_folder, safe_member_name

logger = logging.getLogger(__name__)


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

    A restore test (``scratch_prefix``) extracts into a temporary folder whatever the destination.
    """

    def __init__(self, destination: str, *, scratch_prefix: str | None = None) -> None:
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
        self.rollback: Path | None = self.path.with_name(f"{self.path.name}.pre_restore_{minute_stamp()}")
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

    def __init__(self, destination: str, *, endpoint_url: str = "") -> None:
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
                # The portal's one managed upload: bounded parts and concurrency (so memory), multipart, stall deadline.
                s3.upload_fileobj(
                    self.client, ExactReader(body), self.where.bucket, key, extra_args={"Metadata": self._marker}
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
