"""Admin of the public status page's components and updates."""

from __future__ import annotations

from django.contrib import admin

from drportal.admin_base import RecordAdminMixin

from ..models import (
    StatusComponent,
    StatusUpdate,
)


@admin.register(StatusComponent)
class StatusComponentAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "state", "order", "updated_at")
    list_editable = ("state", "order")


@admin.register(StatusUpdate)
class StatusUpdateAdmin(RecordAdminMixin, admin.ModelAdmin):
    """Every public update ever posted (read-only: they were sent)."""

    list_display = ("at", "incident", "phase", "message", "author")
    list_filter = ("phase",)
    list_select_related = ("incident", "author")
    show_full_result_count = False
