"""Engines: one module per kind of source, one ``register()`` line each below.

``registry`` holds them (``get``, ``find``, ``all``, ``for_format``, ``restorer_for``); ``engine.Engine`` says
what an engine declares; ``restore_base`` holds the restorer base classes (it imports no engine).
"""

from __future__ import annotations

import re

from .base import Dump, SourceError, redact, resolve_source
from .engine import Engine
from .envfile import EnvEngine
from .files import FilesEngine
from .pgbackrest import PgBackRestEngine
from .portal import PortalEngine
from .postgresql import PostgreSQLEngine
from .registry import (
    ENGINES,
    all,
    choices,
    find,
    for_format,
    get,
    names,
    recover_restore,
    register,
    restorer_for,
    unregister,
)
from .sqlite import SQLiteEngine

register(PostgreSQLEngine)
register(SQLiteEngine)
register(PortalEngine)
register(FilesEngine)
register(EnvEngine)
register(PgBackRestEngine)

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_source(engine_name: str, source: str) -> None:
    """What can be known about a source when it is saved, without reading it: an ``env:`` reference names a
    variable (whether a worker has it is only known there), and the engine's own form check."""
    if source.startswith("env:"):
        if not ENV_NAME.fullmatch(source[4:]):
            raise SourceError("env:NAME needs an environment variable name (letters, digits, _), e.g. env:DATABASE_URL")
        return
    engine = find(engine_name)
    if engine is not None:
        engine.check_source(source)


__all__ = [
    "ENGINES",
    "Dump",
    "Engine",
    "SourceError",
    "all",
    "check_source",
    "choices",
    "find",
    "for_format",
    "get",
    "names",
    "recover_restore",
    "redact",
    "register",
    "resolve_source",
    "restorer_for",
    "unregister",
]
