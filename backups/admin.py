"""Admin for the backup catalogue. Thin: actions call services; secrets are write-only."""

from __future__ import annotations

import zoneinfo

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponseForbidden, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from drportal.admin_base import HiddenFromViewersMixin, PermanentRecordAdminMixin, RecordAdminMixin

from . import engines, schedules
from .admin_pgbackrest import PgBackRestBackupInline, PgBackRestStanzaInline
from .engines import SourceError
from .locations import LocationError
from .models import Artifact, BackupRun, Location, Objective, ObjectiveChange, Restore, Target, Verification
from .services import backup, queues, retention, verify
from .services import restore as restores
from .services.artifacts import ArtifactRefused


class SecretInput(forms.PasswordInput):
    """Never renders the stored value back into the page."""

    def __init__(self):
        super().__init__(render_value=False, attrs={"autocomplete": "new-password"})


KEPT_SUFFIX = "__kept"
KEPT_PURPOSE = b"drportal kept form secret\n"
KEPT_MAX_AGE = 3600  # seconds: a form re-posted within the hour


def seal_secret(value: str) -> str:
    """The secret encrypted (Fernet, FIELD_ENCRYPTION_KEYS) for a hidden input: the page never holds its text.
    A purpose prefix keeps other Fernet tokens (e.g. stored sources) from being accepted in its place."""
    from .fields import field_fernet

    return field_fernet().encrypt(KEPT_PURPOSE + value.encode()).decode()


def unseal_secret(token: str) -> str:
    """The secret back from ``seal_secret``'s token, or "" when it is not one, expired or forged."""
    from cryptography.fernet import InvalidToken

    from .fields import field_fernet

    if not token:
        return ""
    try:
        plain = field_fernet().decrypt(token.encode(), ttl=KEPT_MAX_AGE)
    except (InvalidToken, ValueError, TypeError):
        return ""
    return plain[len(KEPT_PURPOSE) :].decode() if plain.startswith(KEPT_PURPOSE) else ""


class KeptSecretInput(SecretInput):
    """A secret input that survives a form error: what was typed comes back sealed in a hidden input
    (never as text), and a re-post that leaves the box empty uses it."""

    def __init__(self):
        super().__init__()
        self.kept = ""

    def render(self, name, value, attrs=None, renderer=None):
        html = super().render(name, value, attrs, renderer)
        if self.kept:
            html += format_html('<input type="hidden" name="{}" value="{}">', name + KEPT_SUFFIX, self.kept)
        return html

    def value_from_datadict(self, data, files, name):
        typed = super().value_from_datadict(data, files, name)
        return typed or unseal_secret(data.get(name + KEPT_SUFFIX, "")) or typed


def _formfield(db_field, **kwargs):
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class KeepSecretsForm(forms.ModelForm):
    """A blank secret field on change keeps the stored value instead of erasing it."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_fields:
            if name not in self.fields:
                continue  # view-only: the admin gives the form no editable fields (the values are hidden)
            field = self.fields[name]
            field.widget = KeptSecretInput()
            field.required = False
            if self.instance.pk and getattr(self.instance, name):
                field.help_text = "Stored (encrypted). Leave blank to keep it; type a new value to replace it."

    def clean(self):
        cleaned = super().clean()
        for name in self.secret_fields:
            if name in self.fields and self.instance.pk and not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name)
        return cleaned

    def full_clean(self):
        super().full_clean()
        if not self.is_bound or not self.errors:
            return
        # A form error elsewhere must not cost the operator a secret they typed; a secret that is itself
        # wrong is not kept (it would only fail again).
        for name in self.secret_fields:
            if name not in self.fields or name in self.errors:
                continue
            value = self.fields[name].widget.value_from_datadict(self.data, self.files, self.add_prefix(name))
            stored = getattr(self.instance, name, "") if self.instance.pk else ""
            if value and value != stored:
                self.fields[name].widget.kept = seal_secret(value)
                self.fields[
                    name
                ].help_text = (
                    "Kept from your last attempt (not shown). Leave blank to use it; type a new value to replace it."
                )


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
            "endpoint_url",
            "locations",
            "enabled",
            "description",
            "schedule",
            "timezone",
            "compression",
            "compression_level",
            "queue",
        )
        formfield_callback = _formfield

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["engine"].choices = engines.choices()
        if "queue" in self.fields:  # absent for view-only roles, who see it read-only
            self.fields["queue"].required = False  # blank: the shared queue

    def clean_queue(self) -> str:
        return self.cleaned_data.get("queue") or settings.CELERY_TASK_DEFAULT_QUEUE

    def clean(self):
        cleaned = super().clean()
        # Engines that need no source: the portal's own database; pgBackRest (it reads its settings below).
        engine = engines.find(cleaned.get("engine") or "")
        if engine is not None and engine.needs_source and not cleaned.get("source"):
            self.add_error("source", "This engine needs a source (a URL or env:NAME).")
        return cleaned


@admin.register(Location)
class LocationAdmin(HiddenFromViewersMixin, admin.ModelAdmin):
    form = LocationForm
    hidden_from_viewers = ("access_key_id", "secret_access_key")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("name", "url", "storage_class", "retention_days", "keep_last", "enabled")
    list_filter = ("enabled",)
    search_fields = ("name", "url")
    fieldsets = (
        (None, {"fields": ("name", "url", "enabled", "description")}),
        ("S3", {"fields": ("endpoint_url", "region", "storage_class", "access_key_id", "secret_access_key")}),
        ("Retention", {"fields": ("retention_days", "keep_last")}),
    )


@admin.register(Target)
class TargetAdmin(HiddenFromViewersMixin, admin.ModelAdmin):
    form = TargetForm
    hidden_from_viewers = ("source",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = (
        "name",
        "engine",
        "source_display",
        "location_names",
        "queue",
        "last_result",
        "schedule",
        "next_backup",
        "enabled",
    )
    list_filter = ("engine", "queue", "enabled")
    search_fields = ("name",)
    filter_horizontal = ("locations",)
    readonly_fields = ("source_display",)
    inlines = [PgBackRestStanzaInline]
    actions = ["back_up_now"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "engine",
                    "source",
                    "source_display",
                    "endpoint_url",
                    "locations",
                    "enabled",
                    "description",
                )
            },
        ),
        ("Schedule", {"fields": ("schedule", "timezone", "compression", "compression_level")}),
        ("Workers", {"fields": ("queue",)}),
    )

    change_form_template = "admin/backups/target/change_form.html"

    class Media:
        css = {"all": ("backups/admin.css",)}

    def get_queryset(self, request):
        # One query for the whole page however many targets: the newest run and the newest stored run
        # of each target come as subqueries, not one query per row.
        runs = BackupRun.objects.filter(target=OuterRef("pk")).order_by("-queued_at", "-id")
        stored = runs.filter(status__in=BackupRun.WITH_ARTIFACT)
        return (
            super()
            .get_queryset(request)
            .prefetch_related("locations")
            .annotate(
                last_run_id=Subquery(runs.values("pk")[:1]),
                last_run_status=Subquery(runs.values("status")[:1]),
                last_run_at=Subquery(
                    runs.annotate(at=Coalesce("finished_at", "started_at", "queued_at")).values("at")[:1]
                ),
                stored_run_id=Subquery(stored.values("pk")[:1]),
            )
        )

    def get_list_display(self, request):
        return (*super().get_list_display(request), target_buttons_column(button_permissions(request)))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:target_id>/backup/", view(self.backup_view), name="backups_target_backup"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        target = self.get_queryset(request).filter(pk=unquote(object_id)).first() if object_id.isdigit() else None
        buttons = target_buttons(target, button_permissions(request)) if target else ""
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "buttons": buttons})

    @admin.display(description="source")
    def source_display(self, obj):
        engine = engines.find(obj.engine)
        return obj.source_display or (engine.implied_source if engine else "") or "-"

    @admin.display(description="locations")
    def location_names(self, obj):
        return ", ".join(loc.name for loc in obj.locations.all())

    @admin.display(description="last result", ordering="last_run_at")
    def last_result(self, obj):
        if obj.last_run_id is None:
            return "never run"
        url = reverse("admin:backups_backuprun_change", args=[obj.last_run_id])
        label = dict(BackupRun.Status.choices).get(obj.last_run_status, obj.last_run_status)
        return format_html(
            '<a href="{}"><span class="run-status run-status-{}">{}</span></a> {}',
            url,
            obj.last_run_status,
            label,
            _relative(obj.last_run_at),
        )

    @admin.display(description="next backup")
    def next_backup(self, obj):
        if not obj.schedule:
            return "not scheduled"
        if not obj.enabled:
            return "disabled"
        try:
            when = schedules.next_cron(obj.schedule, timezone.now(), obj.timezone or "UTC")
        except (ValidationError, ValueError, zoneinfo.ZoneInfoNotFoundError):
            return f"invalid schedule {obj.schedule!r}"
        local = when.astimezone(zoneinfo.ZoneInfo(obj.timezone or "UTC"))
        return format_html(
            '{} <span class="quiet">({} {})</span>', _relative(when), local.strftime("%Y-%m-%d %H:%M"), local.tzname()
        )

    def has_run_backup_permission(self, request):
        return request.user.has_perm("backups.run_backup")

    def backup_view(self, request, target_id):
        """POST-only "Back up now" for one target (its row, its page, a run's row or page): the bulk action's code."""
        if request.method != "POST" or not self.has_run_backup_permission(request):
            raise PermissionDenied
        target = get_object_or_404(Target, pk=target_id)
        run = self._queue_backup(request, target)
        return HttpResponseRedirect(reverse("admin:backups_backuprun_change", args=[run.pk]))

    def _queue_backup(self, request, target: Target) -> BackupRun:
        from .tasks import enqueue_backup

        run = backup.start_backup(target, trigger=BackupRun.Trigger.MANUAL, user=request.user)
        transaction.on_commit(lambda run=run: enqueue_backup(run))
        self.log_change(request, target, f"Started backup run #{run.pk}")
        url = reverse("admin:backups_backuprun_change", args=[run.pk])
        self.message_user(
            request,
            format_html('Backup of {} queued as <a href="{}">run #{}</a>.', target.name, url, run.pk),
            messages.SUCCESS,
        )
        if waiting := queues.waiting_reason(run):
            self.message_user(request, f"Run #{run.pk} is {waiting}", messages.WARNING)
        return run

    @admin.action(description="Back up now", permissions=["run_backup"])
    def back_up_now(self, request, queryset):
        for target in queryset:
            self._queue_backup(request, target)


def button_permissions(request) -> dict[str, bool]:
    """Which of the job buttons this person may press (the views they post to check again)."""
    return {
        "backup": request.user.has_perm("backups.run_backup"),
        "verify": request.user.has_perm("backups.verify_backuprun"),
        "restore": request.user.has_perm("backups.restore_backuprun"),
    }


def _relative(when) -> str:
    """ "5 min ago" / "in 2 h", in the portal's one way of writing durations."""
    from .services.rpo import human_duration

    if when is None:
        return ""
    seconds = (when - timezone.now()).total_seconds()
    return f"in {human_duration(seconds)}" if seconds >= 0 else f"{human_duration(-seconds)} ago"


def _post_button(url: str, label: str, *, kind: str = "") -> str:
    """A POST button. In a changelist row it sits inside the changelist form (forms cannot nest), so it
    submits that form, CSRF token included, to its own URL; on a change page the template wraps it."""
    extra = format_html(' name="kind" value="{}"', kind) if kind else ""
    return format_html(
        '<button type="submit" class="button row-button" formmethod="post" formaction="{}"{}>{}</button>',
        url,
        extra,
        label,
    )


def job_buttons(target_id: int, stored_run_id: int | None, perms: dict[str, bool]) -> str:
    """Back up now (the target), Verify and Restore… (a stored run: the newest, on a target's row)."""
    parts = []
    if perms["backup"]:
        parts.append(_post_button(reverse("admin:backups_target_backup", args=[target_id]), "Back up now"))
    if stored_run_id and perms["verify"]:
        url = reverse("admin:backups_backuprun_verify", args=[stored_run_id])
        parts.append(_post_button(url, "Verify", kind=Verification.Kind.INTEGRITY))
    if stored_run_id and perms["restore"]:
        url = reverse("admin:backups_backuprun_restore", args=[stored_run_id])
        parts.append(format_html('<a class="button row-button" href="{}">Restore…</a>', url))
    return format_html('<span class="row-buttons">{}</span>', mark_safe(" ".join(parts))) if parts else "-"


def target_buttons(target: Target, perms: dict[str, bool]) -> str:
    return job_buttons(target.pk, target.stored_run_id, perms)


def target_buttons_column(perms: dict[str, bool]):
    def buttons(obj):
        return target_buttons(obj, perms)

    buttons.short_description = "actions"
    return buttons


def run_buttons_column(perms: dict[str, bool]):
    def buttons(obj):
        stored = obj.pk if obj.status in BackupRun.WITH_ARTIFACT else None
        return job_buttons(obj.target_id, stored, perms)

    buttons.short_description = "actions"
    return buttons


class ArtifactInline(RecordAdminMixin, admin.TabularInline):
    model = Artifact
    extra = 0
    can_delete = False
    fields = ("location", "url", "size_display", "storage_class", "sha256", "status", "created_at", "deleted_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("location")

    @admin.display(description="size")
    def size_display(self, obj):
        return filesizeformat(obj.size)


def _bar(url: str, status: str, percent: int | None, text: str) -> str:
    return format_html(
        '<span class="run-progress" data-url="{}" data-status="{}">'
        '<progress max="100" {}></progress> <span class="run-progress-text">{}</span></span>',
        url,
        status,
        format_html('value="{}"', percent) if percent is not None else "",
        text,
    )


def progress_bar(run: BackupRun) -> str:
    """What a running backup is doing: bytes read while it dumps (against the previous good run's size,
    when there is one), bytes sent to the location it is copying to, or which manifest it is writing."""
    kind, _, where = run.phase.partition(":")
    text = run.status
    if run.status == BackupRun.Status.RUNNING and kind == "copy":
        sent = (run.copied or {}).get(where, 0)
        percent = min(99, int(100 * sent / run.bytes_out)) if run.bytes_out else None
        text = f"copying to {where}: {filesizeformat(sent)} of {filesizeformat(run.bytes_out)} sent"
    elif run.status == BackupRun.Status.RUNNING and kind == "manifest":
        percent, text = 99, f"writing the manifest in {where}"
    elif run.status == BackupRun.Status.RUNNING:
        expected = (
            BackupRun.objects.with_artifact()
            .filter(target_id=run.target_id)
            .order_by("-queued_at")
            .values_list("bytes_in", flat=True)
            .first()
        )
        percent = min(99, int(100 * run.bytes_in / expected)) if expected else None
        text = f"dumping: {filesizeformat(run.bytes_in)} read"
    elif run.status in BackupRun.WITH_ARTIFACT:
        percent = 100
    elif run.status == BackupRun.Status.QUEUED:
        percent, text = None, f"{filesizeformat(run.bytes_in)} read"
    else:
        percent = 0
    return _bar(reverse("admin:backups_backuprun_progress", args=[run.pk]), run.status, percent, text)


def restore_progress_bar(record: Restore) -> str:
    if record.status == Restore.Status.RUNNING and record.bytes_total:
        percent = min(99, int(100 * record.bytes_done / record.bytes_total))
    elif record.status == Restore.Status.SUCCEEDED:
        percent = 100
    else:
        percent = None if record.status in (Restore.Status.QUEUED, Restore.Status.RUNNING) else 0
    text = (
        f"{filesizeformat(record.bytes_done)} of {filesizeformat(record.bytes_total)}"
        if record.status == Restore.Status.RUNNING
        else record.status
    )
    return _bar(reverse("admin:backups_restore_progress", args=[record.pk]), record.status, percent, text)


def _status_badge(obj) -> str:
    return format_html('<span class="run-status run-status-{}">{}</span>', obj.status, obj.get_status_display())


def _seconds(duration) -> str:
    if duration is None:
        return "-"
    seconds = duration.total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class ReadOnlyInline(RecordAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False


class StatusColumn:
    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return _status_badge(obj)


class VerificationColumns(StatusColumn):
    @admin.display(description="checks")
    def summary(self, obj):
        return verification_summary(obj)


class TriggerColumn:
    """The "triggered by" column of every job: how it started and who started it."""

    @admin.display(description="triggered by")
    def triggered(self, obj):
        return obj.trigger_description


class VerificationInline(TriggerColumn, VerificationColumns, ReadOnlyInline):
    model = Verification
    fields = ("queued_at", "kind", "status_badge", "summary", "duration_seconds", "triggered")
    readonly_fields = fields
    ordering = ("-queued_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("triggered_by")


def restored_tables_html(tables: list[dict]) -> str:
    """A restore's or restore test's per-table row counts: in the backup, and restored."""
    if not tables:
        return "-"
    rows = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", ((t["name"], t["expected"], t["restored"]) for t in tables)
    )
    header = mark_safe("<tr><th>table</th><th>expected</th><th>restored</th></tr>")
    return format_html('<table class="run-tables">{}{}</table>', header, rows)


def verification_summary(obj: Verification) -> str:
    if obj.error:
        return obj.error
    failed = [c for c in obj.checks if c["result"] != "pass"]
    if failed:
        return format_html_join(format_html("<br>"), "{}: {}", ((c["name"], c["message"]) for c in failed))
    if not obj.checks:
        return "-"
    text = f"{len(obj.checks)} checks passed"
    if obj.tables:
        text += f"; {len(obj.tables)} tables restored with matching row counts"
    return text


class RestoreForm(forms.Form):
    """The confirmation page's form: which copy, where to, and an explicit yes."""

    location = forms.ChoiceField(label="Copy to restore from")
    to = forms.CharField(
        label="Restore to",
        required=False,
        help_text="Empty: the target's own database. Or a postgresql:// URL or a path for a new copy.",
        widget=forms.TextInput(attrs={"size": 60, "autocomplete": "off"}),
    )


class JobColumns(StatusColumn):
    """Columns shared by the pages of jobs (backup runs, restores): status, progress, duration."""

    @staticmethod
    def progress_html(obj) -> str:
        raise NotImplementedError

    @admin.display(description="progress")
    def progress(self, obj):
        return self.progress_html(obj)

    @admin.display(description="duration")
    def duration_display(self, obj):
        return _seconds(obj.duration)


@admin.register(BackupRun)
class BackupRunAdmin(RecordAdminMixin, TriggerColumn, JobColumns, admin.ModelAdmin):
    """Runs are records: nobody adds or edits them, viewers may open them, DevOps may delete them."""

    progress_html = staticmethod(progress_bar)
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
    list_filter = ("status", "trigger", "target", "queued_at")
    list_select_related = ("target", "triggered_by")
    show_full_result_count = False
    # No date_hierarchy: its DISTINCT over every run's date costs more than the rest of the page.
    search_fields = ("=id", "sha256", "target__name")
    inlines = [ArtifactInline, VerificationInline, PgBackRestBackupInline]
    actions = ["verify_runs", "restore_test_runs", "restore_run", "delete_selected"]
    change_form_template = "admin/backups/backuprun/change_form.html"
    readonly_fields = (
        "target",
        "status_badge",
        "progress",
        "trigger",
        "triggered_by",
        "command_user",
        "queued_at",
        "started_at",
        "finished_at",
        "duration_display",
        "heartbeat_at",
        "worker",
        "queue",
        "waiting",
        "phase",
        "copied",
        "lease_owner",
        "lease_expires_at",
        "bytes_in",
        "bytes_out",
        "sha256",
        "engine",
        "format",
        "compression",
        "compression_level",
        "key_ids",
        "tables_display",
        "error",
    )
    fieldsets = (
        (None, {"fields": ("target", "status_badge", "waiting", "progress", "error")}),
        (
            "When and who",
            {
                "fields": (
                    "trigger",
                    "triggered_by",
                    "command_user",
                    "queued_at",
                    "started_at",
                    "finished_at",
                    "duration_display",
                    "heartbeat_at",
                    "worker",
                    "queue",
                    "phase",
                    "copied",
                    "lease_owner",
                    "lease_expires_at",
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
                    "compression_level",
                    "key_ids",
                    "tables_display",
                )
            },
        ),
    )

    class Media:
        js = ("backups/progress.js",)
        css = {"all": ("backups/admin.css",)}

    @admin.display(description="waiting")
    def waiting(self, obj):
        return queues.waiting_reason(obj) or "-"

    def has_verify_permission(self, request):
        return request.user.has_perm("backups.verify_backuprun")

    def has_restore_permission(self, request):
        return request.user.has_perm("backups.restore_backuprun")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:run_id>/progress/", view(self.progress_view), name="backups_backuprun_progress"),
            path("<int:run_id>/restore/", view(self.restore_view), name="backups_backuprun_restore"),
            path("<int:run_id>/verify/", view(self.verify_view), name="backups_backuprun_verify"),
            *super().get_urls(),
        ]

    def get_list_display(self, request):
        return (*super().get_list_display(request), run_buttons_column(button_permissions(request)))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_verify": self.has_verify_permission(request),
            "can_restore": self.has_restore_permission(request),
            "can_back_up": request.user.has_perm("backups.run_backup"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- views ---------------------------------------------------------------------------
    def progress_view(self, request, run_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(BackupRun, pk=run_id)
        data = {
            "id": run.pk,
            "status": run.status,
            "phase": run.phase,
            "bytes_in": run.bytes_in,
            "bytes_out": run.bytes_out,
            "copied": run.copied,
        }
        return JsonResponse({**data, "html": progress_bar(run)})

    def verify_view(self, request, run_id):
        """POST-only: queue an integrity check (kind=integrity) or a restore test (kind=restore_test)."""
        if request.method != "POST" or not self.has_verify_permission(request):
            raise PermissionDenied
        run = get_object_or_404(BackupRun, pk=run_id)
        kind = request.POST.get("kind", Verification.Kind.INTEGRITY)
        if kind not in Verification.Kind.values:
            raise PermissionDenied
        self._queue_verification(request, run, kind)
        return HttpResponseRedirect(reverse("admin:backups_backuprun_change", args=[run.pk]))

    def restore_view(self, request, run_id):
        """Django's delete_selected pattern: a page that says exactly what will happen, then a POST."""
        # Another app may send people here with ?<kind>=<reference> (incidents: "restore before T" sends
        # ?incident=ID); the restore service asks that app whether this person may restore through it.
        via = next(((kind, request.GET[kind]) for kind in restores.requester_kinds() if kind in request.GET), None)
        try:
            restores.authorize(request.user, via)
        except restores.RestoreNotAllowed as exc:
            return HttpResponseForbidden(f"Restore refused: {exc}\n", content_type="text/plain; charset=utf-8")
        run = get_object_or_404(BackupRun.objects.select_related("target"), pk=run_id)
        copies = list(run.artifacts.filter(status=Artifact.Status.STORED).select_related("location"))
        form = RestoreForm(request.POST or None)
        form.fields["location"].choices = [(a.location.name, f"{a.location.name} — {a.url}") for a in copies]
        proposal, problem = None, None
        if not copies:
            problem = "This run has no stored copy to restore from."
        elif form.is_valid() or request.method == "GET":
            data = form.cleaned_data if form.is_bound else {"location": copies[0].location.name, "to": ""}
            try:
                proposal = restores.propose(str(run.pk), to=data["to"] or None, location=data["location"])
            except (ArtifactRefused, restores.RestoreFailed, SourceError, LocationError) as exc:
                problem = str(exc)
        if request.method == "POST" and proposal and request.POST.get("confirm") == "yes":
            from .tasks import enqueue_restore

            try:
                with transaction.atomic():
                    record = restores.request_restore(
                        run, proposal, to=form.cleaned_data["to"], user=request.user, via=via
                    )
            except restores.RestoreNotAllowed as exc:
                return HttpResponseForbidden(f"Restore refused: {exc}\n", content_type="text/plain; charset=utf-8")
            transaction.on_commit(lambda: enqueue_restore(record))
            self.log_change(request, run, f"Started restore #{record.pk} into {proposal.plan.destination}")
            self.message_user(request, f"Restore #{record.pk} queued.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:backups_restore_change", args=[record.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Restore run #{run.pk} of {run.target.name}?",
            "opts": self.model._meta,
            "run": run,
            "form": form,
            "proposal": proposal,
            "problem": problem,
            "confirming": request.method == "POST" and proposal is not None,
        }
        return TemplateResponse(request, "admin/backups/backuprun/restore_confirm.html", context)

    # --- actions ------------------------------------------------------------------------
    def _queue_verification(self, request, run, kind):
        from .tasks import enqueue_verification

        verification = verify.start_verification(run, kind=kind, trigger=BackupRun.Trigger.MANUAL, user=request.user)
        self.log_change(request, run, f"Started {verification.get_kind_display()} #{verification.pk}")
        transaction.on_commit(lambda: enqueue_verification(verification))
        label = "Restore test" if kind == Verification.Kind.RESTORE_TEST else "Verification"
        self.message_user(request, f"{label} of run #{run.pk} queued.", messages.SUCCESS)

    @admin.action(description="Verify selected runs", permissions=["verify"])
    def verify_runs(self, request, queryset):
        for run in queryset.select_related("target"):
            self._queue_verification(request, run, Verification.Kind.INTEGRITY)

    @admin.action(description="Restore test (scratch database, then dropped)", permissions=["verify"])
    def restore_test_runs(self, request, queryset):
        for run in queryset.select_related("target"):
            self._queue_verification(request, run, Verification.Kind.RESTORE_TEST)

    @admin.action(description="Restore…", permissions=["restore"])
    def restore_run(self, request, queryset):
        runs = list(queryset[:2])
        if len(runs) != 1:
            self.message_user(request, "Choose exactly one run to restore.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:backups_backuprun_restore", args=[runs[0].pk]))

    # --- deleting runs: through the retention service, like prune ----------------------
    def get_deleted_objects(self, objs, request):
        """Django's list of catalogue rows, plus the files that leave each location with them."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        copies = Artifact.objects.filter(
            run__in=[obj.pk for obj in objs], status=Artifact.Status.STORED
        ).select_related("location")
        deleted.extend(
            f"File in location {copy.location.name}: {copy.key} ({filesizeformat(copy.size)}) and its manifest"
            for copy in copies
        )
        return deleted, model_count, perms_needed, protected

    def delete_view(self, request, object_id, extra_context=None):
        """Django's confirmation page, but the deletion itself is the retention service's, which also
        removes the copies from every location and refuses a target's last verified or stored copy."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None or not self.has_delete_permission(request, obj):
            return super().delete_view(request, object_id, extra_context)  # Django's 404 redirect or 403
        back = HttpResponseRedirect(reverse("admin:backups_backuprun_change", args=[obj.pk]))
        refusal = retention.deletion_refusal([obj.pk])
        if refusal:
            self.message_user(request, refusal, messages.ERROR)
            return back
        if request.POST and not self._django_refuses(request, [obj]):  # the confirmation, as in Django's
            # Not inside the admin's transaction: files leave the locations as the rows change.
            if not self._delete_runs(request, [obj]):
                return back
            return self.response_delete(request, str(obj), obj.pk)
        return super().delete_view(request, object_id, extra_context)

    @admin.action(description="Delete selected backup runs and their copies", permissions=["delete"])
    def delete_selected(self, request, queryset):
        """Django's two POSTs (a confirmation page, then post=yes); the deletion is the retention service's."""
        runs = list(queryset.select_related("target"))
        refusal = retention.deletion_refusal([run.pk for run in runs])
        if refusal:
            self.message_user(request, refusal, messages.ERROR)
            return None
        if request.POST.get("post") and not self._django_refuses(request, runs):
            self._delete_runs(request, runs)
            return None
        return django_delete_selected(self, request, queryset)

    def _django_refuses(self, request, runs: list[BackupRun]) -> bool:
        """Django's own refusals still hold (related rows the user may not delete, or protected ones):
        its views then show their "Cannot delete" page or answer 403."""
        _deleted, _count, perms_needed, protected = self.get_deleted_objects(runs, request)
        return bool(perms_needed or protected)

    def _delete_runs(self, request, runs: list[BackupRun]) -> bool:
        try:
            result = retention.delete_runs([run.pk for run in runs])
        except retention.DeletionRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return False
        gone = [run for run in runs if run.pk in result.deleted_runs]
        if gone:
            self.log_deletions(request, gone)
            self.message_user(
                request,
                f"Deleted {len(gone)} backup run(s) and {len(result.deleted_copies)} cop"
                f"{'y' if len(result.deleted_copies) == 1 else 'ies'} from their locations.",
                messages.SUCCESS,
            )
        for error in result.errors:
            self.message_user(request, error, messages.ERROR)
        return bool(gone)

    # --- columns ------------------------------------------------------------------------

    @admin.display(description="size", ordering="bytes_out")
    def size_display(self, obj):
        return filesizeformat(obj.bytes_out) if obj.bytes_out else "-"

    @admin.display(description="tables (rows at backup time)")
    def tables_display(self, obj):
        if not obj.tables:
            return "-"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", obj.tables.items())
        return format_html('<table class="run-tables"><tr><th>table</th><th>rows</th></tr>{}</table>', rows)


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
    raw_id_fields = ("run",)
    fields = (
        "status_badge",
        "progress",
        "source",
        "run",
        "location",
        "destination_display",
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

    @admin.display(description="tables")
    def tables_display(self, obj):
        return restored_tables_html(obj.tables)


class ObjectiveChangeInline(ReadOnlyInline):
    model = ObjectiveChange
    fields = ("at", "from_state", "to_state", "exposure_seconds", "last_good_at")
    readonly_fields = fields
    ordering = ("-at",)
    max_num = 0

    def get_queryset(self, request):
        # Only the recent history on the page; the full history is in the changes list.
        return super().get_queryset(request).order_by("-at")


def _duration(seconds: float | None) -> str:
    from .services.rpo import human_duration

    return "never backed up" if seconds is None else human_duration(seconds)


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
        return _duration(obj.exposure_seconds)

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
