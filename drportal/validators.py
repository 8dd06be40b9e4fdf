"""Validators every app shares."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def validate_name(value: str) -> None:
    """A name or key people type in the plan and in URLs: lowercase letters, digits, '-' and '_'."""
    if not NAME_RE.match(value):
        raise ValidationError("Use lowercase letters, digits, '-' and '_' (at most 63 characters).")
