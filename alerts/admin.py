"""Admin for alerts: channels (webhook URLs never shown) and the outbox, with "retry now"."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from drportal.admin_base import HiddenFromViewersMixin, RecordAdminMixin

from . import events
from .models import Channel, Notification
from .tasks import enqueue_deliveries


class ChannelForm(forms.ModelForm):
    webhook_url = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="A secret (it carries the token): encrypted at rest, never shown. Leave blank to keep it.",
    )

    class Meta:
        model = Channel
        fields = ("name", "kind", "email_to", "webhook_url", "events", "enabled")
        help_texts = {"events": "Events to send (a JSON list); empty: all of them."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "events" in self.fields:  # absent from a viewer's read-only form
            known = ", ".join(e.name for e in events.registered())
            self.fields["events"].help_text += f" Known events: {known}."

    def clean_webhook_url(self):
        value = self.cleaned_data.get("webhook_url")
        if not value and self.instance.pk:
            return self.instance.webhook_url
        return value


@admin.register(Channel)
class ChannelAdmin(HiddenFromViewersMixin, admin.ModelAdmin):
    form = ChannelForm
    hidden_from_viewers = ("webhook_url",)
    list_display = ("name", "kind", "destination", "events_display", "enabled")
    list_filter = ("kind", "enabled")

    @admin.display(description="sends to")
    def destination(self, obj):
        if obj.kind == obj.Kind.EMAIL:
            return obj.email_to
        # Show only the host: the rest of a webhook URL is its secret.
        return f"{urlsplit(obj.webhook_url).netloc}/…" if obj.webhook_url else "-"

    @admin.display(description="events")
    def events_display(self, obj):
        return ", ".join(obj.events) or "all"


_BADGES = {"delivered": "succeeded", "failed": "failed", "retrying": "partial", "pending": "queued"}


@admin.register(Notification)
class NotificationAdmin(RecordAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "event",
        "channel",
        "status_badge",
        "attempts",
        "next_attempt_at",
        "subject",
        "last_error",
    )
    list_filter = ("status", "event", "channel")
    list_select_related = ("via",)
    search_fields = ("subject", "object_ref")
    show_full_result_count = False
    date_hierarchy = "created_at"
    raw_id_fields = ("via",)
    readonly_fields = (
        "created_at",
        "event",
        "channel",
        "recipient",
        "kind",
        "subject",
        "body",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "delivered_at",
        "object_ref",
    )
    exclude = ("via",)  # the channel's name is shown; its row holds the webhook's secret URL
    actions = ["retry_now"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html(
            '<span class="run-status run-status-{}">{}</span>',
            _BADGES.get(obj.status, "queued"),
            obj.get_status_display(),
        )

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("alerts.retry_notification")

    @admin.action(description="Retry now (failed notifications)", permissions=["retry"])
    def retry_now(self, request, queryset):
        now = timezone.now()
        retried = [n.pk for n in queryset.filter(status=Notification.Status.FAILED) if n.retry_now(now)]
        enqueue_deliveries(retried)
        skipped = queryset.count() - len(retried)
        text = f"{len(retried)} notification(s) queued for one more attempt."
        if skipped:
            text += f" {skipped} skipped (only failed ones are retried; the others are delivered or still trying)."
        self.message_user(request, text, messages.SUCCESS if retried else messages.WARNING)
