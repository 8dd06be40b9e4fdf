"""The incident commander's page: the form, the working area and its views."""

from __future__ import annotations

from datetime import UTC

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Case, IntegerField, When
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

from alerts.models import Notification
from backups import engines
from backups.models import BackupRun, Restore, Target, Verification
from drportal import humanize

from ..models import (
    Incident,
    Scenario,
    StatusComponent,
    StatusUpdate,
    TimelineEntry,
)
from ..services import communicate, lifecycle, measure, opening, report, security
from .catalog import badge_html
from .inlines import AssignRoleInline, ChecklistInline, IncidentFormSet, RoleHistoryInline, StepInline, _next_checklist


def _posted_component_states(post, prefix: str) -> dict[str, str]:
    """The status components whose posted state (field ``prefix<pk>``) differs from their state now."""
    return {
        c.name: post[f"{prefix}{c.pk}"]
        for c in StatusComponent.objects.all()
        if post.get(f"{prefix}{c.pk}") and post[f"{prefix}{c.pk}"] != c.state
    }


RTO_STATE_CLASSES = {"met": "ok", "on track": "ok", "at risk": "late", "breached": "breached"}


class IncidentForm(forms.ModelForm):
    """Shows the model's own refusal to resolve (recovery not verified, no reason) as a form error, not a 500.

    The working area at the top of the page is part of this one form: a timeline entry and a public
    update typed there are saved with every other edit on the page (save_related), so "Add to timeline"
    never throws away a summary typed further down, and a form error keeps both on the page.
    """

    timeline_kind = forms.ChoiceField(
        required=False,
        initial="note",
        label="kind",
        choices=[(k, label) for k, label in TimelineEntry.Kind.choices if k in TimelineEntry.ENTRY_KINDS],
    )
    timeline_text = forms.CharField(
        required=False,
        max_length=2000,
        label="timeline entry",
        widget=forms.TextInput(
            attrs={
                "placeholder": "What happened, what was decided…",
                "aria-label": "timeline entry",
                "autocomplete": "off",
            }
        ),
    )
    timeline_pinned = forms.BooleanField(required=False, label="pin")
    # "Resolved" is not offered here: resolving has its own panel (recovery verified or a reason).
    update_phase = forms.ChoiceField(
        required=False,
        initial="investigating",
        label="phase",
        choices=[(k, label) for k, label in StatusUpdate.Phase.choices if k != StatusUpdate.Phase.RESOLVED],
    )
    update_message = forms.CharField(
        required=False,
        max_length=5000,
        label="public message",
        widget=forms.Textarea(
            attrs={"rows": 2, "placeholder": "Public message (customers read this)", "aria-label": "public message"}
        ),
    )

    class Meta:
        model = Incident
        # Every field the add and change fieldsets show; the admin narrows it to the page's fieldsets.
        fields = (
            "title",
            "severity",
            "scenario",
            "status",
            "resolved_without_recovery",
            "customer_facing",
            "public_title",
            "impact_started_at",
            "detected_at",
            "summary",
            "root_cause",
            "follow_up_actions",
        )
        widgets = {"resolved_without_recovery": forms.Textarea(attrs={"rows": 2, "cols": 80})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            # Title and severity are enough to open: detected and impact start are now unless the commander
            # knows better (left empty, Incident.open() takes now and the detection time).
            for name in ("impact_started_at", "detected_at"):
                if name in self.fields:
                    self.fields[name].initial = timezone.now
                    self.fields[name].required = False
            if "impact_started_at" in self.fields:
                self.fields[
                    "impact_started_at"
                ].help_text = "Defaults to now; correct it if users were affected earlier (drives RTO and RPO)."

    def clean(self):
        cleaned = super().clean()
        incident = self.instance
        if incident.pk and cleaned.get("status") in ("resolved", "closed") and not incident.resolved_at:
            problem = incident.resolution_problem(cleaned.get("resolved_without_recovery") or "")
            if problem:
                self.add_error("status", problem)
        return cleaned


class ReportFilter(admin.SimpleListFilter):
    """Post-incident reports: due (not submitted yet, overdue ones included), overdue, submitted."""

    title = "post-incident report"
    parameter_name = "report"

    def lookups(self, request, model_admin):
        return [("due", "due (not submitted)"), ("overdue", "overdue"), ("submitted", "submitted")]

    def queryset(self, request, queryset):
        pending = queryset.filter(report_due_at__isnull=False, report_submitted_at__isnull=True)
        if self.value() == "due":
            return pending
        if self.value() == "overdue":
            return pending.filter(report_due_at__lt=timezone.now())
        if self.value() == "submitted":
            return queryset.filter(report_submitted_at__isnull=False)
        return queryset


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "title",
        "severity_badge",
        "status",
        "scenario",
        "age",
        "rto_display",
        "report_column",
        "customer_facing",
    )
    list_display_links = ("id", "title")
    list_filter = ("status", ReportFilter, "severity", "scenario", "customer_facing")
    list_select_related = ("severity", "scenario")
    show_full_result_count = False
    search_fields = ("=id", "title")
    date_hierarchy = "detected_at"
    change_form_template = "admin/incidents/incident/change_form.html"
    raw_id_fields = ("opened_by",)
    form = IncidentForm

    class Media:
        css = {"all": ("backups/admin.css", "incidents/admin.css")}
        js = ("incidents/incident.js",)

    # --- list ------------------------------------------------------------------------------
    def get_ordering(self, request):
        # Open incidents first, then the newest.
        open_first = Case(When(status__in=Incident.OPEN_STATUSES, then=0), default=1, output_field=IntegerField())
        return [open_first.asc(), "-detected_at"]

    @admin.display(description="severity", ordering="severity__order")
    def severity_badge(self, obj):
        return badge_html(obj.severity.color, obj.severity.key)

    @admin.display(description="age", ordering="detected_at")
    def age(self, obj):
        end = obj.resolved_at or timezone.now()
        return humanize.duration(end - obj.detected_at)

    @admin.display(description="RTO")
    def rto_display(self, obj):
        state = obj.rto_state
        return format_html(
            '<span class="rpo-state rpo-state-{}" title="target {}">{} · {}</span>',
            RTO_STATE_CLASSES[state],
            measure.target_label(obj.target_rto),
            humanize.duration(obj.time_since_impact),
            state,
        )

    @admin.display(description="report", ordering="report_due_at")
    def report_column(self, obj):
        if obj.report_submitted_at:
            return format_html('<span class="report-state {}">submitted</span>', "report-submitted")
        if not obj.report_due_at:
            return "-"
        if obj.report_due_at < timezone.now():
            return format_html(
                '<span class="report-state report-overdue">OVERDUE since {} UTC</span>',
                f"{obj.report_due_at:%Y-%m-%d %H:%M}",
            )
        return format_html(
            '<span class="report-state report-due">due {} UTC</span>', f"{obj.report_due_at:%Y-%m-%d %H:%M}"
        )

    # --- form ------------------------------------------------------------------------------
    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return (
                (None, {"fields": ("title", "severity", "scenario", "customer_facing", "public_title")}),
                ("When", {"fields": ("impact_started_at", "detected_at")}),
                (None, {"fields": ("summary",)}),
            )
        return (
            (
                None,
                {
                    "fields": (
                        ("status", "severity"),
                        "resolved_without_recovery",
                        "title",
                        "scenario",
                        ("customer_facing", "public_title"),
                    )
                },
            ),
            (
                "Times",
                {
                    "fields": (
                        ("impact_started_at", "detected_at"),
                        ("acknowledged_at", "recovered_at"),
                        ("resolved_at", "closed_at"),
                    )
                },
            ),
            (
                "Post-incident report",
                {
                    # Reference while the incident runs: folded (a <details>) until someone opens it.
                    "classes": ("collapse",),
                    "fields": ("summary", "root_cause", "follow_up_actions", "report_state"),
                },
            ),
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # Set by the incident's own state changes (status, checklist, linked restores), never typed.
        return ("acknowledged_at", "recovered_at", "resolved_at", "closed_at", "report_state")

    def get_inlines(self, request, obj):
        if obj is None:
            return [AssignRoleInline]
        return [RoleHistoryInline, AssignRoleInline, ChecklistInline, StepInline]

    @admin.display(description="report")
    def report_state(self, obj):
        if obj.report_submitted_at:
            return f"submitted {obj.report_submitted_at:%Y-%m-%d %H:%M} UTC"
        if obj.report_due_at:
            late = " — OVERDUE" if obj.report_due_at < timezone.now() else ""
            return f"due {obj.report_due_at:%Y-%m-%d %H:%M} UTC{late}"
        return "due 24 h (per severity) after resolution"

    def save_model(self, request, obj, form, change):
        if not change:
            Incident.open(user=request.user, incident=obj)
            return
        # changed_data, not !=: the form's time inputs drop microseconds, which is no correction.
        lifecycle.save_edit(obj, request.user, changed=form.changed_data)

    def save_related(self, request, form, formsets, change):
        """After the incident and its inlines: the working area's timeline entry and public update."""
        super().save_related(request, form, formsets, change)
        if not change:
            return
        incident, data = form.instance, form.cleaned_data
        if data.get("timeline_text", "").strip():
            incident.add_note(
                data["timeline_text"],
                request.user,
                pinned=bool(data.get("timeline_pinned")),
                kind=data.get("timeline_kind") or "note",
            )
        message = data.get("update_message", "").strip()
        if message:
            states = _posted_component_states(request.POST, "update-component-")
            phase = data.get("update_phase") or StatusUpdate.Phase.INVESTIGATING
            # Mail and webhooks are slow I/O: sent once this save is committed, never inside its transaction.
            transaction.on_commit(lambda: self._publish(request, incident, message, phase, states))

    def _publish(self, request, incident: Incident, message: str, phase: str, states: dict[str, str]) -> None:
        try:
            _update, records = communicate.post_update(
                incident, message, phase=phase, components=states, user=request.user
            )
        except ValidationError as exc:
            # The rest of the page is saved; say what was refused and give the message back to retype.
            self.message_user(
                request, f"Status update not published: {' '.join(exc.messages)} (message: {message})", messages.ERROR
            )
            return
        text = f"Status update published; {len(records)} deliveries queued (see Deliveries for their outcome)."
        self.message_user(request, text, messages.SUCCESS)

    def save_formset(self, request, form, formset, change):
        if isinstance(formset, IncidentFormSet):
            formset.save_through(form.instance, request.user)
        else:
            super().save_formset(request, form, formset, change)

    # --- the commander's page ------------------------------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("add/suggest-scenario/", view(self.suggest_scenario_view), name="incidents_incident_suggest_scenario"),
            path("<int:pk>/timeline/", view(self.timeline_view), name="incidents_incident_timeline"),
            path("<int:pk>/link-job/", view(self.link_job_view), name="incidents_incident_link_job"),
            path("<int:pk>/status-update/", view(self.status_update_view), name="incidents_incident_status_update"),
            path("<int:pk>/resolve/", view(self.resolve_view), name="incidents_incident_resolve"),
            path("<int:pk>/report.md", view(self.report_view), name="incidents_incident_report"),
            path("<int:pk>/report/submit/", view(self.submit_report_view), name="incidents_incident_submit_report"),
            path("<int:pk>/restore-before/", view(self.restore_before_view), name="incidents_incident_restore_before"),
            path("<int:pk>/force-logout/", view(self.force_logout_view), name="incidents_incident_force_logout"),
            path("<int:pk>/read-only/", view(self.read_only_view), name="incidents_incident_read_only"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        scenarios = [(s.pk, str(s)) for s in Scenario.objects.all()]
        extra_context = {**(extra_context or {}), "scenario_picks": scenarios}
        return super().add_view(request, form_url, extra_context)

    def suggest_scenario_view(self, request):
        """GET ?title=: the scenarios the title suggests, best first (the add page asks as the title is typed)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        found = opening.suggest_scenarios(request.GET.get("title", "")[:200])
        return JsonResponse({"scenarios": [{"id": s.pk, "label": str(s)} for s in found]})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        incident = self.get_object(request, object_id)
        if incident is not None:
            extra_context = {**(extra_context or {}), **self._page_context(request, incident)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _page_context(self, request, incident: Incident) -> dict:
        user = request.user
        jobs = []
        for job in incident.jobs.select_related("run__target", "verification__run__target", "restore", "linked_by"):
            obj = job.run or job.verification or job.restore
            model = obj._meta.model_name
            jobs.append({"job": job, "obj": obj, "url": reverse(f"admin:backups_{model}_change", args=[obj.pk])})
        return {
            "incident": incident,
            "measures": measure.measure(incident),
            "rto_state": incident.rto_state,
            "rto_state_class": RTO_STATE_CLASSES[incident.rto_state],
            "target_rto_label": measure.target_label(incident.target_rto),
            "elapsed_label": humanize.duration(incident.time_since_impact),
            "timeline": incident.timeline.select_related("author").order_by("-pinned", "-at", "-id")[:500],
            "jobs": jobs,
            "status_updates": incident.status_updates.select_related("author")[:50],
            "deliveries": Notification.objects.filter(object_ref=communicate.object_ref(incident))[:50],
            "components": StatusComponent.objects.all(),
            "component_offers": lifecycle.component_offers(incident),
            "offer_resolution_update": lifecycle.offers_resolution_update(incident),
            "resolution_message": lifecycle.DEFAULT_RESOLUTION_MESSAGE,
            "component_states": StatusComponent.State.choices,
            "phases": StatusUpdate.Phase.choices,
            "next_checklist": _next_checklist(incident),
            "recent_timeline": incident.timeline.select_related("author").order_by("-at", "-id")[:5],
            "can_edit": self.has_change_permission(request, incident),
            "can_restore": user.has_perm("incidents.restore_via_incident"),
            "can_force_logout": user.has_perm("incidents.force_logout"),
            "can_toggle_read_only": user.has_perm("incidents.toggle_read_only"),
            "read_only": security.read_only_on(),
            "targets": Target.objects.filter(
                engine__in={*engines.names(restores_in_place=True), *engines.names(restores_to_a_moment=True)}
            ).order_by("name"),
            # The restore helper starts on the data this incident's scenario puts at risk, not the first name.
            "default_target_id": next((t.pk for t in incident.scenario.targets.order_by("name")), None)
            if incident.scenario_id
            else None,
            "report_problem": incident.report_problem(),
            "now": timezone.now(),
        }

    def _incident_for(self, request, pk: int, *, change: bool = True, perm: str | None = None) -> Incident:
        incident = get_object_or_404(Incident.objects.select_related("severity", "scenario"), pk=pk)
        allowed = self.has_change_permission(request, incident) if change else self.has_view_permission(request)
        if not allowed or (perm and not request.user.has_perm(perm)):
            raise PermissionDenied
        return incident

    def _back(self, incident: Incident) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:incidents_incident_change", args=[incident.pk]))

    def timeline_view(self, request, pk):
        """POST: the one-line "add to timeline" box."""
        if request.method != "POST":
            raise PermissionDenied
        incident = self._incident_for(request, pk)
        kind = request.POST.get("kind", "note")
        try:
            incident.add_note(
                request.POST.get("text", ""), request.user, pinned=bool(request.POST.get("pinned")), kind=kind
            )
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        return self._back(incident)

    def link_job_view(self, request, pk):
        """POST kind (run / verification / restore) and id: that job's events go on the timeline."""
        if request.method != "POST":
            raise PermissionDenied
        incident = self._incident_for(request, pk)
        models_by_kind = {"run": BackupRun, "verification": Verification, "restore": Restore}
        kind = request.POST.get("kind", "")
        job_id = request.POST.get("job_id", "").strip().lstrip("#")
        model = models_by_kind.get(kind)
        obj = model.objects.filter(pk=int(job_id)).first() if model and job_id.isdigit() else None
        if obj is None:
            self.message_user(request, f"No {kind or 'job'} #{job_id or '?'} to link.", messages.ERROR)
        else:
            incident.link_job(user=request.user, **{kind: obj})
            self.message_user(
                request, f"Linked {kind} #{obj.pk}: its events now go on this timeline.", messages.SUCCESS
            )
        return self._back(incident)

    def status_update_view(self, request, pk):
        """POST: publish a status-page update and send it to stakeholders and channels."""
        if request.method != "POST":
            raise PermissionDenied
        incident = self._incident_for(request, pk)
        states = _posted_component_states(request.POST, "component-")
        try:
            _update, records = communicate.post_update(
                incident,
                request.POST.get("message", ""),
                phase=request.POST.get("phase", "investigating"),
                components=states,
                user=request.user,
                without_recovery=request.POST.get("without_recovery", ""),
            )
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return self._back(incident)
        text = f"Status update published; {len(records)} deliveries queued (see Deliveries for their outcome)."
        self.message_user(request, text, messages.SUCCESS)
        return self._back(incident)

    def resolve_view(self, request, pk):
        """POST: resolve (or publish the resolution of a resolved incident) and reset the chosen components."""
        if request.method != "POST":
            raise PermissionDenied
        incident = self._incident_for(request, pk)
        names = {c.pk: c.name for c in StatusComponent.objects.all()}
        reset = [names[int(v)] for v in request.POST.getlist("reset") if v.isdigit() and int(v) in names]
        was_open = incident.is_open
        try:
            update = lifecycle.resolve(
                incident,
                request.user,
                without_recovery=request.POST.get("without_recovery", ""),
                public_message=request.POST.get("message", ""),
                reset_components=reset,
            )
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return self._back(incident)
        done = "Incident resolved" if was_open else "Resolution published"
        if update is not None:
            done += "; the “Resolved” update is on the status page"
            if reset:
                done += f" and {', '.join(reset)} back to operational"
        self.message_user(request, done + ".", messages.SUCCESS)
        return self._back(incident)

    def report_view(self, request, pk):
        incident = self._incident_for(request, pk, change=False)
        response = HttpResponse(report.render(incident), content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{report.filename(incident)}"'
        return response

    def submit_report_view(self, request, pk):
        if request.method != "POST":
            raise PermissionDenied
        incident = self._incident_for(request, pk)
        try:
            incident.submit_report(request.user)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(request, "Post-incident report marked as submitted.", messages.SUCCESS)
        return self._back(incident)

    def restore_before_view(self, request, pk):
        """POST target + time T: to the safe restore's confirmation page: the newest good backup before T, or, for a
        target that restores to a moment (pgbackrest), a restore to T itself."""
        if request.method != "POST":
            raise PermissionDenied
        incident = self._incident_for(request, pk, perm="incidents.restore_via_incident")
        target = Target.objects.filter(pk=request.POST.get("target") or 0).first()
        before = parse_datetime(request.POST.get("before", "").strip().replace(" ", "T"))
        if target is None or before is None:
            self.message_user(request, "Choose a target and a time (YYYY-MM-DD HH:MM[:SS], UTC).", messages.ERROR)
            return self._back(incident)
        if timezone.is_naive(before):
            before = timezone.make_aware(before, UTC)
        try:
            return HttpResponseRedirect(security.restore_before_url(incident, target, before, request.user))
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return self._back(incident)

    def force_logout_view(self, request, pk):
        """A confirmation page (it ends everyone's session but yours), then a POST with confirm=yes."""
        incident = self._incident_for(request, pk, change=False, perm="incidents.force_logout")
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            ended = security.force_logout(incident, request.user, request.session.session_key)
            self.message_user(request, f"Ended {ended} session(s); everyone else must log in again.", messages.SUCCESS)
            return self._back(incident)
        from django.contrib.sessions.models import Session

        context = {
            **self.admin_site.each_context(request),
            "title": "End every other portal session?",
            "opts": self.model._meta,
            "incident": incident,
            "sessions": Session.objects.filter(expire_date__gt=timezone.now())
            .exclude(session_key=request.session.session_key)
            .count(),
        }
        return TemplateResponse(request, "admin/incidents/incident/force_logout_confirm.html", context)

    def read_only_view(self, request, pk):
        """POST on=1 / on=0: the portal-wide read-only switch (the middleware lets this URL through)."""
        if request.method != "POST":
            raise PermissionDenied
        incident = self._incident_for(request, pk, change=False, perm="incidents.toggle_read_only")
        on = request.POST.get("on") == "1"
        security.set_read_only(incident, on, request.user)
        self.message_user(request, "The portal is now READ-ONLY." if on else "Read-only mode is off.", messages.WARNING)
        return self._back(incident)
