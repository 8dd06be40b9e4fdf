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


class PlanManagedAdminMixin:
    """Rows applyplan manages say so on their page, and an edit to a field the plan file sets is refused
    with "managed by <file>: change it there and run applyplan" (the form's error; ``drportal.plan``
    refuses the save itself too, for any other way in). The portal's admin site adds this to every admin."""

    def _plan_managed(self, request, obj):
        from .plan import managed_by

        cache = request.__dict__.setdefault("_plan_managed", {})
        key = (type(obj), getattr(obj, "pk", None))
        if key not in cache:
            cache[key] = managed_by(obj)
        return cache[key]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        managed = self._plan_managed(request, obj) if obj is not None else None
        if managed is None:
            return form
        from .plan import MANAGED_REFUSAL

        file, fields = managed

        class PlanManagedForm(form):
            def clean(self):
                cleaned = super().clean()
                # Against the stored row, not the form's "changed" flags: a hand-typed POST has no hidden
                # initial values, and a kept secret is blank in the POST but unchanged.
                stored = type(self.instance)._default_manager.get(pk=self.instance.pk)
                for name in fields:
                    if name in cleaned and _differs(stored, name, cleaned[name]):
                        self.add_error(name if name in self.fields else None, MANAGED_REFUSAL.format(file=file))
                return cleaned

        PlanManagedForm.__name__ = form.__name__
        return PlanManagedForm

    def get_inline_instances(self, request, obj=None):
        """Rows the plan sets through a relation of its own (a scenario's steps) are shown, not edited."""
        inlines = super().get_inline_instances(request, obj)
        managed = self._plan_managed(request, obj) if obj is not None else None
        if managed is None:
            return inlines
        from django.forms.models import _get_foreign_key

        for inline in inlines:
            fk = _get_foreign_key(self.model, inline.model, fk_name=inline.fk_name)
            if fk.remote_field.get_accessor_name() in managed[1]:
                inline.has_add_permission = lambda request, obj=None: False
                inline.has_change_permission = lambda request, obj=None: False
                inline.has_delete_permission = lambda request, obj=None: False
        return inlines

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        managed = self._plan_managed(request, obj) if obj is not None else None
        if managed is None or not fieldsets:
            return fieldsets
        file, fields = managed
        labels = []
        for name in fields:
            try:
                labels.append(str(self.model._meta.get_field(name).verbose_name))
            except Exception:  # a relation the section sets (steps...): named as the plan names it
                labels.append(name)
        note = (
            f"Managed by the plan file {file}: {', '.join(labels)} are set there. An edit to them here is "
            f"refused; change {file} and run applyplan."
        )
        (title, options), *rest = fieldsets
        described = {**options, "description": f"{note} {options.get('description') or ''}".strip()}
        return [(title, described), *rest]


def _differs(stored, name: str, value) -> bool:
    """Whether a form's cleaned ``value`` for field ``name`` differs from the stored row's."""
    field = stored._meta.get_field(name)
    if field.many_to_many:
        return {obj.pk for obj in value or []} != set(getattr(stored, name).values_list("pk", flat=True))
    current = getattr(stored, name)
    if value in (None, "") and current in (None, ""):
        return False
    return value != current
