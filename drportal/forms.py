"""Form fields the apps share."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils.duration import duration_string

from .plan import DURATION_EXAMPLES, parse_duration


class HumanDurationField(forms.DurationField):
    """A duration as people type it ("45 min", "1h30", "1 day"), through the plan file's own parser.

    Registered for every model DurationField in the admin (drportal.apps), so a drill, an objective,
    a severity and the plan file all accept the same words.
    """

    default_error_messages = {"invalid": f"Enter a duration like {DURATION_EXAMPLES}."}

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("help_text", "")
        super().__init__(*args, **kwargs)
        example = f"e.g. {DURATION_EXAMPLES}."
        self.help_text = f"{self.help_text} ({example})" if self.help_text else example.capitalize()

    def prepare_value(self, value):
        return duration_string(value) if isinstance(value, timedelta) else value

    def to_python(self, value) -> timedelta | None:
        if value in self.empty_values:
            return None
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            raise ValidationError(str(exc), code="invalid") from None
