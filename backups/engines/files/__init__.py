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

By job: ``tree`` walks a local folder (names, counts, stoppable reads), ``bucket`` reads an
S3 prefix (through ``backups/s3.py``), ``archive`` is the dump (the tar stream and its
deadline), ``restore`` the two restorers (a folder, or an empty S3 prefix). This module is
the engine, and keeps every name ``backups.engines.files`` had importable.
"""

from __future__ import annotations

from pathlib import Path

from ..base import Dump, Place, path_place, resolve_source, s3_place
from ..engine import Engine
from ..restore_base import Restorer
from .archive import FilesDump
from .bucket import S3Prefix, count_s3, parse_s3, s3_client, s3_problem, write_bucket
from .restore import RESTORE_MARKER, RESTORE_TOKEN_FRAGMENT, S3TarRestorer, TarRestorer, restore_token
from .tree import CHUNK, JOIN_GRACE_SECONDS, StopSignal, TreeCounts, count_folder, local_folder, safe_member_name


class FilesEngine(Engine):
    name = "files"
    label = "Files: a local folder or an S3 bucket prefix (tar)"
    format = "tar"
    extension = ".tar"
    uses_endpoint = True
    reads_local_disk = True
    restore_hint = "tar -x -C DESTINATION"
    restorer = TarRestorer

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

    def make_restorer(self, destination: str, *, scratch_prefix: str | None = None, endpoint_url: str = "") -> Restorer:
        """An ``s3://`` destination is uploaded into (an empty prefix); anything else, and every restore test
        (``scratch_prefix``: a temporary folder whatever the destination), is extracted into a folder."""
        if destination.startswith("s3://") and not scratch_prefix:
            return S3TarRestorer(destination, endpoint_url=endpoint_url)
        return TarRestorer(destination, scratch_prefix=scratch_prefix)


__all__ = [
    "CHUNK",
    "JOIN_GRACE_SECONDS",
    "RESTORE_MARKER",
    "RESTORE_TOKEN_FRAGMENT",
    "FilesDump",
    "FilesEngine",
    "S3Prefix",
    "S3TarRestorer",
    "StopSignal",
    "TarRestorer",
    "TreeCounts",
    "count_folder",
    "count_s3",
    "local_folder",
    "parse_s3",
    "restore_token",
    "s3_client",
    "s3_problem",
    "safe_member_name",
    "write_bucket",
]
