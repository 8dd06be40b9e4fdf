"""Finding an artifact (by run id, local path or s3:// URL) and proving it sound before use.

Every check here only reads: a refused artifact has touched nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from ..keys import key_id, load_identities
from ..locations import TEMP_PREFIX, LocationError, ObjectNotFound, is_temporary
from ..models import Artifact, BackupRun, Location
from ..pipeline import decrypt_stream
from . import manifest as manifests


class ArtifactRefused(Exception):
    """The artifact cannot be used; the message starts with the cause (checksum mismatch, truncated...)."""


@dataclass
class ArtifactRef:
    label: str
    open: Callable[[], BinaryIO]
    size: Callable[[], int]
    manifest: dict
    run: BackupRun | None = None
    location: Location | None = None
    artifact: Artifact | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return self.manifest["sha256"]

    @property
    def expected_size(self) -> int:
        return int(self.manifest["bytes_out"])

    @property
    def compression(self) -> str:
        return self.manifest["compression"]

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def tables(self) -> dict[str, int]:
        return dict(self.manifest.get("tables") or {})

    @property
    def target_name(self) -> str:
        return self.manifest.get("target", "")


# Copies are tried in this order when no location is named: local disk first (fastest, no egress).
def _preference(artifact: Artifact) -> tuple:
    return (0 if artifact.location.url.startswith("file:") else 1, artifact.location.name)


def from_artifact(artifact: Artifact) -> ArtifactRef:
    backend = artifact.location.backend()
    run = artifact.run
    return ArtifactRef(
        label=f"run #{run.pk}'s copy in {artifact.location.name} ({artifact.url})",
        open=lambda: backend.open(artifact.key),
        size=lambda: backend.size(artifact.key),
        manifest=manifests.describe(run, artifact.key, artifact.storage_class),
        run=run,
        location=artifact.location,
        artifact=artifact,
    )


def resolve(source: str, location_name: str | None = None) -> ArtifactRef:
    """A run id, a local artifact path or an s3://bucket/key URL → an ArtifactRef."""
    source = source.strip()
    if source.isdigit():
        return _from_run(int(source), location_name)
    if is_temporary(urlsplit(source).path if "://" in source else source):
        raise ArtifactRefused(
            f"unfinished upload: {source} lies under a location's temporary prefix ({TEMP_PREFIX}); "
            "it is what a run was still writing or left when it was killed, never a finished backup"
        )
    if source.startswith("s3://"):
        return _from_s3(source)
    if source.startswith("file://"):
        source = urlsplit(source).path
    return _from_path(Path(source))


def _from_run(run_id: int, location_name: str | None) -> ArtifactRef:
    run = BackupRun.objects.select_related("target").filter(pk=run_id).first()
    if run is None:
        raise ArtifactRefused(f"not found: there is no backup run #{run_id}")
    if run.status not in BackupRun.WITH_ARTIFACT and not run.sha256:
        raise ArtifactRefused(f"not found: run #{run_id} {run.status} and has no artifact")
    copies = list(run.artifacts.filter(status=Artifact.Status.STORED).select_related("location", "run__target"))
    if location_name:
        copies = [a for a in copies if a.location.name == location_name]
        if not copies:
            raise ArtifactRefused(f"not found: run #{run_id} has no stored copy in location {location_name!r}")
    if not copies:
        raise ArtifactRefused(f"not found: run #{run_id} has no stored copy left (all pruned or deleted)")
    return from_artifact(sorted(copies, key=_preference)[0])


def _from_path(path: Path) -> ArtifactRef:
    path = path.expanduser().resolve()
    artifact = (
        Artifact.objects.filter(url=f"file://{path}", status=Artifact.Status.STORED)
        .select_related("location", "run__target")
        .first()
    )
    if artifact is not None:
        return from_artifact(artifact)
    if not path.exists():
        raise ArtifactRefused(f"not found: {path} does not exist")
    sidecar = path.with_name(path.name + manifests.SIDECAR_SUFFIX)
    try:
        data = json.loads(sidecar.read_text())
    except FileNotFoundError:
        raise ArtifactRefused(
            f"no manifest: {path} is not in the catalogue and {sidecar.name} is missing, "
            "so its checksum cannot be verified"
        ) from None
    except (OSError, ValueError) as exc:
        raise ArtifactRefused(f"bad manifest: {sidecar}: {exc}") from None
    return ArtifactRef(
        label=str(path),
        open=lambda: open(path, "rb"),
        size=lambda: path.stat().st_size,
        manifest=_checked_manifest(data, str(sidecar)),
    )


def _from_s3(url: str) -> ArtifactRef:
    parts = urlsplit(url)
    bucket, full_key = parts.netloc, parts.path.lstrip("/")
    artifact = (
        Artifact.objects.filter(url=url, status=Artifact.Status.STORED)
        .select_related("location", "run__target")
        .first()
    )
    if artifact is not None:
        return from_artifact(artifact)
    # A location that covers this bucket/prefix supplies the endpoint and credentials.
    location = None
    for candidate in Location.objects.filter(url__startswith=f"s3://{bucket}"):
        prefix = urlsplit(candidate.url).path.strip("/")
        if not prefix or full_key.startswith(prefix + "/"):
            location = candidate
            break
    if location is None:
        location = Location(name=f"s3://{bucket}", url=f"s3://{bucket}")
    backend = location.backend()
    prefix = urlsplit(location.url).path.strip("/")
    key = full_key[len(prefix) + 1 :] if prefix else full_key
    try:
        data = json.loads(backend.read_bytes(key + manifests.SIDECAR_SUFFIX))
    except ObjectNotFound:
        try:
            backend.size(key)
        except ObjectNotFound:
            raise ArtifactRefused(f"not found: {url} does not exist") from None
        raise ArtifactRefused(f"no manifest: {url} is not in the catalogue and its .json manifest is missing") from None
    except LocationError as exc:
        raise ArtifactRefused(f"unreachable: {exc}") from None
    except ValueError as exc:
        raise ArtifactRefused(f"bad manifest: {url}.json: {exc}") from None
    return ArtifactRef(
        label=url,
        open=lambda: backend.open(key),
        size=lambda: backend.size(key),
        manifest=_checked_manifest(data, url + ".json"),
        location=location if location.pk else None,
    )


_REQUIRED = ("sha256", "bytes_out", "format", "compression")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _checked_manifest(data: dict, where: str) -> dict:
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ArtifactRefused(f"bad manifest: {where} lacks {', '.join(missing)}")
    if not _SHA256.match(str(data["sha256"])):
        raise ArtifactRefused(f"bad manifest: {where} has no valid sha256")
    return data


# --- pre-flight checks: each reads, none writes -------------------------------------------


def check_present(ref: ArtifactRef) -> str:
    try:
        size = ref.size()
    except ObjectNotFound:
        raise ArtifactRefused(f"not found: {ref.label} is missing") from None
    except (LocationError, OSError) as exc:
        raise ArtifactRefused(f"unreachable: {ref.label}: {exc}") from None
    if size == 0:
        raise ArtifactRefused(f"empty: {ref.label} has 0 bytes")
    if size < ref.expected_size:
        raise ArtifactRefused(f"truncated: {ref.label} has {size} of its {ref.expected_size} bytes")
    if size > ref.expected_size:
        raise ArtifactRefused(f"size mismatch: {ref.label} has {size} bytes, the manifest says {ref.expected_size}")
    return f"{size} bytes, as recorded"


def check_checksum(ref: ArtifactRef) -> str:
    import hashlib

    digest = hashlib.sha256()
    try:
        with ref.open() as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    except (LocationError, OSError) as exc:
        raise ArtifactRefused(f"unreachable: {ref.label}: {exc}") from None
    actual = digest.hexdigest()
    if actual != ref.sha256:
        raise ArtifactRefused(
            f"checksum mismatch: {ref.label} has SHA-256 {actual[:16]}…, recorded {ref.sha256[:16]}… "
            "(tampered or corrupted)"
        )
    return f"SHA-256 {actual}"


class _StopAfterFirstChunk(Exception):
    pass


class _FirstChunkProbe:
    def write(self, data) -> int:
        raise _StopAfterFirstChunk

    def flush(self) -> None:
        pass


def identities_or_refuse(identities=None) -> list:
    if identities is not None:
        return identities
    from ..keys import KeyProblem

    try:
        return load_identities()
    except KeyProblem as exc:
        raise ArtifactRefused(f"no key: {exc}") from None


def check_key(ref: ArtifactRef, identities: list) -> str:
    """Decrypt just the header and first chunk: proves one of our keys opens it."""
    import pyrage

    ours = sorted(key_id(str(identity.to_public())) for identity in identities)
    try:
        with ref.open() as stream:
            pyrage.decrypt_io(stream, _FirstChunkProbe(), identities)
    except _StopAfterFirstChunk:
        return f"opened with key id {', '.join(sorted(set(ours) & set(ref.manifest.get('key_ids', []))) or ours)}"
    except pyrage.DecryptError:
        wanted = ", ".join(ref.manifest.get("key_ids", [])) or "unknown"
        raise ArtifactRefused(
            f"no matching key: {ref.label} is encrypted to key id(s) {wanted}; "
            f"the identity file holds {', '.join(ours)}"
        ) from None
    except (LocationError, OSError) as exc:
        raise ArtifactRefused(f"decryption failed: {ref.label}: {exc}") from None
    return "opened (empty stream)"


def preflight(ref: ArtifactRef, identities=None) -> list[dict]:
    """All read-only checks, in order; raises ArtifactRefused at the first failure."""
    identities = identities_or_refuse(identities)
    return [
        {"name": "present", "result": "pass", "message": check_present(ref)},
        {"name": "checksum", "result": "pass", "message": check_checksum(ref)},
        {"name": "key", "result": "pass", "message": check_key(ref, identities)},
    ]


def full_pass(ref: ArtifactRef, identities: list) -> tuple[str, str]:
    """Decrypt and decompress the whole copy, discarding the output (the plan's gzip -t)."""
    import pyrage

    try:
        with ref.open() as stream:
            result = decrypt_stream(stream, None, identities, compression=ref.compression)
    except pyrage.DecryptError:
        return "fail", "no matching key"
    except (LocationError, OSError) as exc:
        return "fail", f"decryption failed (tampered or truncated): {exc}"
    except Exception as exc:  # zstd/zlib errors have library-specific classes
        return "fail", f"decompression failed: {type(exc).__name__}: {exc}"
    if not result.complete:
        return "fail", "the compressed stream ends early (truncated before encryption)"
    expected = ref.manifest.get("bytes_in")
    if expected is not None and result.bytes_out != int(expected):
        return "fail", f"decompressed to {result.bytes_out} bytes, the backup read {expected}"
    if result.sha256 != ref.sha256:
        return "fail", "checksum changed while reading"
    return "pass", f"decrypted and decompressed {result.bytes_out} bytes"
