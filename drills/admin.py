"""Admin for the testing schedule, drills, findings and plan reviews. Thin: actions call the services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from drportal import humanize
from drportal.forms import HumanDurationField

from .models import ChangeLogEntry, Drill, DrillEvidence, Finding, PlanDocument, PlanReview, TestActivity
from .services import reviews, schedule
from .services.calendar import upcoming_items
from .tasks import enqueue_drill

UPCOMING_DAYS = 90


def _overdue_badge(overdue: bool, text: str) -> str:
    if overdue:
        return format_html('<strong style="color:#ba2121">⚠ {} (overdue)</strong>', text)
    return text


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "overdue"), ("no", "not overdue")]

    def queryset(self, request, queryset):
        overdue = Q(status__in=queryset.model.OPEN_STATUSES, due_at__lt=timezone.now())
        if self.value() == "yes":
            return queryset.filter(overdue)
        if self.value() == "no":
            return queryset.exclude(overdue)
        return queryset


@admin.register(TestActivity)
class TestActivityAdmin(admin.ModelAdmin):
    list_display = ("name", "cadence_display", "performed_by", "scenario", "next_due", "enabled")
    list_filter = ("cadence", "automation", "enabled")
    search_fields = ("key", "name", "description")
    list_select_related = ("scenario",)
    autocomplete_fields = ()
    raw_id_fields = ("scenario", "target")
    fields = (
        "key",
        "name",
        "description",
        "cadence",
        "cron",
        "starts_at",
        "scenario",
        "automation",
        "target",
        "enabled",
        "order",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("drills")

    @admin.display(description="cadence", ordering="cadence")
    def cadence_display(self, obj):
        return obj.cadence_display

    @admin.display(description="performed by")
    def performed_by(self, obj):
        return "the portal" if obj.automated else "team"

    @admin.display(description="next due")
    def next_due(self, obj):
        upcoming = sorted((d for d in obj.drills.all() if d.is_open), key=lambda d: d.due_at)
        if not upcoming:
            return "-"
        return _overdue_badge(upcoming[0].is_overdue(), f"{upcoming[0].due_at:%Y-%m-%d}")


class EvidenceInline(admin.TabularInline):
    model = DrillEvidence
    extra = 0
    fields = ("file", "description", "uploaded_at", "uploaded_by", "download")
    readonly_fields = ("uploaded_at", "uploaded_by", "download")

    @admin.display(description="open")
    def download(self, obj):
        if not obj.pk:
            return "-"
        return format_html('<a href="{}">download</a>', reverse("admin:drills_drillevidence_download", args=[obj.pk]))


class FindingInline(admin.TabularInline):
    model = Finding
    extra = 0
    fields = ("title", "owner", "owner_contact", "due_at", "status", "closed_at")
    readonly_fields = ("closed_at",)
    raw_id_fields = ("owner", "owner_contact")


class MarkDoneForm(forms.Form):
    result = forms.ChoiceField(choices=Drill.Result.choices, widget=forms.RadioSelect)
    performed_at = forms.SplitDateTimeField(
        required=False, widget=admin.widgets.AdminSplitDateTime, help_text="Empty: now."
    )
    measured_rto = HumanDurationField(required=False, help_text="How long recovery took")
    measured_rpo = HumanDurationField(required=False, help_text="How much data would have been lost")
    went_well = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    went_badly = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), label="What did not")
    recommendations = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Drill)
class DrillAdmin(admin.ModelAdmin):
    list_display = ("due", "activity", "status", "result", "rto_display", "rpo_display", "performed_at", "verification")
    list_filter = ("status", "result", OverdueFilter, "activity")
    ordering = ("due_at",)
    date_hierarchy = "due_at"
    list_select_related = ("activity", "verification")
    show_full_result_count = False
    raw_id_fields = ("verification", "performed_by")
    filter_horizontal = ("participants",)
    search_fields = ("activity__name", "went_well", "went_badly", "recommendations")
    inlines = [FindingInline, EvidenceInline]
    actions = ["mark_done", "run_now"]
    change_list_template = "admin/drills/drill/change_list.html"
    readonly_fields = ("overdue_since", "reminded_at", "started_at", "error", "created_at")
    fieldsets = (
        (None, {"fields": ("activity", "due_at", "status", "skipped_reason", "error")}),
        ("Performed", {"fields": ("performed_at", "performed_by", "participants", "other_participants", "result")}),
        ("Measured against the targets", {"fields": ("measured_rto", "target_rto", "measured_rpo", "target_rpo")}),
        ("After action", {"fields": ("went_well", "went_badly", "recommendations", "verification")}),
        (
            "Reminders",
            {"classes": ("collapse",), "fields": ("overdue_since", "reminded_at", "started_at", "created_at")},
        ),
    )

    def has_perform_permission(self, request):
        return request.user.has_perm("drills.perform_drill")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("upcoming/", view(self.upcoming_view), name="drills_drill_upcoming"),
            path("mark-done/", view(self.mark_done_view), name="drills_drill_mark_done"),
            path(
                "evidence/<int:evidence_id>/download/",
                view(self.evidence_view),
                name="drills_drillevidence_download",
            ),
            *super().get_urls(),
        ]

    def save_formset(self, request, form, formset, change):
        instances = formset.save(commit=False)
        for instance in instances:
            if isinstance(instance, DrillEvidence) and not instance.uploaded_by_id:
                instance.uploaded_by = request.user
            instance.save()
        for obj in formset.deleted_objects:
            obj.delete()
        formset.save_m2m()

    # --- columns --------------------------------------------------------------------------
    @admin.display(description="due", ordering="due_at")
    def due(self, obj):
        return _overdue_badge(obj.is_overdue(), f"{obj.due_at:%Y-%m-%d %H:%M}")

    @admin.display(description="RTO (measured / target)")
    def rto_display(self, obj):
        return self._vs(obj.measured_rto, obj.target_rto, obj.rto_met)

    @admin.display(description="RPO (measured / target)")
    def rpo_display(self, obj):
        return self._vs(obj.measured_rpo, obj.target_rpo, obj.rpo_met)

    @staticmethod
    def _vs(measured, target, met):
        text = f"{humanize.duration_words(measured)} / {humanize.duration_words(target)}"
        if met is False:
            return format_html('<strong style="color:#ba2121">{} ✗</strong>', text)
        return f"{text} ✓" if met else text

    # --- actions and views -------------------------------------------------------------------
    @admin.action(description="Mark done with a result…", permissions=["perform"])
    def mark_done(self, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.filter(status__in=Drill.OPEN_STATUSES).values_list("pk", flat=True))
        if not ids:
            self.message_user(request, "None of the selected drills is open.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:drills_drill_mark_done") + f"?ids={ids}")

    def mark_done_view(self, request):
        if not self.has_perform_permission(request):
            raise PermissionDenied
        raw = request.GET.get("ids") or request.POST.get("ids") or ""
        ids = [int(x) for x in raw.split(",") if x.isdigit()]
        drills = list(Drill.objects.filter(pk__in=ids, status__in=Drill.OPEN_STATUSES).select_related("activity"))
        form = MarkDoneForm(request.POST or None)
        if request.method == "POST" and drills and form.is_valid():
            data = form.cleaned_data
            fields = {
                k: data[k] for k in ("measured_rto", "measured_rpo", "went_well", "went_badly", "recommendations")
            }
            for drill in drills:
                schedule.complete(drill, data["result"], user=request.user, performed_at=data["performed_at"], **fields)
                self.log_change(request, drill, f"Marked done: {data['result']}")
            self.message_user(request, f"{len(drills)} drill(s) marked done; the next ones are scheduled.")
            if len(drills) == 1:
                return HttpResponseRedirect(reverse("admin:drills_drill_change", args=[drills[0].pk]))
            return HttpResponseRedirect(reverse("admin:drills_drill_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Mark drills done",
            "opts": self.model._meta,
            "drills": drills,
            "ids": ",".join(str(d.pk) for d in drills),
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/drills/drill/mark_done.html", context)

    @admin.action(description="Run now (automated drills: a real restore test)", permissions=["perform"])
    def run_now(self, request, queryset):
        queued = 0
        for drill in queryset.filter(status=Drill.Status.SCHEDULED).exclude(activity__automation=""):
            enqueue_drill(drill, request.user.pk)
            queued += 1
        if queued:
            self.message_user(request, f"{queued} automated drill(s) queued; results appear here when done.")
        else:
            self.message_user(request, "Only scheduled drills the portal performs can run now.", messages.WARNING)

    def evidence_view(self, request, evidence_id):
        """Evidence is served to signed-in viewers only, from whatever storage holds it (S3 or disk)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        evidence = get_object_or_404(DrillEvidence, pk=evidence_id)
        try:
            handle = evidence.file.open("rb")
        except (FileNotFoundError, OSError) as exc:
            raise Http404(f"evidence file unavailable: {exc}") from None
        return FileResponse(handle, as_attachment=True, filename=evidence.file.name.rsplit("/", 1)[-1])

    def upcoming_view(self, request):
        """A calendar-like list: what is overdue, then the next 90 days by month (drills and reviews)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        today = timezone.localdate(now)
        entries = upcoming_items(now, days=UPCOMING_DAYS)
        overdue = [e for e in entries if e["overdue"]]
        months: dict[str, list] = {}
        for entry in entries:
            if not entry["overdue"]:
                months.setdefault(entry["when"].strftime("%B %Y"), []).append(entry)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Upcoming drills and reviews (next {UPCOMING_DAYS} days)",
            "opts": self.model._meta,
            "overdue": overdue,
            "months": list(months.items()),
            "today": today,
        }
        return TemplateResponse(request, "admin/drills/upcoming.html", context)


@admin.register(Finding)
class FindingAdmin(admin.ModelAdmin):
    list_display = ("title", "drill", "owner_display", "due", "status", "closed_at")
    list_filter = ("status", OverdueFilter)
    search_fields = ("title", "description")
    list_select_related = ("drill__activity", "owner", "owner_contact")
    show_full_result_count = False
    raw_id_fields = ("drill", "owner", "owner_contact")
    readonly_fields = ("closed_at", "overdue_since", "reminded_at")

    @admin.display(description="owner")
    def owner_display(self, obj):
        return obj.owner_display

    @admin.display(description="due", ordering="due_at")
    def due(self, obj):
        return _overdue_badge(obj.is_overdue(), f"{obj.due_at:%Y-%m-%d}") if obj.due_at else "-"


class ReviewInline(admin.TabularInline):
    model = PlanReview
    extra = 0
    fields = ("reviewed_at", "reviewer", "outcome", "changes", "major", "signed_off_by", "signed_off_at")
    readonly_fields = ("signed_off_by", "signed_off_at")
    raw_id_fields = ("reviewer",)
    show_change_link = True


class ChangeLogInline(admin.TabularInline):
    model = ChangeLogEntry
    extra = 0
    fields = ("date", "version", "changes", "author")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PlanDocument)
class PlanDocumentAdmin(admin.ModelAdmin):
    list_display = ("title", "version", "owner", "review_cadence", "last_reviewed_at", "next_review", "status")
    list_filter = ("status", "review_cadence")
    readonly_fields = ("version", "last_reviewed_at", "next_review_at", "overdue_since", "reminded_at")
    inlines = [ReviewInline, ChangeLogInline]

    @admin.display(description="next review", ordering="next_review_at")
    def next_review(self, obj):
        if not obj.next_review_at:
            return "-"
        return _overdue_badge(obj.is_review_overdue(), f"{obj.next_review_at}")


@admin.register(PlanReview)
class PlanReviewAdmin(admin.ModelAdmin):
    list_display = ("document", "reviewed_at", "reviewer_display", "outcome", "version_after", "signed_off_at")
    list_filter = ("outcome", "document")
    list_select_related = ("document", "reviewer")
    show_full_result_count = False
    raw_id_fields = ("reviewer",)
    readonly_fields = ("signed_off_by", "signed_off_at", "version_after")
    actions = ["sign_off"]

    def has_sign_off_permission(self, request):
        return request.user.has_perm("drills.sign_off_planreview")

    def save_model(self, request, obj, form, change):
        if not obj.reviewer_id and not obj.reviewer_name:
            obj.reviewer = request.user
        if not change:
            obj.created_by = request.user  # an author too: may not sign it off
        super().save_model(request, obj, form, change)

    # Signed off: a record (its outcome is applied to the document); the model refuses writes too.
    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.signed_off_at:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.signed_off_at:
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request, queryset):
        kept = queryset.filter(signed_off_at__isnull=False)
        if kept.exists():
            self.message_user(request, f"{kept.count()} signed-off review(s) kept: they are records.", messages.WARNING)
        super().delete_queryset(request, queryset.filter(signed_off_at__isnull=True))

    @admin.display(description="reviewer")
    def reviewer_display(self, obj):
        return obj.reviewer_display

    @admin.action(description="Sign off (approving changes bumps the version and logs them)", permissions=["sign_off"])
    def sign_off(self, request, queryset):
        for review in queryset.select_related("document"):
            try:
                review = reviews.sign_off(review, user=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{review}: {' '.join(exc.messages)}", messages.ERROR)
                continue
            self.log_change(request, review, "Signed off")
            self.message_user(request, f"Signed off {review}; {review.document.key} is now v{review.version_after}.")
