"""The plan sections the backups app owns: [locations.*] and [targets.*]."""

from __future__ import annotations

from django.conf import settings

from drportal.cron import validate_cron, validate_timezone
from drportal.plan import PlanContext, Table, section, upsert
from drportal.validators import validate_name

from . import engines
from .engines.base import redact
from .models import (
    Location,
    Objective,
    PgBackRestStanza,
    Target,
    check_location_url,
    check_source_clear_of_locations,
    validate_queue,
)
from .pipeline import check_level


@section("locations", order=10)
def apply_locations(tables: dict[str, Table], ctx: PlanContext) -> None:
    for name, table in tables.items():
        table.check(None, validate_name, name)
        values = {
            "url": table.str("url", required=True),
            "endpoint_url": table.str("endpoint_url"),
            "region": table.str("region"),
            "storage_class": table.str("storage_class"),
            "retention_days": table.int("retention_days", minimum=1),
            "keep_last": table.int("keep_last", minimum=1),
            "enabled": table.bool("enabled", True),
            "description": table.str("description"),
        }
        table.done()
        existing = Location.objects.filter(name=name).values_list("pk", flat=True).first()
        table.check("url", check_location_url, values["url"], endpoint_url=values["endpoint_url"], exclude_pk=existing)
        if values["url"].startswith("file:") and (values["endpoint_url"] or values["storage_class"]):
            raise table.error("url", "endpoint_url and storage_class only apply to s3:// locations")
        upsert(Location, {"name": name}, values, ctx, f"location {name}")


@section("targets", order=20)
def apply_targets(tables: dict[str, Table], ctx: PlanContext) -> None:
    for name, table in tables.items():
        table.check(None, validate_name, name)
        engine = table.str("engine", required=True, choices=sorted(engines.ENGINES))
        values = {
            "engine": engine,
            "source": table.str("source", required=engines.get(engine).needs_source),
            "endpoint_url": table.str("endpoint_url"),
            "schedule": table.str("schedule"),
            "timezone": table.str("timezone", "UTC"),
            "compression": table.str("compression", settings.BACKUP_COMPRESSION, choices=["zstd", "gzip"]),
            "compression_level": table.int("compression_level"),
            "queue": table.str("queue", settings.CELERY_TASK_DEFAULT_QUEUE),
            "enabled": table.bool("enabled", True),
            "description": table.str("description"),
        }
        location_names = table.str_list("locations", required=True)
        stanza = _pgbackrest_keys(table, engine)
        table.done()
        if values["source"] and redact(values["source"]) != values["source"]:
            raise table.error("source", "holds a password; use env:NAME and set the variable on the workers instead")
        table.check("source", check_source_clear_of_locations, values["source"], engine_name=engine)
        table.check("schedule", validate_cron, values["schedule"])
        table.check("queue", validate_queue, values["queue"])
        table.check("timezone", validate_timezone, values["timezone"])
        if values["compression_level"] is not None:
            try:
                check_level(values["compression"], values["compression_level"])
            except ValueError as exc:
                raise table.error("compression_level", str(exc)) from None
        locations = list(Location.objects.filter(name__in=location_names))
        missing = sorted(set(location_names) - {loc.name for loc in locations})
        if missing:
            raise table.error("locations", f"unknown location(s): {', '.join(missing)}")
        if not locations:
            raise table.error("locations", "needs at least one location")
        target, created = upsert(Target, {"name": name}, values, ctx, f"target {name}", related=["locations"])
        if stanza is not None:
            upsert(PgBackRestStanza, {"target": target}, stanza, ctx, f"pgBackRest settings of target {name}")
        current = set(target.locations.values_list("name", flat=True))
        if current != set(location_names):
            target.locations.set(locations)
            if not created:
                ctx.changed(f"updated target {name}: locations")


# Keys of a pgbackrest target (its stanza); the target's own `schedule` is the full backups'.
PGBACKREST_KEYS = PgBackRestStanza.SETTINGS


def _pgbackrest_keys(table: Table, engine: str) -> dict | None:
    given = [key for key in PGBACKREST_KEYS if key in table.data]
    if engine != "pgbackrest":
        if given:
            raise table.error(given[0], "only applies to targets whose engine is pgbackrest")
        return None
    values = {
        "pg_path": table.str("pg_path", required=True),
        "pg_port": table.int("pg_port", 5432, minimum=1, maximum=65535),
        "pg_socket": table.str("pg_socket"),
        "pg_host": table.str("pg_host"),
        "os_user": table.str("os_user", "postgres"),
        "schedule_diff": table.str("schedule_diff"),
        "schedule_incr": table.str("schedule_incr"),
        "verify_tls": table.bool("verify_tls", True),
    }
    if not values["pg_path"].startswith("/"):
        raise table.error("pg_path", "must be an absolute path to the cluster's data directory")
    for key in ("schedule_diff", "schedule_incr"):
        table.check(key, validate_cron, values[key])
    return values


@section("objectives", order=30)
def apply_objectives(tables: dict[str, Table], ctx: PlanContext) -> None:
    """[objectives.NAME]: rpo = "1h", targets = [...] or ping = true, optional grace."""
    for name, table in tables.items():
        table.check(None, validate_name, name)
        rpo = table.duration("rpo", required=True)
        values = {
            "rpo": rpo,
            "grace": table.duration("grace"),
            "ping": table.bool("ping", False),
            "description": table.str("description"),
            "enabled": table.bool("enabled", True),
        }
        target_names = table.str_list("targets")
        table.done()
        if rpo.total_seconds() <= 0:
            raise table.error("rpo", "must be longer than zero")
        if values["ping"] and target_names:
            raise table.error("targets", "a ping objective is fed by pings, not targets; remove one of the two")
        if not values["ping"] and not target_names:
            raise table.error("targets", "name the targets that meet this objective, or set ping = true")
        targets = list(Target.objects.filter(name__in=target_names))
        missing = sorted(set(target_names) - {t.name for t in targets})
        if missing:
            raise table.error("targets", f"unknown target(s): {', '.join(missing)}")
        objective, created = upsert(Objective, {"name": name}, values, ctx, f"objective {name}", related=["targets"])
        if set(objective.targets.values_list("name", flat=True)) != set(target_names):
            objective.targets.set(targets)
            if not created:
                ctx.changed(f"updated objective {name}: targets")
