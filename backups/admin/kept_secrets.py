"""Write-only secret inputs that survive a form error (sealed, never shown), and the form base using them."""

from __future__ import annotations

from django import forms
from django.db import models
from django.utils.html import format_html


class SecretInput(forms.PasswordInput):
    """Never renders the stored value back into the page."""

    def __init__(self):
        super().__init__(render_value=False, attrs={"autocomplete": "new-password"})


KEPT_SUFFIX = "__kept"
KEPT_PURPOSE = b"drportal kept form secret\n"
KEPT_MAX_AGE = 3600  # seconds: a form re-posted within the hour


def seal_secret(value: str) -> str:
    """The secret encrypted (Fernet, FIELD_ENCRYPTION_KEYS) for a hidden input: the page never holds its text.
    A purpose prefix keeps other Fernet tokens (e.g. stored sources) from being accepted in its place."""
    from drportal.fields import field_fernet

    return field_fernet().encrypt(KEPT_PURPOSE + value.encode()).decode()


def unseal_secret(token: str) -> str:
    """The secret back from ``seal_secret``'s token, or "" when it is not one, expired or forged."""
    from cryptography.fernet import InvalidToken

    from drportal.fields import field_fernet

    if not token:
        return ""
    try:
        plain = field_fernet().decrypt(token.encode(), ttl=KEPT_MAX_AGE)
    except (InvalidToken, ValueError, TypeError):
        return ""
    return plain[len(KEPT_PURPOSE) :].decode() if plain.startswith(KEPT_PURPOSE) else ""


class KeptSecretInput(SecretInput):
    """A secret input that survives a form error: what was typed comes back sealed in a hidden input
    (never as text), and a re-post that leaves the box empty uses it."""

    def __init__(self):
        super().__init__()
        self.kept = ""

    def render(self, name, value, attrs=None, renderer=None):
        html = super().render(name, value, attrs, renderer)
        if self.kept:
            html += format_html('<input type="hidden" name="{}" value="{}">', name + KEPT_SUFFIX, self.kept)
        return html

    def value_from_datadict(self, data, files, name):
        typed = super().value_from_datadict(data, files, name)
        return typed or unseal_secret(data.get(name + KEPT_SUFFIX, "")) or typed


def _formfield(db_field, **kwargs):
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class KeepSecretsForm(forms.ModelForm):
    """A blank secret field on change keeps the stored value instead of erasing it."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_fields:
            if name not in self.fields:
                continue  # view-only: the admin gives the form no editable fields (the values are hidden)
            field = self.fields[name]
            field.widget = KeptSecretInput()
            field.required = False
            if self.instance.pk and getattr(self.instance, name):
                field.help_text = "Stored (encrypted). Leave blank to keep it; type a new value to replace it."

    def clean(self):
        cleaned = super().clean()
        for name in self.secret_fields:
            if name in self.fields and self.instance.pk and not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name)
        return cleaned

    def full_clean(self):
        super().full_clean()
        if not self.is_bound or not self.errors:
            return
        # A form error elsewhere must not cost the operator a secret they typed; a secret that is itself
        # wrong is not kept (it would only fail again).
        for name in self.secret_fields:
            if name not in self.fields or name in self.errors:
                continue
            value = self.fields[name].widget.value_from_datadict(self.data, self.files, self.add_prefix(name))
            stored = getattr(self.instance, name, "") if self.instance.pk else ""
            if value and value != stored:
                self.fields[name].widget.kept = seal_secret(value)
                self.fields[
                    name
                ].help_text = (
                    "Kept from your last attempt (not shown). Leave blank to use it; type a new value to replace it."
                )
