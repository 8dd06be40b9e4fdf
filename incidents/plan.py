"""Plan sections owned by the incidents app: [channels.*] (where alerts go)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from drportal.plan import PlanContext, Table, section, upsert

from .models import EVENTS, NotificationChannel


@section("channels", order=40)
def apply_channels(tables: dict[str, Table], ctx: PlanContext) -> None:
    """[channels.NAME]: kind = "email" with to = [...], or kind = "webhook" with url = "${SLACK_WEBHOOK_URL}"."""
    for name, table in tables.items():
        kind = table.str("kind", required=True, choices=["email", "webhook"])
        values = {
            "kind": kind,
            "email_to": ", ".join(table.str_list("to")),
            "webhook_url": table.str("url"),
            "events": table.str_list("events"),
            "enabled": table.bool("enabled", True),
        }
        table.done()
        unknown = set(values["events"]) - {key for key, _ in EVENTS}
        if unknown:
            raise table.error("events", f"unknown event(s) {', '.join(sorted(unknown))}")
        if kind == "webhook" and not values["webhook_url"]:
            # An unset ${VAR:-} leaves the channel configured but off, rather than failing the whole plan.
            values["enabled"] = False
        try:
            upsert(NotificationChannel, {"name": name}, values, ctx, f"channel {name}")
        except ValidationError as exc:
            raise table.error(None, " ".join(exc.messages)) from None
