"""What every engine shares: resolving sources, redacting them, and streaming subprocesses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from django.conf import settings

if TYPE_CHECKING:  # for the annotations only: the restorer base imports this module
    from .restore_base import Restorer


class SourceError(Exception):
    """The source could not be read (unreachable, bad credentials, tool failed). Safe to show."""


_USERINFO = re.compile(r"(?P<scheme>[a-z0-9+.-]+://)(?P<user>[^:@/]*)(:[^@/]*)?@", re.I)
_PASSWORD_PARAM = re.compile(r"(password=)[^&\s]*", re.I)


def redact(source: str) -> str:
    """Remove passwords from a source URL so it can be shown or logged."""
    if not source:
        return ""
    value = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@" if m.group(3) else m.group(0), source)
    return _PASSWORD_PARAM.sub(r"\1***", value)


# Host names that all mean "this machine's PostgreSQL" (an empty host or a socket folder is the local socket).
_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1", "[::1]"}


@dataclass(frozen=True)
class Place:
    """Where data lives, in a canonical form two spellings of the same place compare equal in.

    ``path``: a real local path (``~``, relative paths, ``..``, trailing slashes and symlinks resolved);
    ``s3``: a bucket and a prefix ending in ``/``; ``postgresql``: a server and a database name.
    ``label`` is safe to show (never a password).
    """

    kind: str
    key: tuple
    label: str

    def overlaps(self, other: Place) -> bool:
        """The same place, or one inside the other (replacing either would replace part of the other)."""
        if self.kind != other.kind:
            return False
        if self.kind == "path":
            a, b = Path(self.key[0]), Path(other.key[0])
            return a == b or a in b.parents or b in a.parents
        if self.kind == "s3":
            (bucket_a, prefix_a), (bucket_b, prefix_b) = self.key, other.key
            return bucket_a == bucket_b and (prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a))
        return self.key == other.key


def path_place(path: str | Path) -> Place:
    real = os.path.realpath(os.path.expanduser(str(path)))
    return Place("path", (real,), real)


def s3_place(bucket: str, prefix: str) -> Place:
    prefix = prefix.strip("/")
    prefix = f"{prefix}/" if prefix else ""
    return Place("s3", (bucket, prefix), f"s3://{bucket}/{prefix}")


def postgresql_place(params: dict) -> Place:
    """A database on a server, from libpq connection parameters (host, port, dbname)."""
    host = str(params.get("host") or "").lower()
    host = "local" if host in _LOCAL_HOSTS or host.startswith("/") else host
    port = str(params.get("port") or "5432")
    dbname = str(params.get("dbname") or "")
    return Place("postgresql", (host, port, dbname), f"database {dbname}")


def resolve_source(source: str) -> str:
    """The real source: `env:NAME` is read from this process's environment at run time."""
    if source.startswith("env:"):
        name = source[4:]
        value = os.environ.get(name)
        if not value:
            raise SourceError(f"environment variable {name} is not set on this worker")
        return value
    return source


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return redact(text)


class Dump:
    """A running dump: ``stream`` yields the bytes, ``finish()`` checks the source succeeded.

    ``finish()`` raises SourceError if the producer failed, which is what makes a
    truncated dump a failed run rather than a small backup.
    """

    stream: BinaryIO

    def finish(self) -> dict:
        """Wait for the source to end; return metadata (e.g. ``{"tables": {...}}``)."""
        return {}

    def abort(self) -> None:
        """Stop the source early (the pipeline failed downstream)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.abort()


class StreamingProcess:
    """A subprocess whose stdout is streamed, with stderr kept (bounded) for the error message.

    Arguments are a list and secrets travel in the environment only. A watchdog
    kills the process group after ``timeout`` seconds.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        timeout: float | None = None,
        stdin=None,
        stdout=subprocess.PIPE,
        secrets: list[str] | None = None,
    ) -> None:
        self.argv = argv
        self.secrets = secrets or []
        self.timed_out = False
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env={**os.environ, **env},
                start_new_session=True,
            )
        except FileNotFoundError:
            raise SourceError(f"{argv[0]} is not installed on this worker") from None
        self._stderr: deque[bytes] = deque(maxlen=64)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        timeout = timeout if timeout is not None else settings.BACKUP_TIMEOUT_SECONDS
        self._watchdog = threading.Timer(timeout, self._on_timeout)
        self._watchdog.daemon = True
        self._watchdog.start()
        self.timeout = timeout

    @property
    def stdout(self) -> BinaryIO:
        return self.proc.stdout

    @property
    def stdin(self) -> BinaryIO:
        return self.proc.stdin

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _on_timeout(self) -> None:
        self.timed_out = True
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stderr_text(self) -> str:
        text = b"".join(self._stderr).decode("utf-8", "replace").strip()
        return scrub(text, self.secrets)

    def wait(self) -> int:
        code = self.proc.wait()
        self._watchdog.cancel()
        self._stderr_thread.join(timeout=5)
        return code

    def check(self, what: str | None = None) -> None:
        """Wait and raise SourceError naming the tool and its message if it failed."""
        code = self.wait()
        name = what or os.path.basename(self.argv[0])
        if self.timed_out:
            raise SourceError(f"{name} did not finish within {self.timeout:.0f} s and was stopped")
        if code != 0:
            message = self.stderr_text() or f"exit status {code}"
            raise SourceError(f"{name} failed: {message}")

    def close(self) -> None:
        self.kill()
        for stream in (self.proc.stdout, self.proc.stdin):
            if stream:
                try:
                    stream.close()
                except OSError:
                    pass
        self.wait()


class Engine:
    """One kind of source: what it is, said once. Subclass it in one module and ``register()`` it.

    The services read these attributes; none of them knows an engine by its name.
    ``tests/backups/test_engine_registry.py`` checks that every registered engine sets each one.
    """

    #: The key stored in ``Target.engine`` and ``BackupRun.engine`` (at most 20 characters; never rename).
    name: str = ""
    #: What the admin's engine menu shows.
    label: str = ""
    #: The format of its backups (the manifest's ``format``); a restore finds its restorer by it.
    format: str = ""
    #: The artifact's file extension, before ``.zst``/``.gz`` and ``.age`` (e.g. ``.sql``).
    extension: str = ""
    #: Whether a target of this engine must say what it reads (a URL, a path, ``env:NAME``).
    needs_source: bool = True
    #: Whether its source or restore destination may be on S3: dump and restorer then get the target's endpoint.
    uses_endpoint: bool = False
    #: Whether its backups are a database a restore test loads into a scratch database (the monthly drill tests these).
    is_database: bool = False
    #: Whether its source is a path on the worker's disk (``local_path()``), which locations must stay clear of.
    reads_local_disk: bool = False
    #: Whether it backs up by itself (its own service writes the run); ``dump()`` is then never called.
    runs_own_backup: bool = False
    #: Whether a restore may replace its live source; False refuses an in-place restore (``restore_refusal`` says why).
    restores_in_place: bool = True
    #: What a person runs to load a decrypted, decompressed artifact by hand (written into every manifest).
    restore_hint: str = "cat > restored"
    #: When the portal refuses to restore its backups (in place when not restores_in_place, at all when it has no
    #: restorer): what they are and what to do instead, completing "run #N is ..." / "target T is ...".
    restore_refusal: str = ""
    #: Shown in the admin's source column when a target of this engine has no source (it needs none).
    implied_source: str = ""
    #: The class that loads its backups into a new place (None: the generic restore cannot load them).
    restorer: type[Restorer] | None = None

    def dump(self, source: str, *, endpoint_url: str = "") -> Dump:
        """Start reading ``source`` (resolved from ``env:NAME`` already); ``endpoint_url`` is for uses_endpoint."""
        raise SourceError(f"the {self.name} engine does not back up through the portal's pipeline")

    def check_source(self, source: str) -> None:
        """Raise SourceError when ``source`` cannot be right, without reading it (on save)."""

    def places(self, source: str) -> list[Place]:
        """Where its live data is (for the restore guards); empty when it has no place to restore over."""
        return []

    def local_path(self, source: str) -> Path | None:
        """The path on the worker's disk this source reads, when reads_local_disk."""
        return None

    def live_places(self) -> list[tuple[Place, str]]:
        """Places that are live data whatever the targets say, each with what it is (never a restore destination)."""
        return []

    def in_place_destination(self, source: str) -> str:
        """The restore destination that replaces this live source (a restore test's scratch copy goes beside it)."""
        return resolve_source(source)

    def make_restorer(self, destination: str, *, scratch_prefix: str | None = None, endpoint_url: str = "") -> Restorer:
        """A restorer for ``destination``; with ``scratch_prefix``, a restore test's throwaway copy."""
        if self.restorer is None:
            raise SourceError(f"the portal cannot restore {self.name} backups itself: {self.restore_refusal}")
        if self.uses_endpoint:
            return self.restorer(destination, scratch_prefix=scratch_prefix, endpoint_url=endpoint_url)
        return self.restorer(destination, scratch_prefix=scratch_prefix)
