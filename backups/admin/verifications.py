"""Admin of verifications (integrity checks and restore tests)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from drportal.admin_base import RecordAdminMixin

from ..models import Verification
from .display import ReadOnlyInline, TriggerColumn, VerificationColumns, restored_tables_html


class VerificationInline(TriggerColumn, VerificationColumns, ReadOnlyInline):
    model = Verification
    fields = ("queued_at", "kind", "status_badge", "summary", "duration_seconds", "triggered")
    readonly_fields = fields
    ordering = ("-queued_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("triggered_by")


@admin.register(Verification)
class VerificationAdmin(RecordAdminMixin, TriggerColumn, VerificationColumns, admin.ModelAdmin):
    list_display = ("id", "run", "kind", "status_badge", "summary", "duration_seconds", "queued_at", "triggered")
    list_filter = ("status", "kind", "run__target")
    list_select_related = ("run__target", "triggered_by")
    show_full_result_count = False
    raw_id_fields = ("run",)
    readonly_fields = (
        "run",
        "kind",
        "status",
        "trigger",
        "triggered_by",
        "command_user",
        "queued_at",
        "started_at",
        "finished_at",
        "duration_seconds",
        "checks_display",
        "tables_display",
        "error",
    )
    exclude = ("checks", "tables")

    @admin.display(description="checks")
    def checks_display(self, obj):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((c["name"], c["result"], c["message"]) for c in obj.checks),
        )
        return format_html('<table class="run-tables">{}</table>', rows) if obj.checks else "-"

    @admin.display(description="tables")
    def tables_display(self, obj):
        return restored_tables_html(obj.tables)
