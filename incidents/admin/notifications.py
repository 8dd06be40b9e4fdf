"""Admin of alert channels and notifications (moving to the alerts app)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.html import format_html

from drportal.admin_base import HiddenFromViewersMixin, RecordAdminMixin

from ..models import (
    Notification,
    NotificationChannel,
)


class ChannelForm(forms.ModelForm):
    webhook_url = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="A secret (it carries the token): encrypted at rest, never shown. Leave blank to keep it.",
    )

    class Meta:
        model = NotificationChannel
        fields = ("name", "kind", "email_to", "webhook_url", "events", "enabled")

    def clean_webhook_url(self):
        value = self.cleaned_data.get("webhook_url")
        if not value and self.instance.pk:
            return self.instance.webhook_url
        return value


@admin.register(NotificationChannel)
class NotificationChannelAdmin(HiddenFromViewersMixin, admin.ModelAdmin):
    form = ChannelForm
    hidden_from_viewers = ("webhook_url",)
    list_display = ("name", "kind", "destination", "events_display", "enabled")
    list_filter = ("kind", "enabled")

    @admin.display(description="sends to")
    def destination(self, obj):
        if obj.kind == obj.Kind.EMAIL:
            return obj.email_to
        # Show only the host: the rest of a webhook URL is its secret.
        from urllib.parse import urlsplit

        return f"{urlsplit(obj.webhook_url).netloc}/…" if obj.webhook_url else "-"

    @admin.display(description="events")
    def events_display(self, obj):
        return ", ".join(obj.events) or "all"


@admin.register(Notification)
class NotificationAdmin(RecordAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "event", "channel", "status_badge", "subject", "error")
    list_filter = ("status", "event", "channel")
    search_fields = ("subject", "object_ref")
    show_full_result_count = False
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "event", "channel", "kind", "subject", "body", "status", "error", "object_ref")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html(
            '<span class="run-status run-status-{}">{}</span>',
            "succeeded" if obj.status == "sent" else "failed",
            obj.status,
        )
