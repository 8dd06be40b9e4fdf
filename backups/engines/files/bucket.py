"""The S3 side of the files engine: a bucket prefix as a source, counted and written into the archive.

Every client, transfer setting and error wording comes from ``backups/s3.py`` (the one S3 module);
here they are only turned into SourceErrors naming the prefix.
"""

from __future__ import annotations

import logging
import tarfile
from dataclasses import dataclass
from urllib.parse import urlsplit

from ... import s3
from ...errors import LocationError
from ..base import SourceError
from .tree import ExactReader, StopSignal, TreeCounts, ancestors, safe_member_name

logger = logging.getLogger(__name__)


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


def s3_client(endpoint_url: str = ""):
    """The one S3 client (``backups/s3.py``) with the worker's own AWS_* credentials and bounded timeouts."""
    try:
        return s3.client(endpoint_url=endpoint_url)
    except LocationError as exc:  # e.g. "Invalid endpoint": configuration, safe to show
        raise SourceError(str(exc)) from None


def s3_problem(exc: BaseException, where: S3Prefix, endpoint_url: str) -> SourceError:
    """A SourceError for an S3 failure, naming the prefix and endpoint (configuration, never a secret)."""
    return SourceError(f"{where.url}: {s3.cause(exc, endpoint_url=endpoint_url, bucket=where.bucket, where=where.url)}")


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
                    tar.addfile(info, ExactReader(body, stop))
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
