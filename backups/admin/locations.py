"""Admin of backup locations."""

from __future__ import annotations

from django.contrib import admin
from django.db import models

from drportal.admin_base import HiddenFromViewersMixin

from ..models import Location
from .kept_secrets import KeepSecretsForm, _formfield


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
