"""Admin for the backup catalogue. Thin: actions call services; secrets are write-only."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.http import HttpResponseForbidden, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from drportal.admin_base import HiddenFromViewersMixin, PermanentRecordAdminMixin, RecordAdminMixin

from .engines import SourceError
from .locations import LocationError
from .models import Artifact, BackupRun, Location, Objective, ObjectiveChange, Restore, Target, Verification
from .services import backup, queues, verify
from .services import restore as restores
from .services.artifacts import ArtifactRefused


class SecretInput(forms.PasswordInput):
    """Never renders the stored value back into the page."""

    def __init__(self):
        super().__init__(render_value=False, attrs={"autocomplete": "new-password"})


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
            field.widget = SecretInput()
            field.required = False
            if self.instance.pk and getattr(self.instance, name):
                field.help_text = "Stored (encrypted). Leave blank to keep it; type a new value to replace it."

    def clean(self):
        cleaned = super().clean()
        for name in self.secret_fields:
            if name in self.fields and self.instance.pk and not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name)
        return cleaned


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
        from .engines import ENGINES

        self.fields["engine"].choices = [(name, engine.label) for name, engine in sorted(ENGINES.items())]
        if "queue" in self.fields:  # absent for view-only roles, who see it read-only
            self.fields["queue"].required = False  # blank: the shared queue

    def clean_queue(self) -> str:
        return self.cleaned_data.get("queue") or settings.CELERY_TASK_DEFAULT_QUEUE

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("engine") not in (None, "portal") and not cleaned.get("source"):
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
    list_display = ("name", "engine", "source_display", "schedule", "queue", "location_names", "enabled")
    list_filter = ("engine", "queue", "enabled")
    search_fields = ("name",)
    filter_horizontal = ("locations",)
    readonly_fields = ("source_display",)
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
        from .tasks import enqueue_backup

        for target in queryset:
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
            BackupRun.objects.succeeded()
            .filter(target_id=run.target_id)
            .order_by("-queued_at")
            .values_list("bytes_in", flat=True)
            .first()
        )
        percent = min(99, int(100 * run.bytes_in / expected)) if expected else None
        text = f"dumping: {filesizeformat(run.bytes_in)} read"
    elif run.status == BackupRun.Status.SUCCEEDED:
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
    inlines = [ArtifactInline, VerificationInline]
    actions = ["verify_runs", "restore_test_runs", "restore_run"]
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

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_verify": self.has_verify_permission(request),
            "can_restore": self.has_restore_permission(request),
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
