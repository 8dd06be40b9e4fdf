"""The portal's own database, whichever engine it runs on: its catalogue matters in a disaster too."""

from __future__ import annotations

from django.db import connections

from .base import Dump, Place, SourceError
from .postgresql import PostgreSQLEngine
from .sqlite import SQLiteEngine


def portal_source() -> tuple[object, str | dict]:
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


class PortalEngine:
    name = "portal"
    label = "This portal's own database"

    def dump(self, source: str) -> Dump:
        engine, resolved = portal_source()
        return engine.dump(resolved)

    def places(self, source: str = "") -> list[Place]:
        """This portal's own database, whatever the target's source field says."""
        engine, resolved = portal_source()
        return engine.places(resolved)
