"""The incident page's inlines: roles, checklist and runbook steps, each saved through Incident's methods."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import F
from django.utils.html import format_html, format_html_join

from drportal.admin_base import RecordAdminMixin

from ..models import (
    Incident,
    IncidentChecklistItem,
    IncidentStep,
    RoleAssignment,
    check_evidence,
)


class IncidentFormSet(forms.BaseInlineFormSet):
    """An inline whose rows are saved through Incident's methods, never by the formset itself
    (IncidentAdmin.save_formset calls ``save_through``); each subclass says which in ``apply``."""

    def save_through(self, incident: Incident, user) -> None:
        for form in self.forms:
            if form.has_changed() and hasattr(form, "cleaned_data") and form.cleaned_data:
                self.apply(incident, form.instance, form.cleaned_data, user)
        # Nothing was saved by the formset: the admin's change message lists no inline rows.
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []

    def apply(self, incident: Incident, row, data: dict, user) -> None:
        raise NotImplementedError


class RoleHistoryInline(RecordAdminMixin, admin.TabularInline):
    """Every holder of every role, current first, with from/until: the hand-off history."""

    model = RoleAssignment
    verbose_name = "role holder"
    verbose_name_plural = "Roles (current holders and hand-off history)"
    extra = 0
    can_delete = False
    fields = ("role", "holder_display", "started_at", "ended_at", "assigned_by")
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("role", "contact", "user", "assigned_by")
            .order_by(F("ended_at").desc(nulls_first=True), "role__order", "-started_at")
        )

    @admin.display(description="held by")
    def holder_display(self, obj):
        current = "" if obj.ended_at else " (current)"
        return f"{obj.holder}{current}"


class AssignRoleFormSet(IncidentFormSet):
    def apply(self, incident: Incident, row: RoleAssignment, data: dict, user) -> None:
        incident.assign_role(data["role"], contact=data.get("contact"), person=data.get("user"), by=user)


class AssignRoleForm(forms.ModelForm):
    class Meta:
        model = RoleAssignment
        fields = ("role", "contact", "user")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("role") and not (cleaned.get("contact") or cleaned.get("user")):
            raise forms.ValidationError("Choose a contact or a portal user to hold the role.")
        return cleaned

    def _post_clean(self):
        # The model's constraints (one current holder per role) hold after assign_role() ends the
        # previous holder; checking them on this unsaved row would refuse every hand-off.
        # Nothing to construct either: save_formset() calls Incident.assign_role() with cleaned_data.
        return


class AssignRoleInline(admin.TabularInline):
    """Blank rows only: assigning a role that someone holds hands it over (history kept above)."""

    model = RoleAssignment
    form = AssignRoleForm
    formset = AssignRoleFormSet
    verbose_name = "role assignment"
    verbose_name_plural = "Assign or hand over a role"
    extra = 1
    can_delete = False
    fields = ("role", "contact", "user")
    raw_id_fields = ("user",)

    def get_queryset(self, request):
        return super().get_queryset(request).none()


class ChecklistFormSet(IncidentFormSet):
    def apply(self, incident: Incident, row: IncidentChecklistItem, data: dict, user) -> None:
        if data["done"] and not row.done_at:
            incident.tick_checklist(
                row,
                user,
                evidence_note=data.get("evidence_note", ""),
                evidence_restore=data.get("evidence_restore"),
                evidence_verification=data.get("evidence_verification"),
            )
        elif not data["done"] and row.done_at:
            incident.untick_checklist(row, user)


class ChecklistItemForm(forms.ModelForm):
    done = forms.BooleanField(required=False, label="done")

    class Meta:
        model = IncidentChecklistItem
        fields = ("evidence_note", "evidence_restore", "evidence_verification")
        widgets = {"evidence_note": forms.TextInput(attrs={"size": 30, "placeholder": "evidence note"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["done"].initial = bool(self.instance.done_at)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("done") and not self.instance.done_at:
            try:
                check_evidence(
                    self.instance,
                    (cleaned.get("evidence_note") or "").strip(),
                    cleaned.get("evidence_restore"),
                    cleaned.get("evidence_verification"),
                )
            except ValidationError as exc:
                raise forms.ValidationError(exc.messages) from None
        return cleaned


class ChecklistInline(admin.TabularInline):
    model = IncidentChecklistItem
    form = ChecklistItemForm
    formset = ChecklistFormSet
    verbose_name = "checklist item"
    verbose_name_plural = "Response checklist"
    extra = 0
    can_delete = False
    fields = ("order", "text", "done", "done_info", "evidence_note", "evidence_restore", "evidence_verification")
    readonly_fields = ("order", "text", "done_info")
    raw_id_fields = ("evidence_restore", "evidence_verification")

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("done_by")

    @admin.display(description="ticked")
    def done_info(self, obj):
        return _done_info(obj)


NEXT_CHECKLIST_ITEMS = 3


def _next_checklist(incident: Incident) -> list[dict]:
    """The first unticked checklist items with their row in the checklist inline (its ``done`` box is ticked
    from the working area, so the tick is saved with the rest of the page)."""
    rows = []
    for index, item in enumerate(incident.checklist.order_by("order")):
        if not item.done_at:
            rows.append({"index": index, "item": item})
        if len(rows) == NEXT_CHECKLIST_ITEMS:
            break
    return rows


def _done_info(obj) -> str:
    if not obj.done_at:
        return "-"
    who = (obj.done_by.get_full_name() or obj.done_by.get_username()) if obj.done_by else "system"
    return f"{who}, {obj.done_at:%Y-%m-%d %H:%M} UTC"


class StepFormSet(IncidentFormSet):
    def apply(self, incident: Incident, row: IncidentStep, data: dict, user) -> None:
        if data["done"] and not row.done_at:
            incident.complete_step(row, user)


class StepForm(forms.ModelForm):
    done = forms.BooleanField(required=False, label="done")

    class Meta:
        model = IncidentStep
        fields = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["done"].initial = bool(self.instance.done_at)


class StepInline(admin.TabularInline):
    model = IncidentStep
    form = StepForm
    formset = StepFormSet
    verbose_name = "runbook step"
    verbose_name_plural = "Runbook steps (copied from the scenario when the incident opened)"
    classes = ("collapse",)  # long reference: a <details> the commander opens when needed
    extra = 0
    can_delete = False
    fields = ("order", "step", "expected_duration", "done", "done_info")
    readonly_fields = ("order", "step", "expected_duration", "done_info")

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("done_by")

    @admin.display(description="step")
    def step(self, obj):
        lines = obj.text.splitlines()
        text = format_html("<strong>{}</strong>", lines[0]) if lines else ""
        rest = format_html_join("", "<br>{}", ((line,) for line in lines[1:]))
        command = format_html('<pre class="runbook-command">{}</pre>', obj.command) if obj.command else ""
        return format_html("{}{}{}", text, rest, command)

    @admin.display(description="done by")
    def done_info(self, obj):
        return _done_info(obj)
