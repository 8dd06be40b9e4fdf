"""The admin site: Django's, with the dashboard on the index page."""

from __future__ import annotations

from django.contrib import admin


class PortalAdminSite(admin.AdminSite):
    site_header = "DR Portal"
    site_title = "DR Portal"
    index_title = "Are we safe right now?"
    index_template = "admin/dashboard_index.html"
    # "View site": the public status page (there is no other public site; "/" would only lead back here).
    site_url = "/status/"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Before any ModelAdmin is made (they copy these defaults when registered).
        use_human_durations()

    def register(self, model_or_iterable, admin_class=None, **options):
        """Every admin of the portal marks plan-managed rows and refuses edits to what the plan file sets."""
        from drportal.admin_base import PlanManagedAdminMixin

        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, PlanManagedAdminMixin):
            admin_class = type(
                admin_class.__name__,
                (PlanManagedAdminMixin, admin_class),
                {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__},
            )
        super().register(model_or_iterable, admin_class, **options)

    def index(self, request, extra_context=None):
        from .dashboard import dashboard_context

        extra_context = {**(extra_context or {}), "dashboard": dashboard_context(request)}
        return super().index(request, extra_context)


def use_human_durations() -> None:
    """Every admin form (model admins and inlines, in every app) reads durations as people type them.

    Django's admin copies these defaults into each ModelAdmin's formfield_overrides, so one entry here
    reaches objectives, severities, scenarios, probes and drills without touching each app's admin.
    """
    from django.contrib.admin import options
    from django.db import models

    from drportal.forms import HumanDurationField

    options.FORMFIELD_FOR_DBFIELD_DEFAULTS[models.DurationField] = {"form_class": HumanDurationField}
