"""Admin building blocks the apps share."""

from __future__ import annotations


class RecordAdminMixin:
    """Records of what happened (runs, checks, notifications, sent updates): people open them,
    nobody adds or edits them by hand. Works for ModelAdmins and inlines alike."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PermanentRecordAdminMixin(RecordAdminMixin):
    """A record the audit trail relies on: not deletable from the admin either."""

    def has_delete_permission(self, request, obj=None):
        return False
