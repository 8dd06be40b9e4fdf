"""Kept so that ``backups.engines.restorers`` still imports (tests and older code use ``restorer_for`` from here).

The restorer base classes live in ``restore_base`` (importing no engine); each engine's restorer lives in
its engine's module; the lookup by format is ``registry.restorer_for``.
"""

from __future__ import annotations

from .envfile import EnvRestorer
from .files import S3TarRestorer, TarRestorer
from .postgresql import PG_NAME_LIMIT, PostgreSQLRestorer
from .registry import restorer_for
from .restore_base import FileRestorer, RestorePlan, Restorer, minute_stamp, swap_into_place
from .sqlite import SQLiteRestorer

__all__ = [
    "PG_NAME_LIMIT",
    "EnvRestorer",
    "FileRestorer",
    "PostgreSQLRestorer",
    "RestorePlan",
    "Restorer",
    "S3TarRestorer",
    "SQLiteRestorer",
    "TarRestorer",
    "minute_stamp",
    "restorer_for",
    "swap_into_place",
]
