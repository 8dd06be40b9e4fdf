"""The [health_checks.*] plan section: URLs the portal probes (the plan's "Health Check URLs")."""

from __future__ import annotations

from datetime import timedelta

from drportal.plan import PlanContext, Table, section, upsert


@section("health_checks", order=60)
def apply_health_checks(tables: dict[str, Table], ctx: PlanContext) -> None:
    from drportal.models import MAX_FAILURES_BEFORE_DOWN, Probe
    from incidents.models import StatusComponent

    for name, table in tables.items():
        values = {
            "url": table.str("url", required=True),
            "expected_status": table.int("expected_status", 200, minimum=100),
            "json_field": table.str("json_field"),
            "interval": table.duration("interval", "1m"),
            "timeout": table.duration("timeout", "10s"),
            "failures_before_down": table.int("failures_before_down", 2, minimum=1, maximum=MAX_FAILURES_BEFORE_DOWN),
            "enabled": table.bool("enabled", True),
        }
        component_name = table.str("component")
        table.done()
        if not values["url"].startswith(("http://", "https://")):
            raise table.error("url", "must be an http:// or https:// URL")
        if values["interval"] < timedelta(seconds=5):
            raise table.error("interval", "must be at least 5s")
        if values["timeout"] <= timedelta(0) or values["timeout"] > values["interval"]:
            raise table.error("timeout", "must be positive and no longer than the interval")
        component = None
        if component_name:
            component = StatusComponent.objects.filter(name=component_name).first()
            if component is None:
                raise table.error("component", f"unknown status component {component_name!r}")
        upsert(Probe, {"name": name}, {**values, "component": component}, ctx, f"health check {name}")
