"""Admin of backup runs: progress, verify, the restore confirmation page, deletion through retention."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from drportal import humanize
from drportal.admin_base import RecordAdminMixin

from .. import engines
from ..admin_pgbackrest import PgBackRestBackupInline
from ..display import progress_bar, progress_data, status_badge
from ..models import Artifact, BackupRun, Verification
from ..services import queues, retention, verify
from ..services import restore as restores
from ..tasks import enqueue_restore, enqueue_verification
from .display import JobColumns, TriggerColumn, button_permissions, run_buttons_column
from .restores import requester_of, restore_refused
from .verifications import VerificationInline


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
        return humanize.size(obj.size)


class RestoreForm(forms.Form):
    """The confirmation page's form: which copy, where to, and an explicit yes."""

    location = forms.ChoiceField(label="Copy to restore from")
    to = forms.CharField(
        label="Restore to",
        required=False,
        help_text="Empty: the target's own database. Or a postgresql:// URL or a path for a new copy.",
        widget=forms.TextInput(attrs={"size": 60, "autocomplete": "off"}),
    )


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

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        # A run's badge follows the run: the progress poller swaps it when the status changes.
        return status_badge(obj)

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
        run = get_object_or_404(BackupRun.objects.select_related("target"), pk=run_id)
        return JsonResponse(progress_data(run))

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
        via = requester_of(request)
        try:
            restores.authorize(request.user, via)
        except restores.RestoreNotAllowed as exc:
            return restore_refused(exc)
        run = get_object_or_404(BackupRun.objects.select_related("target"), pk=run_id)
        engine = engines.find(run.target.engine)
        if engine is not None and engine.restores_to_a_moment:
            # Such a run is one backup set among the target's: it restores to a moment, from the target's page
            # (the same ?incident=ID carried over).
            url = reverse("admin:backups_target_restore_moment", args=[run.target_id])
            return HttpResponseRedirect(f"{url}?{request.GET.urlencode()}" if request.GET else url)
        copies = restores.stored_copies(run)
        form = RestoreForm(request.POST or None)
        form.fields["location"].choices = [(a.location.name, f"{a.location.name} — {a.url}") for a in copies]
        proposal, problem = None, ""
        if not copies or form.is_valid() or request.method == "GET":
            data = form.cleaned_data if form.is_bound and copies else {}
            proposal, problem = restores.offer(run, copies, to=data.get("to", ""), location=data.get("location", ""))
        if request.method == "POST" and proposal and request.POST.get("confirm") == "yes":
            try:
                record = restores.request_restore(run, proposal, to=form.cleaned_data["to"], user=request.user, via=via)
            except restores.RestoreNotAllowed as exc:
                return restore_refused(exc)
            enqueue_restore(record)
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
        verification = verify.start_verification(run, kind=kind, trigger=BackupRun.Trigger.MANUAL, user=request.user)
        self.log_change(request, run, f"Started {verification.get_kind_display()} #{verification.pk}")
        enqueue_verification(verification)
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
            f"File in location {copy.location.name}: {copy.key} ({humanize.size(copy.size)}) and its manifest"
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
        return humanize.size(obj.bytes_out) if obj.bytes_out else "-"

    @admin.display(description="tables (rows at backup time)")
    def tables_display(self, obj):
        if not obj.tables:
            return "-"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", obj.tables.items())
        return format_html('<table class="run-tables"><tr><th>table</th><th>rows</th></tr>{}</table>', rows)
