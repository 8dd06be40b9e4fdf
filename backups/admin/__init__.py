"""Admin for the backup catalogue, one module per page (targets, runs, verifications, restores, locations,
objectives). Thin: actions call services; secrets are write-only. Everything is re-exported here, so
``from backups.admin import X`` keeps working."""

from ..display import progress_bar, restore_progress_bar
from .display import (
    JobColumns,
    ReadOnlyInline,
    StatusColumn,
    TriggerColumn,
    VerificationColumns,
    button_permissions,
    job_buttons,
    restored_tables_html,
    run_buttons_column,
    target_buttons,
    target_buttons_column,
    verification_summary,
)
from .kept_secrets import (
    KEPT_MAX_AGE,
    KEPT_PURPOSE,
    KEPT_SUFFIX,
    KeepSecretsForm,
    KeptSecretInput,
    SecretInput,
    seal_secret,
    unseal_secret,
)
from .locations import LocationAdmin, LocationForm
from .objectives import ObjectiveAdmin, ObjectiveChangeAdmin, ObjectiveChangeInline
from .restores import RestoreAdmin
from .runs import ArtifactInline, BackupRunAdmin, RestoreForm
from .targets import TargetAdmin, TargetForm
from .verifications import VerificationAdmin, VerificationInline

__all__ = [
    "SecretInput",
    "KEPT_SUFFIX",
    "KEPT_PURPOSE",
    "KEPT_MAX_AGE",
    "seal_secret",
    "unseal_secret",
    "KeptSecretInput",
    "KeepSecretsForm",
    "button_permissions",
    "job_buttons",
    "target_buttons",
    "target_buttons_column",
    "run_buttons_column",
    "progress_bar",
    "restore_progress_bar",
    "ReadOnlyInline",
    "StatusColumn",
    "VerificationColumns",
    "TriggerColumn",
    "restored_tables_html",
    "verification_summary",
    "JobColumns",
    "LocationForm",
    "LocationAdmin",
    "TargetForm",
    "TargetAdmin",
    "ArtifactInline",
    "RestoreForm",
    "BackupRunAdmin",
    "VerificationInline",
    "VerificationAdmin",
    "RestoreAdmin",
    "ObjectiveChangeInline",
    "ObjectiveAdmin",
    "ObjectiveChangeAdmin",
]
