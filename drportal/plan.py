"""Plan as code: read a DR plan TOML file and apply it, section by section.

Each app registers the sections it owns (``@section("targets", order=20)``) in its
own ``plan.py``; this module only reads the file, checks every key and value
through :class:`Table`, and calls the handlers in order inside one transaction.
String values may use ``${VAR}`` or ``${VAR:-default}`` to read the environment,
so one file serves a laptop and production.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction


class PlanError(Exception):
    """A problem in a plan file, naming the file, the table and the key."""


@dataclass
class PlanContext:
    file: str
    changes: list[str] = field(default_factory=list)
    managed: set[int] = field(default_factory=set)  # PlanManaged ids applied this time

    def changed(self, message: str) -> None:
        self.changes.append(message)


Handler = Callable[[dict[str, "Table"], PlanContext], None]
_SECTIONS: dict[str, tuple[int, Handler]] = {}
# Sections that only describe the plan (read by exportplan and similar).
_FREE_SECTIONS = {"plan"}


def section(name: str, order: int) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _SECTIONS[name] = (order, handler)
        return handler

    return register


_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def _interpolation_defaults() -> dict[str, str]:
    from django.conf import settings

    return {"BACKUP_LOCAL_DIR": str(settings.BACKUP_DEFAULT_LOCAL_DIR)}


def interpolate(value: Any, where: str) -> Any:
    if isinstance(value, str):
        defaults = _interpolation_defaults()

        def replace(match: re.Match) -> str:
            name = match["name"]
            if name in os.environ:
                return os.environ[name]
            if match["default"] is not None:
                return match["default"]
            if name in defaults:
                return defaults[name]
            raise PlanError(f"{where}: environment variable {name} is not set and has no default")

        return _VAR.sub(replace, value)
    if isinstance(value, list):
        return [interpolate(v, where) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, f"{where}.{k}") for k, v in value.items()}
    return value


_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
# "1h30": minutes after hours may go without their unit.
_HOURS_AND_MINUTES = re.compile(r"^(\d+)\s*h\s*(\d{1,2})$")
# Django's own rendering of a duration ("01:30:00", "1 02:00:00", "1 day, 0:00:00"), so a form shown
# with a stored value can be saved back unchanged.
_CLOCK = re.compile(r"^(?:(\d+)\s*(?:days?,?\s*)?\s+)?(\d+):([0-5]\d)(?::([0-5]\d)(?:\.\d+)?)?$")
DURATION_EXAMPLES = "45 min, 1h30, 90m, 1 day or 01:30:00"


def parse_duration(text: str) -> timedelta:
    """What people type: '45 min', '1h30', '90m', '1 day', '1d12h', '2 weeks', '30s', or '01:30:00'.

    The one duration parser: the plan file and every admin duration field use it. A bare number
    is refused (45 what?), so nobody gets 45 seconds when they meant minutes.
    """
    raw = str(text)
    value = raw.strip().lower()
    problem = ValueError(f"{raw!r} is not a duration like {DURATION_EXAMPLES}")
    if not value:
        raise problem
    if value.startswith("-") and value[1:].strip():
        # Parsed, not refused here: the model says in words why a negative duration is wrong for it.
        return -parse_duration(value[1:])
    clock = _CLOCK.match(value)
    if clock:
        days, hours, minutes, seconds = (int(part or 0) for part in clock.groups())
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    short = _HOURS_AND_MINUTES.match(value)
    if short:
        return timedelta(hours=int(short[1]), minutes=int(short[2]))
    rest = re.sub(r"\s*(,|\band\b)\s*", " ", value)
    total, position = 0.0, 0
    for part in _PART.finditer(rest):
        if rest[position : part.start()].strip() or part[2] not in _UNITS:
            raise problem
        total += float(part[1]) * _UNITS[part[2]]
        position = part.end()
    if position == 0 or rest[position:].strip():
        raise problem
    return timedelta(seconds=round(total))


_MISSING = object()


class Table:
    """One ``[section.name]`` table, read key by key with checks; ``done()`` rejects leftovers."""

    def __init__(self, file: str, section_name: str, name: str, data: dict) -> None:
        self.file, self.section, self.name = file, section_name, name
        self.data = dict(data)
        self.seen: set[str] = set()

    def where(self, key: str | None = None) -> str:
        base = f"{self.file} [{self.section}.{self.name}]"
        return f"{base} key '{key}'" if key else base

    def error(self, key: str | None, problem: str) -> PlanError:
        return PlanError(f"{self.where(key)}: {problem}")

    def _get(self, key: str, default, required: bool):
        self.seen.add(key)
        if key in self.data:
            return interpolate(self.data[key], self.where(key))
        if required:
            raise self.error(key, "is required")
        return default

    def str(self, key: str, default: str | None = "", *, required: bool = False, choices=None) -> str | None:
        value = self._get(key, default, required)
        if value is not None and not isinstance(value, str):
            raise self.error(key, f"must be a string, got {type(value).__name__}")
        if choices is not None and value not in choices:
            raise self.error(key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    def int(
        self, key: str, default: int | None = None, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        value = self._get(key, default, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be a whole number, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be at most {maximum}, got {value}")
        return value

    def bool(self, key: str, default: bool = False) -> bool:
        value = self._get(key, default, False)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def list(self, key: str, default: list | None = None, *, required: bool = False) -> list:
        value = self._get(key, default if default is not None else [], required)
        if not isinstance(value, list):
            raise self.error(key, f"must be a list, got {type(value).__name__}")
        return value

    def str_list(self, key: str, *, required: bool = False) -> list[str]:
        value = self.list(key, required=required)
        if not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of strings")
        return value

    def duration(
        self, key: str, default: str | None = None, *, required: bool = False, immediate: bool = False
    ) -> timedelta | None:
        """A duration like "45 min" or "1h30"; with ``immediate``, the word "immediate" is accepted too (None)."""
        value = self.str(key, default, required=required) if immediate else self._get(key, default, required)
        if value is None or (immediate and value.strip().lower() == "immediate"):
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(key, f'{exc}, or "immediate"' if immediate else str(exc)) from None

    def date(self, key: str, *, required: bool = False) -> date | None:
        """A TOML date (or the date of a date-time), or a string like 2026-04-17."""
        value = self._get(key, None, required)
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(key, f"must be a date like 2026-04-17, got {value!r}")

    def moment(self, key: str, *, required: bool = False) -> datetime | None:
        """A TOML date-time or date (09:00), or an ISO string; naive values are UTC; returned in UTC."""
        value = self._get(key, None, required)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise self.error(key, f"must be a date or date-time like 2026-02-01T04:00:00Z, got {value!r}") from None
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if isinstance(value, date):
            return datetime.combine(value, time(9, 0), tzinfo=UTC)
        raise self.error(key, f"must be a date or date-time, got {value!r}")

    def tables(self, key: str, *, item: str, fields: str) -> list[Table]:
        """A list of inline tables (a scenario's steps, a document's change log), each read as a Table of its own.

        ``item`` and ``fields`` word the error for an entry that is not a table: "step 2 must be a table with ..."
        """
        entries = []
        for number, raw in enumerate(self.list(key), start=1):
            if not isinstance(raw, dict):
                raise self.error(key, f"{item} {number} must be a table with {fields}")
            entries.append(Table(self.file, f"{self.section}.{self.name}.{key}", str(number), raw))
        return entries

    def check(self, key: str | None, validator: Callable[..., None], value, **kwargs) -> None:
        """Run a model validator on a value; its ValidationError becomes this table's PlanError (``key`` None:
        the table's own name)."""
        try:
            validator(value, **kwargs)
        except ValidationError as exc:
            raise self.error(key, " ".join(exc.messages)) from None

    def upsert(
        self, model, lookup: dict, values: dict, ctx: PlanContext, label: str, *, related: Iterable[str] = ()
    ) -> tuple[Any, bool]:
        """:func:`upsert`, with the model's own validation errors reported against this table."""
        try:
            return upsert(model, lookup, values, ctx, label, related=related)
        except ValidationError as exc:
            raise self.error(None, " ".join(exc.messages)) from None

    def raw(self, key: str, default=None):
        return self._get(key, default, False)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            allowed = ", ".join(sorted(self.seen))
            raise self.error(unknown[0], f"unknown key (known keys: {allowed})")


def read_plan(path: str | Path) -> tuple[str, dict]:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return str(path), tomllib.load(fh)
    except FileNotFoundError:
        raise PlanError(f"{path}: no such file") from None
    except OSError as exc:  # a folder, no permission...
        raise PlanError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PlanError(f"{path}: not a text (UTF-8) file; a plan is TOML text") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{path}: not valid TOML: {exc}") from None


def apply_plan(path: str | Path, *, dry_run: bool = False) -> list[str]:
    """Upsert every section of the plan; returns the list of changes (empty when nothing changed)."""
    file, data = read_plan(path)
    unknown = sorted(set(data) - set(_SECTIONS) - _FREE_SECTIONS)
    if unknown:
        known = ", ".join(sorted(set(_SECTIONS) | _FREE_SECTIONS))
        raise PlanError(f"{file}: unknown section [{unknown[0]}] (known sections: {known})")
    ctx = PlanContext(file=file)
    with applying(), transaction.atomic():
        for name, (_order, handler) in sorted(_SECTIONS.items(), key=lambda item: item[1][0]):
            raw = data.get(name, {})
            if not isinstance(raw, dict) or any(not isinstance(v, dict) for v in raw.values()):
                raise PlanError(f"{file}: [{name}] must hold tables like [{name}.NAME]")
            tables = {key: Table(file, name, key, value) for key, value in raw.items()}
            handler(tables, ctx)
        _release_unlisted(ctx)
        if dry_run:
            transaction.set_rollback(True)
    return ctx.changes


def upsert(
    model, lookup: dict, values: dict, ctx: PlanContext, label: str, *, related: Iterable[str] = ()
) -> tuple[Any, bool]:
    """Create or update one row, saving (and reporting) only when something differs; returns (row, created).

    The row is recorded as managed by the plan file: its ``lookup`` and ``values`` fields, and the
    ``related`` ones the section sets itself (a target's locations, a scenario's steps), are the file's
    from now on (see :func:`refuse_managed_changes`).
    """
    obj = model.objects.filter(**lookup).first()
    created = obj is None
    if created:
        obj = model(**lookup, **values)
        obj.full_clean()
        obj.save()
        ctx.changed(f"created {label}")
    else:
        differing = [k for k, v in values.items() if getattr(obj, k) != v]
        if differing:
            for key in differing:
                setattr(obj, key, values[key])
            obj.full_clean()
            obj.save()
            ctx.changed(f"updated {label}: {', '.join(differing)}")
    _record_managed(obj, [*lookup, *values, *related], ctx)
    return obj, created


# --- plan-managed rows: the plan file is their one place of change --------------------------------

# True while applyplan applies a file: the only writer allowed to change plan-managed fields.
_APPLYING: ContextVar[bool] = ContextVar("drportal_applying_plan", default=False)

MANAGED_REFUSAL = "managed by {file}: change it there and run applyplan"


@contextmanager
def applying() -> Iterator[None]:
    """While applyplan applies a file (its one caller besides tests that stand in for a plan change):
    plan-managed fields may change."""
    token = _APPLYING.set(True)
    try:
        yield
    finally:
        _APPLYING.reset(token)


class PlanManagedError(ValidationError):
    """An edit to a field the plan file sets, made anywhere but applyplan. Its message names the file."""


def shown_file(file: str) -> str:
    """The plan file as people know it: relative to the project when it lies inside it (plans/botflow.toml)."""
    from django.conf import settings

    try:
        return str(Path(file).resolve().relative_to(Path(settings.BASE_DIR).resolve()))
    except (ValueError, OSError):
        return file


def _record_managed(obj, fields: list[str], ctx: PlanContext) -> None:
    from django.contrib.contenttypes.models import ContentType
    from django.utils import timezone

    from .models import PlanManaged

    record, _ = PlanManaged.objects.update_or_create(
        content_type=ContentType.objects.get_for_model(type(obj)),
        object_id=obj.pk,
        defaults={"fields": sorted(set(fields)), "file": shown_file(ctx.file), "applied_at": timezone.now()},
    )
    ctx.managed.add(record.pk)


def _release_unlisted(ctx: PlanContext) -> None:
    """Rows the applied file no longer lists are no longer the plan's: people may edit (or delete) them."""
    from .models import PlanManaged

    released = PlanManaged.objects.exclude(pk__in=ctx.managed).delete()[0]
    if released:
        ctx.changed(f"released {released} object(s) the plan file no longer lists: editable in the admin")


def managed_by(obj) -> tuple[str, list[str]] | None:
    """(plan file, managed fields) when ``obj`` is plan-managed; None otherwise (or unsaved)."""
    from django.contrib.contenttypes.models import ContentType

    from .models import PlanManaged

    if obj is None or obj.pk is None or not isinstance(obj.pk, int):
        return None
    row = (
        PlanManaged.objects.filter(content_type=ContentType.objects.get_for_model(type(obj)), object_id=obj.pk)
        .values_list("file", "fields")
        .first()
    )
    return (row[0], list(row[1])) if row else None


def refuse_managed_changes(obj, changed: Iterable[str], managed: tuple[str, list[str]] | None = None) -> None:
    """Raise :class:`PlanManagedError` naming each of ``changed`` that the plan file manages (not while applying)."""
    if _APPLYING.get():
        return
    managed = managed if managed is not None else managed_by(obj)
    if managed is None:
        return
    file, fields = managed
    refused = [name for name in changed if name in fields]
    if refused:
        raise PlanManagedError({name: MANAGED_REFUSAL.format(file=file) for name in refused})


def guard_managed_save(sender, instance, raw: bool = False, **kwargs) -> None:
    """``pre_save`` everywhere: a plan-managed row may not change a managed field outside applyplan.

    Compares the managed fields with the stored row, so a save that changes only the row's own state
    (an objective's exposure, a probe's last result) goes through.
    """
    if raw or _APPLYING.get() or instance.pk is None or sender._meta.label in _NEVER_MANAGED:
        return
    managed = managed_by(instance)
    if managed is None:
        return
    concrete = {f.name: f.attname for f in sender._meta.concrete_fields if f.name in managed[1]}
    stored = sender._default_manager.filter(pk=instance.pk).values(*concrete.values()).first()
    if stored is None:
        return
    changed = [name for name, attname in concrete.items() if getattr(instance, attname) != stored[attname]]
    refuse_managed_changes(instance, changed, managed)


def guard_managed_relations(sender, instance, action: str, reverse: bool, **kwargs) -> None:
    """``m2m_changed`` everywhere: a target's locations or an objective's targets, when the plan sets them."""
    if action not in ("pre_add", "pre_remove", "pre_clear") or reverse or _APPLYING.get():
        return
    for relation in instance._meta.many_to_many:
        if relation.remote_field.through is sender:
            refuse_managed_changes(instance, [relation.name])


# Rows written all the time that no plan section manages: not worth a lookup on every save.
_NEVER_MANAGED = {
    "drportal.Heartbeat",
    "drportal.PlanManaged",
    "drportal.ProbeResult",
    "sessions.Session",
    "django_celery_beat.PeriodicTask",
    "django_celery_beat.PeriodicTasks",
    "django_celery_beat.CrontabSchedule",
}
