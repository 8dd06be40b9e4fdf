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
from typing import BinaryIO

from django.conf import settings


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
