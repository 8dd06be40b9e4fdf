"""Admin of targets: what is backed up, where, when; "Back up now"."""

from __future__ import annotations

import zoneinfo

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from drportal.admin_base import HiddenFromViewersMixin
from drportal.cron import next_cron

from .. import engines
from ..admin_pgbackrest import PgBackRestStanzaInline
from ..engines import SourceError
from ..locations import LocationError
from ..models import BackupRun, Restore, Target
from ..services import backup, pgbackrest, queues
from ..services import restore as restores
from ..tasks import enqueue_backup, enqueue_restore
from .display import _relative, button_permissions, target_buttons, target_buttons_column
from .kept_secrets import KeepSecretsForm, _formfield
from .restores import requester_of, restore_refused


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


class RestoreToMomentForm(forms.Form):
    """A restore to a moment (pgbackrest targets): to when, into which data directory, on which port."""

    kind = forms.ChoiceField(
        label="Restore",
        choices=Restore.RecoveryKind.choices,
        initial=Restore.RecoveryKind.TIME,
        widget=forms.RadioSelect,
    )
    moment = forms.CharField(
        label="Time",
        required=False,
        help_text="With its time zone: 2026-12-01T14:03:06Z (UTC) or 2026-12-01 16:03:06+02:00.",
        widget=forms.TextInput(attrs={"size": 32, "autocomplete": "off"}),
    )
    lsn = forms.CharField(
        label="LSN", required=False, help_text="e.g. 0/3000060", widget=forms.TextInput(attrs={"size": 20})
    )
    to = forms.CharField(
        label="Destination data directory",
        help_text="A new, empty folder on the database host (absolute path). The live data directory only with "
        "the cluster stopped; the current one is then kept for rollback.",
        widget=forms.TextInput(attrs={"size": 60, "autocomplete": "off"}),
    )
    port = forms.IntegerField(
        label="Port", required=False, min_value=1, max_value=65535, help_text="Empty: a free port."
    )
    keep_running = forms.BooleanField(
        label="Keep running",
        required=False,
        help_text="Leave the restored cluster up (archive_mode=off) for you to switch over; "
        "otherwise it is checked, stopped and removed.",
    )
    replace_live = forms.BooleanField(
        label="Replace the live data directory",
        required=False,
        help_text="Needed only when the destination is the live data directory: I have stopped the cluster and "
        "want it replaced by the restored one.",
    )

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind == Restore.RecoveryKind.TIME and not cleaned.get("moment", "").strip():
            self.add_error("moment", "Say to which time (with its time zone).")
        if kind == Restore.RecoveryKind.LSN and not cleaned.get("lsn", "").strip():
            self.add_error("lsn", "Say to which LSN.")
        return cleaned

    def proposal_arguments(self) -> dict:
        data = self.cleaned_data
        kind = data["kind"]
        return {
            "moment": data["moment"].strip() if kind == Restore.RecoveryKind.TIME else None,
            "lsn": data["lsn"].strip() if kind == Restore.RecoveryKind.LSN else None,
            "latest": kind == Restore.RecoveryKind.LATEST,
            "to": data["to"].strip(),
            "port": data.get("port"),
            "keep_running": bool(data.get("keep_running")),
        }


def source_column(unreadable: dict):
    """The source, and under it why its queue's workers cannot read it (``queues.unreadable_sources``)."""

    @admin.display(description="source")
    def source_display(obj):
        engine = engines.find(obj.engine)
        shown = obj.source_display or (engine.implied_source if engine else "") or "-"
        problem = unreadable.get(obj.name)
        if problem is None:
            return shown
        return format_html('{}<div class="source-warning">⚠ {}</div>', shown, problem.message)

    return source_display


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
        # The source column also says when no live worker of the target's queue sees its env: variable:
        # computed once for the page (one query for the workers), not once per row.
        unreadable = queues.unreadable_sources()
        columns = [source_column(unreadable) if c == "source_display" else c for c in super().get_list_display(request)]
        return (*columns, target_buttons_column(button_permissions(request)))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:target_id>/backup/", view(self.backup_view), name="backups_target_backup"),
            path(
                "<int:target_id>/restore-to-a-moment/",
                view(self.restore_moment_view),
                name="backups_target_restore_moment",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        target = self.get_queryset(request).filter(pk=unquote(object_id)).first() if object_id.isdigit() else None
        if target is not None and request.method == "GET":
            problem = queues.unreadable_sources().get(target.name)
            if problem is not None:
                self.message_user(request, f"Before its next run: {problem.message}.", messages.WARNING)
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
            when = next_cron(obj.schedule, timezone.now(), obj.timezone or "UTC")
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
        run = backup.start_backup(target, trigger=BackupRun.Trigger.MANUAL, user=request.user)
        enqueue_backup(run)
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

    def restore_moment_view(self, request, target_id):
        """Restore a pgbackrest target to a moment: the form, a page saying exactly what will happen, then a POST.

        The page runs in the web process, which may be another machine than the database host: it makes only
        the checks that hold anywhere (services.pgbackrest.propose_pitr with ``on_host=False``: the request,
        the backup set from the portal's catalogue) and says which ones the worker of the target's queue
        makes on the database host before it touches anything (the folder, the port, the cluster stopped,
        pgBackRest's own catalogue); a refusal there is stored on the Restore row.

        ``?incident=ID`` (an incident's "restore to T") lets someone restore through that incident, and links
        the restore to its timeline; ``?time=T`` fills in the time.
        """
        via = requester_of(request)
        try:
            restores.authorize(request.user, via)
        except restores.RestoreNotAllowed as exc:
            return restore_refused(exc)
        target = get_object_or_404(Target, pk=target_id)
        engine = engines.find(target.engine)
        plan, problem = None, ""
        form = RestoreToMomentForm(request.POST or None, initial={"moment": request.GET.get("time", "")[:100]})
        if engine is None or not engine.restores_to_a_moment:
            problem = (
                f"target {target.name} uses the {target.engine} engine: it restores one backup run, not to a moment"
            )
        elif form.is_bound and form.is_valid():
            try:
                plan = pgbackrest.propose_pitr(
                    target.name, **form.proposal_arguments(), user=request.user, on_host=False
                )
            except (pgbackrest.PitrRefused, SourceError, LocationError) as exc:
                problem = str(exc)
        if plan is not None and request.POST.get("confirm") == "yes":
            if plan.in_place and not form.cleaned_data.get("replace_live"):
                problem = (
                    f"{plan.to} is the live data directory: tick “Replace the live data directory” to confirm "
                    "that the stopped cluster is to be replaced (the current directory is kept for rollback)"
                )
            else:
                try:
                    record = pgbackrest.request_pitr(plan, user=request.user, via=via)
                except restores.RestoreNotAllowed as exc:
                    return restore_refused(exc)
                enqueue_restore(record)
                self.log_change(request, target, f"Started restore #{record.pk}: {plan.lines()[0]}")
                self.message_user(request, f"Restore #{record.pk} queued: {plan.lines()[0]}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:backups_restore_change", args=[record.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Restore {target.name} to a moment",
            "opts": self.model._meta,
            "target": target,
            "form": form,
            "plan": plan,
            "plan_lines": plan.lines() if plan else [],
            "plan_checks": plan.checks() if plan else [],
            "problem": problem,
        }
        return TemplateResponse(request, "admin/backups/target/restore_moment.html", context)

    @admin.action(description="Back up now", permissions=["run_backup"])
    def back_up_now(self, request, queryset):
        for target in queryset:
            self._queue_backup(request, target)
