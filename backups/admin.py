"""Admin for the backup catalogue. Thin: actions call services; secrets are write-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from .models import Artifact, BackupRun, Location, Target
from .services import backup


class SecretInput(forms.PasswordInput):
    """Never renders the stored value back into the page."""

    def __init__(self):
        super().__init__(render_value=False, attrs={"autocomplete": "new-password"})


class KeepSecretsForm(forms.ModelForm):
    """A blank secret field on change keeps the stored value instead of erasing it."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_fields:
            field = self.fields[name]
            field.widget = SecretInput()
            field.required = False
            if self.instance.pk and getattr(self.instance, name):
                field.help_text = "Stored (encrypted). Leave blank to keep it; type a new value to replace it."

    def clean(self):
        cleaned = super().clean()
        for name in self.secret_fields:
            if self.instance.pk and not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name)
        return cleaned


def _formfield(db_field, **kwargs):
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class LocationForm(KeepSecretsForm):
    secret_fields = ("access_key_id", "secret_access_key")

    class Meta:
        formfield_callback = _formfield
        model = Location
        fields = (
            "name",
            "url",
            "enabled",
            "description",
            "endpoint_url",
            "region",
            "storage_class",
            "access_key_id",
            "secret_access_key",
            "retention_days",
            "keep_last",
        )


class TargetForm(KeepSecretsForm):
    secret_fields = ("source",)
    engine = forms.ChoiceField(choices=())

    class Meta:
        model = Target
        fields = (
            "name",
            "engine",
            "source",
            "locations",
            "enabled",
            "description",
            "schedule",
            "timezone",
            "compression",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from .engines import ENGINES

        self.fields["engine"].choices = [(name, engine.label) for name, engine in sorted(ENGINES.items())]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("engine") not in (None, "portal") and not cleaned.get("source"):
            self.add_error("source", "This engine needs a source (a URL or env:NAME).")
        return cleaned


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    form = LocationForm
    list_display = ("name", "url", "storage_class", "retention_days", "keep_last", "enabled")
    list_filter = ("enabled",)
    search_fields = ("name", "url")
    fieldsets = (
        (None, {"fields": ("name", "url", "enabled", "description")}),
        ("S3", {"fields": ("endpoint_url", "region", "storage_class", "access_key_id", "secret_access_key")}),
        ("Retention", {"fields": ("retention_days", "keep_last")}),
    )


@admin.register(Target)
class TargetAdmin(admin.ModelAdmin):
    form = TargetForm
    list_display = ("name", "engine", "source_display", "schedule", "location_names", "enabled")
    list_filter = ("engine", "enabled")
    search_fields = ("name",)
    filter_horizontal = ("locations",)
    readonly_fields = ("source_display",)
    actions = ["back_up_now"]
    fieldsets = (
        (None, {"fields": ("name", "engine", "source", "source_display", "locations", "enabled", "description")}),
        ("Schedule", {"fields": ("schedule", "timezone", "compression")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("locations")

    @admin.display(description="source")
    def source_display(self, obj):
        return obj.source_display or ("this portal's database" if obj.engine == "portal" else "-")

    @admin.display(description="locations")
    def location_names(self, obj):
        return ", ".join(loc.name for loc in obj.locations.all())

    def has_run_backup_permission(self, request):
        return request.user.has_perm("backups.run_backup")

    @admin.action(description="Back up now", permissions=["run_backup"])
    def back_up_now(self, request, queryset):
        from .tasks import run_backup

        for target in queryset:
            run = backup.start_backup(target, trigger=BackupRun.Trigger.MANUAL, user=request.user)
            transaction.on_commit(lambda pk=run.pk: run_backup.delay(pk))
            url = reverse("admin:backups_backuprun_change", args=[run.pk])
            self.message_user(
                request,
                format_html('Backup of {} queued as <a href="{}">run #{}</a>.', target.name, url, run.pk),
                messages.SUCCESS,
            )


class ArtifactInline(admin.TabularInline):
    model = Artifact
    extra = 0
    can_delete = False
    fields = ("location", "url", "size_display", "storage_class", "sha256", "status", "created_at", "deleted_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="size")
    def size_display(self, obj):
        return filesizeformat(obj.size)


def progress_bar(run: BackupRun) -> str:
    """A progress bar: bytes read so far against the previous good run's size, when known."""
    if run.status == BackupRun.Status.RUNNING:
        expected = (
            BackupRun.objects.succeeded()
            .filter(target_id=run.target_id)
            .order_by("-queued_at")
            .values_list("bytes_in", flat=True)
            .first()
        )
        percent = min(99, int(100 * run.bytes_in / expected)) if expected else None
    elif run.status == BackupRun.Status.SUCCEEDED:
        percent = 100
    else:
        percent = None if run.status == BackupRun.Status.QUEUED else 0
    return format_html(
        '<span class="run-progress" data-run="{}" data-status="{}">'
        '<progress max="100" {}></progress> <span class="run-progress-text">{}</span></span>',
        run.pk,
        run.status,
        format_html('value="{}"', percent) if percent is not None else "",
        f"{filesizeformat(run.bytes_in)} read" if run.status in ("running", "queued") else run.status,
    )


@admin.register(BackupRun)
class BackupRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "target",
        "status_badge",
        "progress",
        "started_at",
        "duration_display",
        "size_display",
        "triggered",
    )
    list_display_links = ("id",)
    list_filter = ("status", "trigger", "target")
    list_select_related = ("target", "triggered_by")
    show_full_result_count = False
    date_hierarchy = "queued_at"
    search_fields = ("=id", "sha256", "target__name")
    inlines = [ArtifactInline]
    readonly_fields = (
        "target",
        "status_badge",
        "progress",
        "trigger",
        "triggered_by",
        "queued_at",
        "started_at",
        "finished_at",
        "duration_display",
        "heartbeat_at",
        "worker",
        "bytes_in",
        "bytes_out",
        "sha256",
        "engine",
        "format",
        "compression",
        "key_ids",
        "tables_display",
        "error",
    )
    fieldsets = (
        (None, {"fields": ("target", "status_badge", "progress", "error")}),
        (
            "When and who",
            {
                "fields": (
                    "trigger",
                    "triggered_by",
                    "queued_at",
                    "started_at",
                    "finished_at",
                    "duration_display",
                    "heartbeat_at",
                    "worker",
                )
            },
        ),
        (
            "Content",
            {
                "fields": (
                    "bytes_in",
                    "bytes_out",
                    "sha256",
                    "engine",
                    "format",
                    "compression",
                    "key_ids",
                    "tables_display",
                )
            },
        ),
    )

    class Media:
        js = ("backups/progress.js",)
        css = {"all": ("backups/admin.css",)}

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Runs are records: nobody edits them, but viewers may open them.
        return False

    def get_urls(self):
        urls = super().get_urls()
        extra = [
            path(
                "<int:run_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="backups_backuprun_progress",
            ),
        ]
        return extra + urls

    def progress_view(self, request, run_id):
        if not self.has_view_permission(request):
            return JsonResponse({"error": "forbidden"}, status=403)
        run = get_object_or_404(BackupRun, pk=run_id)
        return JsonResponse(
            {
                "id": run.pk,
                "status": run.status,
                "bytes_in": run.bytes_in,
                "bytes_out": run.bytes_out,
                "html": progress_bar(run),
            }
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html('<span class="run-status run-status-{}">{}</span>', obj.status, obj.get_status_display())

    @admin.display(description="progress")
    def progress(self, obj):
        return progress_bar(obj)

    @admin.display(description="duration")
    def duration_display(self, obj):
        duration = obj.duration
        if duration is None:
            return "-"
        seconds = duration.total_seconds()
        return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"

    @admin.display(description="size", ordering="bytes_out")
    def size_display(self, obj):
        return filesizeformat(obj.bytes_out) if obj.bytes_out else "-"

    @admin.display(description="triggered by")
    def triggered(self, obj):
        return obj.triggered_by.get_username() if obj.triggered_by else obj.get_trigger_display()

    @admin.display(description="tables (rows at backup time)")
    def tables_display(self, obj):
        if not obj.tables:
            return "-"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", obj.tables.items())
        return format_html('<table class="run-tables"><tr><th>table</th><th>rows</th></tr>{}</table>', rows)
