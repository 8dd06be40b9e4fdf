"""Admin for the portal's own health (probes, heartbeats) and the audit trail."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db import models
from django.utils.html import format_html

from .admin_base import PermanentRecordAdminMixin
from .models import Heartbeat, Probe, ProbeChange, ProbeResult


class ReadOnlyAdmin(PermanentRecordAdminMixin, admin.ModelAdmin):
    pass


@admin.register(LogEntry)
class AuditTrailAdmin(ReadOnlyAdmin):
    """Django's own log of every admin change and every job started from the admin: read-only for everyone."""

    list_display = ("action_time", "user", "content_type", "object_repr", "action_flag", "change_message")
    list_filter = ("action_flag", "content_type", "user")
    list_select_related = ("user", "content_type")
    search_fields = ("object_repr", "change_message", "user__username")
    date_hierarchy = "action_time"
    show_full_result_count = False


class ProbeResultInline(admin.TabularInline):
    model = ProbeResult
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("at", "ok", "status_code", "duration_ms", "error")
    readonly_fields = fields

    def get_queryset(self, request):
        # The newest results only: a probe writes thousands a week.
        queryset = super().get_queryset(request)
        newest = list(queryset.order_by("-at").values_list("pk", flat=True)[:20])
        return queryset.filter(pk__in=newest)


@admin.register(Probe)
class ProbeAdmin(admin.ModelAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # Django 6's default, without the warning
    list_display = ("name", "state_badge", "url", "last_checked_at", "last_error", "component", "enabled")
    list_filter = ("state", "enabled")
    list_select_related = ("component",)
    readonly_fields = (
        "state",
        "state_changed_at",
        "last_checked_at",
        "last_ok_at",
        "last_error",
        "consecutive_failures",
        "next_check_at",
    )
    inlines = [ProbeResultInline]

    class Media:
        css = {"all": ("drportal/dashboard.css",)}

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        return format_html('<span class="probe-state probe-state-{}">{}</span>', obj.state, obj.state)


@admin.register(ProbeChange)
class ProbeChangeAdmin(ReadOnlyAdmin):
    list_display = ("at", "probe", "from_state", "to_state", "error")
    list_filter = ("to_state", "probe")
    list_select_related = ("probe",)


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "host", "queues", "env_names", "holder", "seen_at")
    list_filter = ("kind",)


def _superusers_only(model_admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """The same admin class, opened by superusers only (every other user gets 403 and no menu entry)."""

    class SuperusersOnly(model_admin_class):
        def has_module_permission(self, request):
            return request.user.is_active and request.user.is_superuser

        def has_view_permission(self, request, obj=None):
            return request.user.is_active and request.user.is_superuser

        def has_add_permission(self, request, *args):
            return request.user.is_active and request.user.is_superuser and super().has_add_permission(request, *args)

        def has_change_permission(self, request, obj=None):
            return request.user.is_active and request.user.is_superuser

        def has_delete_permission(self, request, obj=None):
            return request.user.is_active and request.user.is_superuser

    SuperusersOnly.__name__ = SuperusersOnly.__qualname__ = model_admin_class.__name__
    return SuperusersOnly


def hide_raw_beat_screens(site: admin.AdminSite) -> None:
    """django-celery-beat's raw screens (periodic tasks, intervals, crontabs, clocked, solar) are for superusers.

    Backup schedules are edited on the target (backups.schedules keeps the beat rows in step), so a second,
    raw place to edit them would only let the two disagree. django_celery_beat's admin module is imported
    before this one (INSTALLED_APPS order), so its registrations are replaced here.
    """
    from django_celery_beat import models as beat

    for model in (
        beat.PeriodicTask,
        beat.IntervalSchedule,
        beat.CrontabSchedule,
        beat.ClockedSchedule,
        beat.SolarSchedule,
    ):
        if model in site._registry:
            model_admin_class = type(site._registry[model])
            site.unregister(model)
            site.register(model, _superusers_only(model_admin_class))


hide_raw_beat_screens(admin.site)
