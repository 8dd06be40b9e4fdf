"""Engine registry: one module per kind of source."""

from __future__ import annotations

from .base import Dump, SourceError, redact, resolve_source
from .portal import PortalEngine
from .postgresql import PostgreSQLEngine
from .sqlite import SQLiteEngine

ENGINES = {engine.name: engine for engine in (PostgreSQLEngine(), SQLiteEngine(), PortalEngine())}


def get_engine(name: str):
    try:
        return ENGINES[name]
    except KeyError:
        raise SourceError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}") from None


__all__ = ["ENGINES", "Dump", "SourceError", "get_engine", "redact", "resolve_source"]
