"""Admin inlines of the pgbackrest engine: a target's stanza settings and what pgBackRest says of a run."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.html import format_html

from drportal import humanize
from drportal.admin_base import RecordAdminMixin

from .engines import pgbackrest as pgbr
from .models import PgBackRestBackup, PgBackRestStanza


class PgBackRestStanzaForm(forms.ModelForm):
    class Meta:
        model = PgBackRestStanza
        # The passphrase is generated once and never shown or typed: it is escrowed with age instead.
        fields = PgBackRestStanza.SETTINGS


class PgBackRestStanzaInline(admin.StackedInline):
    """Only for targets whose engine is pgbackrest (the inline is hidden for the others)."""

    model = PgBackRestStanza
    form = PgBackRestStanzaForm
    extra = 0
    max_num = 1
    can_delete = False
    verbose_name_plural = "pgBackRest (the target's schedule takes full backups)"
    readonly_fields = ("postgresql_conf", "passphrase", "checked_at", "last_error")

    def _applies(self, obj) -> bool:
        # On the add page the engine is not chosen yet: offer the form (left empty, it is not saved).
        return obj is None or (obj.engine == pgbr.ENGINE_NAME and not hasattr(obj, "pgbackrest"))

    def get_formset(self, request, obj=None, **kwargs):
        kwargs["extra"] = 1 if self._applies(obj) else 0
        return super().get_formset(request, obj, **kwargs)

    def has_add_permission(self, request, obj=None):
        return self._applies(obj) and super().has_add_permission(request, obj)

    # Other engines' targets do not get this inline at all (Django drops an inline nobody may see or change).
    def has_view_permission(self, request, obj=None):
        return (obj is None or obj.engine == pgbr.ENGINE_NAME) and super().has_view_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return (obj is None or obj.engine == pgbr.ENGINE_NAME) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="postgresql.conf lines")
    def postgresql_conf(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return format_html("<pre>{}</pre>", "\n".join(pgbr.setup_lines(obj.target.name)))

    @admin.display(description="cipher passphrase")
    def passphrase(self, obj):
        return "generated; stored encrypted; escrowed with age beside each repository" if obj and obj.pk else "-"


class PgBackRestBackupInline(RecordAdminMixin, admin.StackedInline):
    model = PgBackRestBackup
    extra = 0
    can_delete = False
    verbose_name_plural = "pgBackRest"
    fields = (
        ("type", "requested_type", "label", "prior"),
        ("started_at", "stopped_at"),
        ("lsn_start", "lsn_stop"),
        ("wal_start", "wal_stop"),
        ("database_size_display", "repository_size_display"),
    )
    readonly_fields = (
        "type",
        "requested_type",
        "label",
        "prior",
        "started_at",
        "stopped_at",
        "lsn_start",
        "lsn_stop",
        "wal_start",
        "wal_stop",
        "database_size_display",
        "repository_size_display",
    )

    @admin.display(description="database size")
    def database_size_display(self, obj):
        return humanize.size(obj.database_size)

    @admin.display(description="repository size")
    def repository_size_display(self, obj):
        return humanize.size(obj.repository_size)
