"""Engine registry: one module per kind of source."""

from __future__ import annotations

import re

# First: the restorer registry imports the engine modules whose restorers subclass its base class.
from . import restorers  # noqa: F401
from .base import Dump, SourceError, redact, resolve_source
from .envfile import EnvEngine
from .files import FilesEngine
from .pgbackrest import PgBackRestEngine
from .portal import PortalEngine
from .postgresql import PostgreSQLEngine
from .sqlite import SQLiteEngine

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

ENGINES = {
    engine.name: engine
    for engine in (PostgreSQLEngine(), SQLiteEngine(), PortalEngine(), FilesEngine(), EnvEngine(), PgBackRestEngine())
}


def get_engine(name: str):
    try:
        return ENGINES[name]
    except KeyError:
        raise SourceError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}") from None


def check_source(engine_name: str, source: str) -> None:
    """What can be known about a source when it is saved, without reading it: an ``env:`` reference names a
    variable (whether a worker has it is only known there), and the engine's own form check when it has one."""
    if source.startswith("env:"):
        if not ENV_NAME.fullmatch(source[4:]):
            raise SourceError("env:NAME needs an environment variable name (letters, digits, _), e.g. env:DATABASE_URL")
        return
    check = getattr(ENGINES.get(engine_name), "check_source", None)
    if check is not None:
        check(source)


def open_dump(engine, source: str, *, endpoint_url: str = "") -> Dump:
    """Start ``engine``'s dump of ``source``; engines that read S3 also get the target's endpoint."""
    if getattr(engine, "uses_endpoint", False):
        return engine.dump(source, endpoint_url=endpoint_url)
    return engine.dump(source)


__all__ = ["ENGINES", "Dump", "SourceError", "check_source", "get_engine", "open_dump", "redact", "resolve_source"]
