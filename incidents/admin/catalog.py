"""Admin of the plan's incident-response catalogue: severities, scenarios, checklist templates, roles, contacts,
providers."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import models
from django.db.models import Count
from django.utils.html import format_html

from ..models import (
    ChecklistItemTemplate,
    Contact,
    ResponseRole,
    Scenario,
    ScenarioStep,
    ServiceProvider,
    Severity,
)
from ..services import measure


def badge_html(color: str, text: str) -> str:
    return format_html('<span class="severity-badge" style="background:{}">{}</span>', color, text)


@admin.register(Severity)
class SeverityAdmin(admin.ModelAdmin):
    list_display = ("key", "badge", "description", "response", "target_rto", "report_due", "public_impact", "order")
    list_editable = ("order",)
    ordering = ("order", "key")

    @admin.display(description="name")
    def badge(self, obj):
        return badge_html(obj.color, obj.name)

    @admin.display(description="response time")
    def response(self, obj):
        return obj.response_time_display


class ScenarioStepInline(admin.TabularInline):
    model = ScenarioStep
    extra = 0
    fields = ("order", "text", "command", "expected_duration")
    formfield_overrides = {models.TextField: {"widget": forms.Textarea(attrs={"rows": 3, "cols": 60})}}


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = ("number", "title", "severity", "rto", "rpo", "protects", "estimated_recovery", "step_count")
    list_display_links = ("number", "title")
    list_select_related = ("severity",)
    list_filter = ("severity",)
    filter_horizontal = ("targets",)
    inlines = [ScenarioStepInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(step_total=Count("steps")).prefetch_related("targets")

    @admin.display(description="protects (targets)")
    def protects(self, obj):
        return ", ".join(t.name for t in obj.targets.all()) or "-"

    @admin.display(description="target RTO", ordering="target_rto")
    def rto(self, obj):
        return measure.target_label(obj.target_rto)

    @admin.display(description="target RPO", ordering="target_rpo")
    def rpo(self, obj):
        return measure.target_label(obj.target_rpo, unset="-")

    @admin.display(description="steps", ordering="step_total")
    def step_count(self, obj):
        return obj.step_total


@admin.register(ChecklistItemTemplate)
class ChecklistItemTemplateAdmin(admin.ModelAdmin):
    list_display = ("order", "text", "key", "requires_evidence")
    list_display_links = ("text",)


@admin.register(ResponseRole)
class ResponseRoleAdmin(admin.ModelAdmin):
    list_display = ("name", "responsibilities", "order")


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("name", "title", "phone", "email", "default_role", "stakeholder", "user")
    list_filter = ("stakeholder", "default_role")
    list_select_related = ("default_role", "user")
    search_fields = ("name", "title", "email")
    raw_id_fields = ("user",)


@admin.register(ServiceProvider)
class ServiceProviderAdmin(admin.ModelAdmin):
    list_display = ("name", "service", "support_link", "contact", "status_link")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # Django 6's default, without the warning

    @admin.display(description="support")
    def support_link(self, obj):
        return (
            format_html('<a href="{}" rel="noopener">{}</a>', obj.support_url, obj.support_url)
            if obj.support_url
            else "-"
        )

    @admin.display(description="status page")
    def status_link(self, obj):
        return (
            format_html('<a href="{}" rel="noopener">{}</a>', obj.status_url, obj.status_url) if obj.status_url else "-"
        )
