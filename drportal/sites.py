"""The admin site: Django's, with the dashboard on the index page."""

from __future__ import annotations

from django.contrib import admin


class PortalAdminSite(admin.AdminSite):
    site_header = "DR Portal"
    site_title = "DR Portal"
    index_title = "Are we safe right now?"
    index_template = "admin/dashboard_index.html"

    def index(self, request, extra_context=None):
        from .dashboard import dashboard_context

        extra_context = {**(extra_context or {}), "dashboard": dashboard_context(request)}
        return super().index(request, extra_context)
