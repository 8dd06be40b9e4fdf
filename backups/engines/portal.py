"""The portal's own database, whichever engine it runs on: its catalogue matters in a disaster too.

It backs up, restores and is restore-tested like the engine of the database it runs on
(PostgreSQL or SQLite), which it delegates to; what sets it apart is said by its attributes:
it needs no source, its database is always live data (never a restore destination), and it
is never restored over itself while it runs.
"""

from __future__ import annotations

from django.db import connections

from .base import Dump, Place, SourceError
from .engine import Engine
from .postgresql import PostgreSQLEngine
from .sqlite import SQLiteEngine


def portal_source() -> tuple[Engine, str | dict]:
    """The engine of the portal's database and its source (libpq parameters, or the SQLite file)."""
    db = connections["default"].settings_dict
    vendor = connections["default"].vendor
    if vendor == "postgresql":
        params = {
            "host": db.get("HOST"),
            "port": db.get("PORT"),
            "user": db.get("USER"),
            "password": db.get("PASSWORD"),
            "dbname": db.get("NAME"),
        }
        return PostgreSQLEngine(), params
    if vendor == "sqlite":
        return SQLiteEngine(), str(db["NAME"])
    raise SourceError(f"the portal's database engine ({vendor}) has no backup engine")


class PortalEngine(Engine):
    name = "portal"
    label = "This portal's own database"
    needs_source = False
    is_database = True
    # Replacing the database this process runs on, while it runs, is refused: restore_refusal says what to do.
    restores_in_place = False
    restore_refusal = (
        "the portal's own database, never restored over itself while it runs; restore it --to a new "
        "database or file, then point DATABASE_URL at it"
    )
    implied_source = "this portal's database"

    # Format, extension, manual restore and restorer are those of the engine the database runs on.
    @property
    def format(self) -> str:
        return portal_source()[0].format

    @property
    def extension(self) -> str:
        return portal_source()[0].extension

    @property
    def restorer(self):
        return portal_source()[0].restorer

    @property
    def restore_hint(self) -> str:
        return portal_source()[0].restore_hint

    def dump(self, source: str = "", *, endpoint_url: str = "") -> Dump:
        engine, resolved = portal_source()
        return engine.dump(resolved)

    def places(self, source: str = "") -> list[Place]:
        """This portal's own database, whatever the target's source field says."""
        engine, resolved = portal_source()
        return engine.places(resolved)

    def live_places(self) -> list[tuple[Place, str]]:
        return [(place, "the portal's own database") for place in self.places()]

    def in_place_destination(self, source: str = "") -> str:
        """The portal's database as a restore destination (a restore test's scratch copy goes beside it)."""
        _engine, resolved = portal_source()
        if isinstance(resolved, dict):
            from psycopg.conninfo import make_conninfo

            return make_conninfo(**{k: v for k, v in resolved.items() if v})
        return resolved
