"""Plan sections owned by the incidents app: [channels.*] (where alerts go) and incident response:
[severities.*], [scenarios.*], [checklist.*], [roles.*], [contacts.*], [providers.*], [components.*]."""

from __future__ import annotations

from datetime import timedelta

from alerts import events
from alerts.models import Channel
from drportal.plan import PlanContext, Table, section

from . import runbook
from .models import (
    PUBLIC_IMPACTS,
    ChecklistItemTemplate,
    Contact,
    ResponseRole,
    Scenario,
    ScenarioStep,
    ServiceProvider,
    Severity,
    StatusComponent,
)


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
        unknown = events.unknown(values["events"])
        if unknown:
            raise table.error("events", f"unknown event(s) {', '.join(unknown)}")
        if kind == "webhook" and not values["webhook_url"]:
            # An unset ${VAR:-} leaves the channel configured but off, rather than failing the whole plan.
            values["enabled"] = False
        table.upsert(Channel, {"name": name}, values, ctx, f"channel {name}")


# --- Incident response: severities, scenarios (runbooks), checklist, roles, contacts ------------------


@section("severities", order=41)
def apply_severities(tables: dict[str, Table], ctx: PlanContext) -> None:
    """[severities.P1]: name, description, examples, response_time ("immediate" or "1h"), target_rto, report_due,
    color, order, public_impact (the status page's banner while such an incident is open: major, partial, degraded)."""
    for key, table in tables.items():
        target_rto = table.duration("target_rto", immediate=True, required=True)
        values = {
            "name": table.str("name", required=True),
            "description": table.str("description"),
            "examples": table.str("examples"),
            "response_time": table.duration("response_time", immediate=True),
            "target_rto": target_rto or timedelta(0),
            "report_due": table.duration("report_due", "24h"),
            "color": table.str("color", "#7a7a7a"),
            "order": table.int("order", 0, minimum=0),
            "public_impact": table.str("public_impact", "major", choices=[k for k, _ in PUBLIC_IMPACTS]),
        }
        table.done()
        table.upsert(Severity, {"key": key}, values, ctx, f"severity {key}")


def _steps(table: Table) -> list[dict]:
    steps = []
    for number, step in enumerate(table.tables("steps", item="step", fields="text, command and expected"), start=1):
        command = (step.str("command") or "").strip()
        unknown = runbook.unknown_placeholders(command)
        if unknown:
            known = ", ".join("{" + name + "}" for name in runbook.PLACEHOLDERS)
            raise step.error("command", f"unknown placeholder(s) {', '.join(unknown)} (known: {known})")
        steps.append(
            {
                "order": number,
                "text": step.str("text", required=True).strip(),
                "command": command,
                "expected_duration": step.duration("expected"),
            }
        )
        step.done()
    return steps


@section("scenarios", order=42)
def apply_scenarios(tables: dict[str, Table], ctx: PlanContext) -> None:
    """[scenarios.KEY]: number, title, severity, target_rto, target_rpo, impact, description, targets, steps = [...].

    ``targets`` names the backed-up data the scenario puts at risk: incidents measure their
    data-loss window from the newest verified copy of those targets.
    """
    from backups.models import Target

    for key, table in tables.items():
        severity_key = table.str("severity", required=True)
        severity = Severity.objects.filter(key=severity_key).first()
        if severity is None:
            raise table.error("severity", f"no severity {severity_key!r} (define it under [severities.{severity_key}])")
        values = {
            "number": table.int("number", 0, minimum=0),
            "title": table.str("title", required=True),
            "severity": severity,
            "target_rto": table.duration("target_rto", immediate=True),
            "target_rpo": table.duration("target_rpo", immediate=True),
            "impact": table.str("impact"),
            "description": table.str("description"),
            "estimated_recovery": table.str("estimated_recovery"),
        }
        target_names = table.str_list("targets")
        steps = _steps(table)
        table.done()
        targets = list(Target.objects.filter(name__in=target_names))
        missing = sorted(set(target_names) - {t.name for t in targets})
        if missing:
            raise table.error("targets", f"unknown target(s): {', '.join(missing)} (define them under [targets.*])")
        scenario, created = table.upsert(
            Scenario, {"key": key}, values, ctx, f"scenario {key}", related=["targets", "steps"]
        )
        if set(scenario.targets.values_list("name", flat=True)) != set(target_names):
            scenario.targets.set(targets)
            if not created:
                ctx.changed(f"updated scenario {key}: targets")
        current = list(scenario.steps.values("order", "text", "command", "expected_duration"))
        if current != steps:
            # Replaced only when they differ, so a second apply changes nothing. Open incidents
            # keep their own copies of the steps, so this never rewrites an incident's history.
            scenario.steps.all().delete()
            ScenarioStep.objects.bulk_create(ScenarioStep(scenario=scenario, **step) for step in steps)
            ctx.changed(f"{'set' if not current else 'replaced'} {len(steps)} steps of scenario {key}")


@section("checklist", order=43)
def apply_checklist(tables: dict[str, Table], ctx: PlanContext) -> None:
    """[checklist.KEY]: text, order, requires_evidence (the incident response checklist)."""
    for key, table in tables.items():
        values = {
            "text": table.str("text", required=True),
            "order": table.int("order", 0, minimum=0),
            "requires_evidence": table.bool("requires_evidence", False),
        }
        table.done()
        table.upsert(ChecklistItemTemplate, {"key": key}, values, ctx, f"checklist item {key}")


@section("roles", order=44)
def apply_roles(tables: dict[str, Table], ctx: PlanContext) -> None:
    """[roles.SLUG]: name, responsibilities, order (the incident response team)."""
    for slug, table in tables.items():
        name = table.str("name", required=True)
        values = {"responsibilities": table.str("responsibilities"), "order": table.int("order", 0, minimum=0)}
        table.done()
        table.upsert(ResponseRole, {"name": name}, values, ctx, f"role {slug}")


@section("contacts", order=45)
def apply_contacts(tables: dict[str, Table], ctx: PlanContext) -> None:
    """[contacts.KEY]: name, title, phone, email, role (a role's name), stakeholder."""
    for key, table in tables.items():
        role_name = table.str("role")
        role = None
        if role_name:
            role = ResponseRole.objects.filter(name=role_name).first()
            if role is None:
                raise table.error("role", f"no role named {role_name!r} (define it under [roles.*])")
        values = {
            "name": table.str("name", required=True),
            "title": table.str("title"),
            "phone": table.str("phone"),
            "email": table.str("email"),
            "default_role": role,
            "stakeholder": table.bool("stakeholder", False),
            "notes": table.str("notes"),
        }
        table.done()
        table.upsert(Contact, {"key": key}, values, ctx, f"contact {key}")


@section("providers", order=46)
def apply_providers(tables: dict[str, Table], ctx: PlanContext) -> None:
    """[providers.KEY]: name, service, support_url, contact, status_url."""
    for key, table in tables.items():
        name = table.str("name", required=True)
        values = {
            "service": table.str("service", required=True),
            "support_url": table.str("support_url"),
            "contact": table.str("contact"),
            "status_url": table.str("status_url"),
        }
        table.done()
        table.upsert(ServiceProvider, {"name": name}, values, ctx, f"provider {key}")


@section("components", order=47)
def apply_components(tables: dict[str, Table], ctx: PlanContext) -> None:
    """[components.KEY]: name, description, order (status-page components; their state is not in the plan)."""
    for key, table in tables.items():
        name = table.str("name", required=True)
        values = {"description": table.str("description"), "order": table.int("order", 0, minimum=0)}
        table.done()
        table.upsert(StatusComponent, {"name": name}, values, ctx, f"status component {key}")
