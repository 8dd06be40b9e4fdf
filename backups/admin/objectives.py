"""Admin of RPO objectives and their state changes."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from drportal import humanize
from drportal.admin_base import HiddenFromViewersMixin, PermanentRecordAdminMixin

from ..models import Objective, ObjectiveChange
from .display import ReadOnlyInline


class ObjectiveChangeInline(ReadOnlyInline):
    model = ObjectiveChange
    fields = ("at", "from_state", "to_state", "exposure_seconds", "last_good_at")
    readonly_fields = fields
    ordering = ("-at",)
    max_num = 0

    def get_queryset(self, request):
        # Only the recent history on the page; the full history is in the changes list.
        return super().get_queryset(request).order_by("-at")


@admin.register(Objective)
class ObjectiveAdmin(HiddenFromViewersMixin, admin.ModelAdmin):
    # The ping URL holds the token: anyone who has it can mark the objective safe.
    hidden_from_viewers = ("ping_url",)
    list_display = ("name", "state_badge", "exposure", "rpo", "last_good_at", "fed_by", "enabled")
    list_filter = ("state", "ping", "enabled")
    filter_horizontal = ("targets",)
    readonly_fields = ("state_badge", "exposure", "last_good_at", "state_changed_at", "evaluated_at", "ping_url")
    inlines = [ObjectiveChangeInline]
    fieldsets = (
        (None, {"fields": ("name", "description", "rpo", "grace", "enabled")}),
        ("Fed by", {"fields": ("targets", "ping", "ping_url")}),
        ("Now", {"fields": ("state_badge", "exposure", "last_good_at", "state_changed_at", "evaluated_at")}),
    )

    class Media:
        css = {"all": ("backups/admin.css",)}

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("targets")

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        return format_html('<span class="rpo-state rpo-state-{}">{}</span>', obj.state, obj.get_state_display())

    @admin.display(description="exposure (data-loss window now)", ordering="exposure_seconds")
    def exposure(self, obj):
        return humanize.duration(obj.exposure_seconds, "never backed up")

    @admin.display(description="fed by")
    def fed_by(self, obj):
        return "pings" if obj.ping else ", ".join(t.name for t in obj.targets.all())

    @admin.display(description="ping URL")
    def ping_url(self, obj):
        if not obj.pk or not obj.ping:
            return "Set “ping” and save to get the URL external feeds POST to."
        url = settings.PORTAL_URL + reverse("ping", args=[obj.ping_token])
        return format_html("<code>curl -fsS -X POST {}</code>", url)


@admin.register(ObjectiveChange)
class ObjectiveChangeAdmin(PermanentRecordAdminMixin, admin.ModelAdmin):
    list_display = ("at", "objective", "from_state", "to_state", "exposure_seconds", "last_good_at")
    list_filter = ("to_state", "objective")
    list_select_related = ("objective",)
    show_full_result_count = False
    date_hierarchy = "at"
