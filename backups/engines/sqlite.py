"""SQLite: a consistent copy through the online backup API, never a file copy of a live database."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from .base import Dump, Place, SourceError, path_place, resolve_source
from .engine import Engine
from .restore_base import FileRestorer


def sqlite_path(source: str) -> Path:
    if source.startswith("sqlite:"):
        parts = urlsplit(source)
        path = parts.path
        if path.startswith("//"):  # sqlite:////abs/path: four slashes, as SQLAlchemy writes it
            path = "/" + path.lstrip("/")
        if parts.netloc:  # sqlite://relative/path is not meaningful; insist on sqlite:///abs
            raise SourceError("a SQLite source must look like sqlite:////absolute/path.db or sqlite:///path.db")
        return Path(path)
    return Path(source)


def count_rows(conn: sqlite3.Connection) -> dict[str, int]:
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}


class SQLiteDump(Dump):
    def __init__(self, source: str) -> None:
        path = sqlite_path(source)
        if not path.is_file():
            raise SourceError(f"SQLite database {path} does not exist")
        settings.BACKUP_SPOOL_DIR.mkdir(parents=True, exist_ok=True)
        self._copy = tempfile.NamedTemporaryFile(dir=settings.BACKUP_SPOOL_DIR, suffix=".sqlite3", delete=False)
        self._copy.close()
        try:
            src = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            dst = sqlite3.connect(self._copy.name)
            with dst:
                src.backup(dst)
            self.tables = count_rows(dst)
            src.close()
            dst.close()
        except sqlite3.Error as exc:
            Path(self._copy.name).unlink(missing_ok=True)
            raise SourceError(f"SQLite backup of {path.name} failed: {exc}") from None
        self.stream = open(self._copy.name, "rb")

    def finish(self) -> dict:
        return {"tables": self.tables}

    def abort(self) -> None:
        self.stream.close()
        Path(self._copy.name).unlink(missing_ok=True)


class SQLiteRestorer(FileRestorer):
    """A SQLite file: must pass its own integrity check before it replaces anything."""

    scratch_suffix = ".sqlite3"

    def resolve_path(self, destination: str) -> Path:
        return sqlite_path(destination).expanduser().resolve()

    def check_file(self) -> None:
        try:
            conn = sqlite3.connect(f"{self.scratch.as_uri()}?mode=ro", uri=True)
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            conn.close()
        except sqlite3.Error as exc:
            raise SourceError(f"the restored SQLite file does not open: {exc}") from None
        if result != "ok":
            raise SourceError(f"the restored SQLite file fails its integrity check: {result}")

    def count_rows(self, tables: list[str]) -> dict[str, int]:
        conn = sqlite3.connect(f"{self.scratch.as_uri()}?mode=ro", uri=True)
        try:
            counts = count_rows(conn)
        finally:
            conn.close()
        return {name: counts.get(name, -1) for name in tables} if tables else counts


class SQLiteEngine(Engine):
    name = "sqlite"
    label = "SQLite database file"
    format = "sqlite3"
    extension = ".sqlite3"
    is_database = True
    reads_local_disk = True
    restore_hint = "cat > restored.sqlite3"
    restorer = SQLiteRestorer

    def dump(self, source: str, *, endpoint_url: str = "") -> Dump:
        return SQLiteDump(source)

    def places(self, source: str) -> list[Place]:
        """The live file and the journal files SQLite keeps beside it (for the restore guards)."""
        path = str(sqlite_path(resolve_source(source)))
        return [path_place(path + suffix) for suffix in ("", "-wal", "-shm", "-journal")]

    def local_path(self, source: str) -> Path | None:
        """The database file this source reads on the worker's disk."""
        return sqlite_path(source)
