"""Engine registry: one module per kind of source."""

from __future__ import annotations

# First: the restorer registry imports the engine modules whose restorers subclass its base class.
from . import restorers  # noqa: F401
from .base import Dump, SourceError, redact, resolve_source
from .envfile import EnvEngine
from .files import FilesEngine
from .pgbackrest import PgBackRestEngine
from .portal import PortalEngine
from .postgresql import PostgreSQLEngine
from .sqlite import SQLiteEngine

ENGINES = {
    engine.name: engine
    for engine in (PostgreSQLEngine(), SQLiteEngine(), PortalEngine(), FilesEngine(), EnvEngine(), PgBackRestEngine())
}


def get_engine(name: str):
    try:
        return ENGINES[name]
    except KeyError:
        raise SourceError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}") from None


def open_dump(engine, source: str, *, endpoint_url: str = "") -> Dump:
    """Start ``engine``'s dump of ``source``; engines that read S3 also get the target's endpoint."""
    if getattr(engine, "uses_endpoint", False):
        return engine.dump(source, endpoint_url=endpoint_url)
    return engine.dump(source)


__all__ = ["ENGINES", "Dump", "SourceError", "get_engine", "open_dump", "redact", "resolve_source"]
