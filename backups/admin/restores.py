"""Admin of restores (a permanent record)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path

from drportal.admin_base import PermanentRecordAdminMixin

from ..display import restore_progress_bar
from ..models import Restore
from ..services import restore as restores
from .display import JobColumns, TriggerColumn, restored_tables_html


def requester_of(request) -> tuple[str, str] | None:
    """The ``?<kind>=<reference>`` another app sent people to a restore page with (incidents: "restore
    before T" sends ?incident=ID), for the restore service to ask that app whether they may restore through it.
    """
    return next(((kind, request.GET[kind]) for kind in restores.requester_kinds() if kind in request.GET), None)


def restore_refused(exc: Exception) -> HttpResponseForbidden:
    """A restore the restore service will not let this person start (no permission, or not through that incident)."""
    return HttpResponseForbidden(f"Restore refused: {exc}\n", content_type="text/plain; charset=utf-8")


@admin.register(Restore)
class RestoreAdmin(PermanentRecordAdminMixin, TriggerColumn, JobColumns, admin.ModelAdmin):
    """Restores start from a backup run's "Restore…" page; what they did is kept for good."""

    progress_html = staticmethod(restore_progress_bar)
    list_display = (
        "id",
        "source",
        "run",
        "destination_display",
        "status_badge",
        "progress",
        "started_at",
        "duration_display",
        "triggered",
    )
    list_filter = ("status", "trigger")
    list_select_related = ("run__target", "triggered_by")
    show_full_result_count = False
    raw_id_fields = ("run", "target")
    fields = (
        "status_badge",
        "progress",
        "source",
        "run",
        "location",
        "target",
        "recovery_kind",
        "recovery_target",
        "destination_display",
        "port",
        "keep_running",
        "swapped_at",
        "rollback_name",
        "trigger",
        "triggered_by",
        "command_user",
        "queued_at",
        "started_at",
        "finished_at",
        "duration_display",
        "tables_display",
        "log",
        "error",
    )
    readonly_fields = fields

    class Media:
        js = ("backups/progress.js",)
        css = {"all": ("backups/admin.css",)}

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:restore_id>/progress/", view(self.progress_view), name="backups_restore_progress"),
            *super().get_urls(),
        ]

    def progress_view(self, request, restore_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        record = get_object_or_404(Restore, pk=restore_id)
        return JsonResponse({"id": record.pk, "status": record.status, "html": restore_progress_bar(record)})

    @admin.display(description="tables (rows restored)")
    def tables_display(self, obj):
        return restored_tables_html(obj.tables)
