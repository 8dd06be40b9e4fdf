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


class HiddenFromViewersMixin:
    """Fields or read-only displays named in ``hidden_from_viewers`` (tokens, keys, URLs that are
    credentials) show only "hidden" to anyone who may view the object but not change it."""

    hidden_from_viewers: tuple[str, ...] = ()

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if not self.hidden_from_viewers or self.has_change_permission(request, obj):
            return fieldsets
        hidden = {name: _hidden_display(self, name) for name in self.hidden_from_viewers}

        def swap(field):
            if isinstance(field, (list, tuple)):
                return tuple(swap(f) for f in field)
            return hidden.get(field, field)

        return [(title, {**options, "fields": [swap(f) for f in options["fields"]]}) for title, options in fieldsets]


def _hidden_display(model_admin, name: str):
    """A read-only display that says the value is hidden, labelled like the field it stands for."""
    attribute = getattr(model_admin, name, None)
    if attribute is not None:
        label = getattr(attribute, "short_description", name)
    else:
        label = model_admin.model._meta.get_field(name).verbose_name

    def show(obj) -> str:
        return "hidden (only roles that may change this may see it)"

    show.short_description = label
    show.__name__ = f"{name}_hidden"
    return show
