"""pgBackRest workflows: set up a stanza, back up, import the catalogue, restore to a moment, verify, RPO.

The portal drives pgBackRest (Debian package ``pgbackrest``) and never ships WAL itself.
Two rules the best PostgreSQL teams never forget are enforced here: a restored or test
copy never archives into the production repository (it is restored with
``--archive-mode=off`` and started with ``archive_mode=off``), and a restore to time T
first makes sure WAL archived past T exists (switching WAL and waiting if needed).

One module per job (stanza, backup, pitr, verify, rpo); callers use this package's names.
"""

from .backup import ImportReport, import_info, manifest_sha256, perform_backup
from .pitr import (
    BackupSet,
    PitrPlan,
    PitrRefused,
    backup_set_for,
    backup_set_in_repositories,
    check_on_host,
    check_request,
    count_tables,
    ensure_wal_past,
    execute_pitr,
    free_port,
    plan_of,
    port_in_use,
    propose_pitr,
    record_pitr,
    request_pitr,
    run_requested,
    stop_and_remove,
    wait_and_check,
)
from .rpo import WalPoint, exposure_points, wal_recovery_point
from .stanza import (
    ESCROW_SUFFIX,
    HEARTBEAT_SECONDS,
    TYPE_ORDER,
    connect,
    escrow_key,
    next_type,
    repos_of,
    request_type,
    setup,
    stanza_of,
    write_escrow,
)
from .verify import restore_test, verify

__all__ = [
    "ESCROW_SUFFIX",
    "TYPE_ORDER",
    "HEARTBEAT_SECONDS",
    "stanza_of",
    "repos_of",
    "escrow_key",
    "write_escrow",
    "setup",
    "connect",
    "next_type",
    "request_type",
    "perform_backup",
    "manifest_sha256",
    "ImportReport",
    "import_info",
    "PitrRefused",
    "free_port",
    "port_in_use",
    "PitrPlan",
    "propose_pitr",
    "check_request",
    "check_on_host",
    "BackupSet",
    "backup_set_for",
    "backup_set_in_repositories",
    "record_pitr",
    "request_pitr",
    "plan_of",
    "run_requested",
    "ensure_wal_past",
    "execute_pitr",
    "wait_and_check",
    "count_tables",
    "stop_and_remove",
    "verify",
    "restore_test",
    "WalPoint",
    "wal_recovery_point",
    "exposure_points",
]
