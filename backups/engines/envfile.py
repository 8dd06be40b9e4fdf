"""Environment files: an app's ``.env``, or chosen variables of the worker's own environment.

The content is secrets by nature, so nothing here ever puts a value into a
message, a log line or the manifest: only the file's path, variable *names*
and a count of variables. The bytes go through the same pipeline as every
other backup (always age-encrypted), and a restore writes a new file with
mode 0600 beside the destination before renaming it into place.

Sources: an absolute path or ``file:///path`` (``env:NAME`` is resolved to one
before the engine sees it), or ``vars:NAME1,NAME2``: those variables of the
worker's environment, rendered as ``NAME=value`` lines, quoted for a shell.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

from .base import Dump, Place, SourceError, path_place, resolve_source
from .engine import Engine
from .restore_base import FileRestorer

logger = logging.getLogger(__name__)

# An environment file is small; anything bigger is the wrong path, not a .env to hold in memory.
MAX_BYTES = 16 << 20
SECRET_MODE = 0o600

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=")
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]*$")


def env_path(location: str) -> Path:
    """An absolute path or ``file:///path`` → the file's path (the location itself is never echoed)."""
    path = urlsplit(location).path if location.startswith("file:") else location
    result = Path(path).expanduser()
    if not result.is_absolute():
        raise SourceError("an environment file must be an absolute path or file:///absolute/path")
    return result


def render_variables(spec: str) -> bytes:
    """``NAME1,NAME2`` → ``NAME1=value`` lines from this process's environment, quoted where needed."""
    names = list(dict.fromkeys(name.strip() for name in spec.split(",") if name.strip()))
    if not names:
        raise SourceError("a vars: source must name variables: vars:NAME1,NAME2")
    lines = []
    for name in names:
        if not _NAME.match(name):
            raise SourceError(f"{name!r} is not a valid environment variable name")
        value = os.environ.get(name)
        if value is None:
            raise SourceError(f"environment variable {name} is not set on this worker")
        lines.append(f"{name}={value if _PLAIN_VALUE.match(value) else shlex.quote(value)}\n")
    return "".join(lines).encode()


def read_env_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_BYTES:
                raise SourceError(f"{path} is larger than {MAX_BYTES >> 20} MiB; is it really an environment file?")
            return handle.read()
    except FileNotFoundError:
        raise SourceError(f"environment file {path} does not exist") from None
    except IsADirectoryError:
        raise SourceError(f"environment file {path} is a folder, not a file") from None
    except PermissionError:
        raise SourceError(f"cannot read environment file {path}: permission denied") from None
    except OSError as exc:
        # strerror only: the exception's text could in theory carry more than the path.
        raise SourceError(f"cannot read environment file {path}: {exc.strerror}") from None


def _closes(rest: str, quote: str) -> bool:
    """Whether ``rest`` holds the closing ``quote`` (inside double quotes a backslash escapes)."""
    i = 0
    while i < len(rest):
        if rest[i] == "\\" and quote == '"':
            i += 2
            continue
        if rest[i] == quote:
            return True
        i += 1
    return False


def count_variables(data: bytes) -> int:
    """How many distinct variables a dotenv/shell file assigns; lenient, never raises, never shows a value.

    Multi-line quoted values count once; comments and blank lines not at all.
    """
    names: set[str] = set()
    quote = None
    for line in data.decode("utf-8", "replace").split("\n"):
        if quote:
            if _closes(line, quote):
                quote = None
            continue
        match = _ASSIGNMENT.match(line)
        if not match:
            continue
        names.add(match[1])
        value = line[match.end() :].lstrip()
        if value[:1] in ("'", '"') and not _closes(value[1:], value[0]):
            quote = value[0]
    return len(names)


class EnvDump(Dump):
    def __init__(self, source: str) -> None:
        data = render_variables(source[5:]) if source.startswith("vars:") else read_env_file(env_path(source))
        self.variables = count_variables(data)
        self.stream = io.BytesIO(data)

    def finish(self) -> dict:
        return {"tables": {"variables": self.variables}}

    def abort(self) -> None:
        self.stream.close()


class EnvRestorer(FileRestorer):
    """A new 0600 environment file beside the destination; its variables counted, then renamed into place."""

    scratch_suffix = ".env"
    mode = SECRET_MODE

    def resolve_path(self, destination: str) -> Path:
        return env_path(destination).resolve()

    def count_rows(self, tables: list[str]) -> dict[str, int]:
        counts = {"variables": count_variables(self.scratch.read_bytes())}
        return {name: counts.get(name, -1) for name in tables} if tables else counts


class EnvEngine(Engine):
    name = "env"
    label = "Environment file (.env) or vars:NAME1,NAME2 of the worker"
    format = "env"
    extension = ".env"
    reads_local_disk = True
    restore_hint = "cat > restored.env"
    restorer = EnvRestorer

    def dump(self, source: str, *, endpoint_url: str = "") -> Dump:
        return EnvDump(source)

    def places(self, source: str) -> list[Place]:
        """The live environment file (``vars:`` lives in the worker's environment: no place to restore over)."""
        return [] if source.startswith("vars:") else [path_place(env_path(resolve_source(source)))]

    def local_path(self, source: str) -> Path | None:
        """The file this source reads on the worker's disk; None for vars:NAME1,NAME2."""
        return None if source.startswith("vars:") else env_path(source)
