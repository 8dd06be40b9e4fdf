"""Restorers: load a decrypted, decompressed stream into a new place, check it, then swap it in.

Each format has one. The contract that makes restores safe:
``prepare()`` creates something new and touches nothing live; ``sink()`` is
where the stream goes; ``finish_load()`` raises if the loader failed;
``count_rows()`` reads the new copy; only ``swap()`` touches live data, and it
keeps the previous data under ``rollback_name``; ``discard()`` removes the new copy.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import psycopg
from django.utils import timezone
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from .base import Place, SourceError, StreamingProcess, path_place, postgresql_place, redact, scrub
from .postgresql import connection_env
from .sqlite import count_rows, sqlite_path

logger = logging.getLogger(__name__)

PG_NAME_LIMIT = 63


@dataclass
class RestorePlan:
    destination: str  # safe to show
    replaces: str | None  # what live data will be replaced, if any
    rollback_name: str | None


def _stamp() -> str:
    return timezone.now().strftime("%Y%m%dT%H%M")


def swap_into_place(scratch: Path, path: Path, rollback: Path) -> Path | None:
    """Rename ``scratch`` to ``path``, first moving what is there to ``rollback`` (or a free
    name beside it); if the second rename fails, the first is undone. Returns where the
    previous data went, or None when there was none."""
    if not path.exists():
        os.replace(scratch, path)
        return None
    if rollback.exists():
        rollback = rollback.with_name(f"{rollback.name}{timezone.now():%S}")
    os.replace(path, rollback)
    try:
        os.replace(scratch, path)
    except OSError:
        os.replace(rollback, path)
        raise
    return rollback


class Restorer:
    format = ""
    # The rollback name shown on a confirmation page; used when still free, so what the
    # person agreed to is what happens even if the minute changed in between.
    rollback_hint: str | None = None

    def plan(self) -> RestorePlan:
        raise NotImplementedError

    def places(self) -> list[Place]:
        """Where ``swap()`` would put the restored data (what the restore guards compare with live data)."""
        raise NotImplementedError

    def prepare(self) -> None:
        raise NotImplementedError

    def sink(self) -> BinaryIO:
        raise NotImplementedError

    def finish_load(self) -> None:
        raise NotImplementedError

    def count_rows(self, tables: list[str]) -> dict[str, int]:
        return {}

    def swap(self) -> str:
        """Put the new copy in place; returns how to roll back."""
        raise NotImplementedError

    def discard(self) -> None:
        raise NotImplementedError

    def recover(self, scratch: str, rollback: str | None) -> list[str]:
        """After a restore process died: put the previous data back if a swap was cut short,
        and remove the half-loaded copy. Returns what was done."""
        raise NotImplementedError


# A table name as pg_dump writes it in a COPY header: schema.table, each part plain or quoted.
_PG_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_PG_TABLE = re.compile(rf"^{_PG_IDENT}(?:\.{_PG_IDENT})?$")


class PostgreSQLRestorer(Restorer):
    """Restore into a new database with psql (errors fatal), then swap names."""

    format = "postgresql-sql"

    def __init__(self, destination: str, *, scratch_prefix: str | None = None) -> None:
        try:
            self.params = {k: v for k, v in conninfo_to_dict(destination).items() if v not in (None, "")}
        except Exception:
            raise SourceError("the restore destination is not a valid postgresql:// URL") from None
        self.live = self.params.get("dbname")
        if not self.live:
            raise SourceError("the restore destination names no database")
        self.display = redact(destination)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
        base = scratch_prefix or f"{self.live[: PG_NAME_LIMIT - 26]}_restoring"
        self.scratch = f"{base}_{stamp}"[:PG_NAME_LIMIT]
        self.loader: StreamingProcess | None = None
        self._rollback: str | None = None

    # --- connections --------------------------------------------------------------
    def _connect(self, dbname: str) -> psycopg.Connection:
        params = {**self.params, "dbname": dbname}
        params.setdefault("connect_timeout", 10)
        try:
            return psycopg.connect(**params, autocommit=True)
        except psycopg.OperationalError as exc:
            raise SourceError(
                f"cannot connect to {dbname}: {scrub(str(exc), [str(self.params.get('password', ''))])}"
            ) from None

    def _admin(self) -> psycopg.Connection:
        return self._connect("postgres")

    def _exists(self, conn, name: str) -> bool:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None

    def _rollback_name(self, conn) -> str:
        if self.rollback_hint and not self._exists(conn, self.rollback_hint):
            return self.rollback_hint
        suffix = f"_pre_restore_{_stamp()}"
        name = f"{self.live[: PG_NAME_LIMIT - len(suffix)]}{suffix}"
        if self._exists(conn, name):
            name = f"{name[: PG_NAME_LIMIT - 2]}{timezone.now():%S}"
        return name

    # --- the contract -------------------------------------------------------------
    def plan(self) -> RestorePlan:
        with self._admin() as conn:
            live_exists = self._exists(conn, self.live)
            rollback = self._rollback_name(conn) if live_exists else None
        self._rollback = rollback
        return RestorePlan(
            destination=self.display,
            replaces=f"database {self.live} (kept as {rollback})" if live_exists else None,
            rollback_name=rollback,
        )

    def places(self) -> list[Place]:
        return [postgresql_place({**self.params, "dbname": self.live})]

    def prepare(self) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(self.scratch)))

    def sink(self) -> BinaryIO:
        env = connection_env({**self.params, "dbname": self.scratch})
        import subprocess

        self.loader = StreamingProcess(
            ["psql", "-X", "-q", "--set", "ON_ERROR_STOP=1", "--single-transaction", "-o", "/dev/null"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            secrets=[env.get("PGPASSWORD", "")],
        )
        return self.loader.stdin

    def finish_load(self) -> None:
        assert self.loader is not None
        try:
            self.loader.stdin.close()
        except BrokenPipeError:
            pass
        self.loader.check("psql")

    def abort_load(self) -> None:
        if self.loader is not None:
            self.loader.close()

    def count_rows(self, tables: list[str]) -> dict[str, int]:
        counts = {}
        with self._connect(self.scratch) as conn:
            for name in tables:
                if not _PG_TABLE.match(name):
                    raise SourceError(f"refusing to count rows of oddly named table {name!r}")
                counts[name] = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # noqa: S608 (checked)
        return counts

    def swap(self) -> str:
        ident = sql.Identifier
        with self._admin() as conn:
            if not self._exists(conn, self.live):
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(self.scratch), ident(self.live)))
                self._rollback = None
                return f"{self.live} did not exist before; nothing to roll back (drop {self.live} to undo)"
            rollback = self._rollback or self._rollback_name(conn)
            if self._exists(conn, rollback):
                rollback = self._rollback_name(conn)
            # Stop new sessions, end the current ones, then rename: the only moment live data is touched.
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(ident(self.live)))
            try:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.live,),
                )
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(self.live), ident(rollback)))
            except psycopg.Error:
                conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(ident(self.live)))
                raise
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(ident(rollback)))
            try:
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(self.scratch), ident(self.live)))
            except psycopg.Error:
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(rollback), ident(self.live)))
                raise
        self._rollback = rollback
        return (
            f"previous database kept as {rollback}. To roll back: "
            f'ALTER DATABASE "{self.live}" RENAME TO "{self.live[:40]}_bad"; '
            f'ALTER DATABASE "{rollback}" RENAME TO "{self.live}";'
        )

    @property
    def rollback_name(self) -> str | None:
        return self._rollback

    def discard(self) -> None:
        self.abort_load()
        try:
            with self._admin() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.scratch)))
        except (psycopg.Error, SourceError):
            pass

    def recover(self, scratch: str, rollback: str | None) -> list[str]:
        done = []
        ident = sql.Identifier
        with self._admin() as conn:
            if rollback and not self._exists(conn, self.live) and self._exists(conn, rollback):
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(ident(rollback), ident(self.live)))
                conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(ident(self.live)))
                done.append(f"renamed {rollback} back to {self.live}")
            elif self._exists(conn, self.live):
                conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(ident(self.live)))
                if rollback and self._exists(conn, rollback) and not self._exists(conn, scratch):
                    done.append(f"the swap had completed: {self.live} is the restored copy, {rollback} the previous")
            if scratch and scratch != self.live and self._exists(conn, scratch):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident(scratch)))
                done.append(f"dropped the half-restored database {scratch}")
        return done


class FileRestorer(Restorer):
    """Restore into a new file beside the destination, check it, then rename it into place.

    Subclasses say how a destination names its file (``resolve_path``), how to check the
    new file (``check_file``) and count what it holds (``count_rows``), and may ask for a
    file mode (``mode``) that the new file has from its first byte and the kept one keeps.
    """

    scratch_suffix = ""
    mode: int | None = None

    def __init__(self, destination: str, *, scratch_prefix: str | None = None) -> None:
        self.path = self.resolve_path(destination)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
        if scratch_prefix:
            import tempfile

            self.scratch = Path(tempfile.gettempdir()) / f"{scratch_prefix}_{stamp}{self.scratch_suffix}"
        else:
            self.scratch = self.path.with_name(f".{self.path.name}.restoring-{stamp}")
        self.rollback: Path | None = self.path.with_name(f"{self.path.name}.pre_restore_{_stamp()}")
        self._file: BinaryIO | None = None

    def resolve_path(self, destination: str) -> Path:
        raise NotImplementedError

    def check_file(self) -> None:
        """Raise SourceError if the restored file is not sound."""

    def places(self) -> list[Place]:
        return [path_place(self.path)]

    def plan(self) -> RestorePlan:
        if self.path.is_dir():
            raise SourceError(f"{self.path} is a folder, not a file")
        if self.rollback_hint and not Path(self.rollback_hint).exists():
            self.rollback = Path(self.rollback_hint)
        exists = self.path.exists()
        kept = f"kept as {self.rollback.name}" + (f", mode {self.mode:o}" if self.mode else "")
        return RestorePlan(
            destination=str(self.path),
            replaces=f"file {self.path} ({kept})" if exists else None,
            rollback_name=str(self.rollback) if exists else None,
        )

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.mode is None:
            self._file = open(self.scratch, "xb")
            return
        # Created with its mode from the first byte (secrets are never readable by others, not even briefly).
        fd = os.open(self.scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
        os.fchmod(fd, self.mode)  # whatever the umask
        self._file = os.fdopen(fd, "wb")

    def sink(self) -> BinaryIO:
        assert self._file is not None
        return self._file

    def finish_load(self) -> None:
        assert self._file is not None
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        self.check_file()

    def swap(self) -> str:
        assert self.rollback is not None
        self.rollback = swap_into_place(self.scratch, self.path, self.rollback)
        if self.rollback is None:
            return f"{self.path} did not exist before; nothing to roll back"
        if self.mode is not None:
            try:
                # The previous data stays around for rollback: no more readable than the new.
                os.chmod(self.rollback, self.mode)
            except OSError as exc:
                logger.warning("could not set the mode of %s: %s", self.rollback, exc.strerror)
        return f"previous file kept as {self.rollback}. To roll back: mv {self.rollback} {self.path}"

    @property
    def rollback_name(self) -> str | None:
        return str(self.rollback) if self.rollback else None

    def discard(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        self.scratch.unlink(missing_ok=True)

    def recover(self, scratch: str, rollback: str | None) -> list[str]:
        done = []
        if rollback and not self.path.exists() and Path(rollback).exists():
            os.replace(rollback, self.path)
            done.append(f"moved {rollback} back to {self.path}")
        if scratch and Path(scratch).exists():
            Path(scratch).unlink()
            done.append(f"removed the half-restored file {scratch}")
        return done


class SQLiteRestorer(FileRestorer):
    """A SQLite file: must pass its own integrity check before it replaces anything."""

    format = "sqlite3"
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


# Imported here, not at the top: these modules subclass Restorer (the package imports this module first).
from .envfile import EnvRestorer  # noqa: E402
from .files import TarRestorer  # noqa: E402

RESTORERS: dict[str, type[Restorer]] = {
    PostgreSQLRestorer.format: PostgreSQLRestorer,
    SQLiteRestorer.format: SQLiteRestorer,
    TarRestorer.format: TarRestorer,
    EnvRestorer.format: EnvRestorer,
}


def restorer_for(fmt: str, destination: str, *, endpoint_url: str = "", **kwargs) -> Restorer:
    """The restorer for a backup format; ``endpoint_url`` goes only to those that reach S3."""
    try:
        cls = RESTORERS[fmt]
    except KeyError:
        raise SourceError(f"no restorer for backup format {fmt!r}") from None
    if getattr(cls, "uses_endpoint", False):
        kwargs["endpoint_url"] = endpoint_url
    return cls(destination, **kwargs)
