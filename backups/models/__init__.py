"""The backup catalogue: where copies go, what is backed up, every run and every copy.

One module per part (locations, targets, jobs, runs, verifications, restores, objectives, pgbackrest);
everything is re-exported here, so `backups.models.X` keeps working for the code and the migrations
(they name `backups.models.validate_name`, `default_compression`, `default_queue`, ... by that path).
"""

from drportal.validators import validate_name  # migrations name it backups.models.validate_name

from .jobs import FinishingJob, LeasedJob, TriggeredJob
from .locations import (
    Location,
    check_location_url,
    check_source_clear_of_locations,
    source_local_path,
    validate_location_url,
)
from .objectives import Objective, ObjectiveChange, Ping, new_ping_token
from .pgbackrest import BACKUP_TYPES, PgBackRestBackup, PgBackRestStanza, new_cipher_passphrase
from .restores import RecoveryKind, Restore
from .runs import Artifact, BackupRun, CopyProtected, Progress, WatchedQueue
from .targets import QUEUE_RE, Target, default_compression, default_queue, validate_queue
from .verifications import Verification

__all__ = [
    "validate_name",
    "source_local_path",
    "check_location_url",
    "validate_location_url",
    "check_source_clear_of_locations",
    "Location",
    "default_compression",
    "default_queue",
    "QUEUE_RE",
    "validate_queue",
    "Target",
    "TriggeredJob",
    "FinishingJob",
    "LeasedJob",
    "Progress",
    "BackupRun",
    "WatchedQueue",
    "Artifact",
    "CopyProtected",
    "Verification",
    "RecoveryKind",
    "Restore",
    "new_ping_token",
    "Objective",
    "ObjectiveChange",
    "Ping",
    "new_cipher_passphrase",
    "BACKUP_TYPES",
    "PgBackRestStanza",
    "PgBackRestBackup",
]
