"""The post-incident report, rendered to Markdown (the admin download and `manage.py incidentreport`)."""

from __future__ import annotations

from datetime import datetime

from drportal import humanize, markdown

from ..models import Incident
from .measure import measure, target_label


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "-"


def _who(user) -> str:
    if user is None:
        return "system"
    return user.get_full_name() or user.get_username()


def _section(title: str, body: str) -> list[str]:
    return [f"## {title}", "", body.strip() or "_None recorded._", ""]


def filename(incident: Incident) -> str:
    return f"incident-{incident.pk}-report.md"


def render(incident: Incident) -> str:
    """Every section of the report: summary, timeline, checklist, roles, RTO/RPO, jobs, root cause, follow-up."""
    incident = Incident.objects.select_related("severity", "scenario").get(pk=incident.pk)
    m = measure(incident)
    out = [
        f"# Post-incident report: #{incident.pk} {incident.title}",
        "",
        f"- Severity: {incident.severity} (target RTO {target_label(incident.severity.target_rto)})",
        f"- Scenario: {incident.scenario or '-'}",
        f"- Status: {incident.get_status_display()}",
        f"- Customer-facing: {'yes' if incident.customer_facing else 'no'}",
        f"- Impact started: {_when(incident.impact_started_at)}",
        f"- Detected: {_when(incident.detected_at)}",
        f"- Acknowledged: {_when(incident.acknowledged_at)}",
        f"- Recovery verified: {_when(incident.recovered_at)}",
        f"- Resolved: {_when(incident.resolved_at)}",
        f"- Closed: {_when(incident.closed_at)}",
        f"- Report due: {_when(incident.report_due_at)}",
        "",
    ]
    out += _section("Summary", incident.summary)

    if m.rto_running:
        rto = f"{humanize.duration(m.rto)} (clock still running: recovery not verified)"
    else:
        rto = f"{humanize.duration(m.rto)} (stopped at {m.rto_end}, {_when(incident.rto_stopped_at)})"
    lines = [
        *markdown.table(
            ["measure", "measured", "against targets"],
            [
                (
                    "RTO (impact → recovery verified or resolved)",
                    rto,
                    "; ".join(c.text for c in m.rto_comparisons),
                ),
                (
                    "RPO (data-loss window)",
                    m.rpo_text,
                    "; ".join(c.text for c in m.rpo_comparisons) or "no target set",
                ),
            ],
        ),
        "",
        m.loss_statement,
    ]
    if m.rpo_run:
        lines.append(f"\nMeasured from the {m.rpo_source}.")
    if m.per_target:
        lines.append("\nNewest verified copy before impact, per target the scenario protects:\n")
        lines += [
            f"- {p.target}: backup run #{p.run.pk}, started {_when(p.run.started_at)}"
            if p.run
            else f"- {p.target}: none"
            for p in m.per_target
        ]
    if incident.resolved_without_recovery:
        lines.append(f"\nResolved without verified recovery: {markdown.cell(incident.resolved_without_recovery)}")
    out += _section("Recovery time and data loss (RTO / RPO)", "\n".join(lines))

    entries = incident.timeline.select_related("author").order_by("at", "id")
    rows = markdown.table(
        ["time (UTC)", "kind", "entry", "by"],
        (
            (f"{e.at:%Y-%m-%d %H:%M:%S}", f"{e.get_kind_display()}{' 📌' if e.pinned else ''}", e.text, _who(e.author))
            for e in entries
        ),
    )
    out += _section("Timeline", "\n".join(rows))

    rows = markdown.table(
        ["", "item", "done at", "by", "evidence"],
        (
            (
                "[x]" if item.done_at else "[ ]",
                item.text,
                _when(item.done_at),
                _who(item.done_by) if item.done_at else "-",
                item.evidence_display,
            )
            for item in incident.checklist.select_related("done_by")
        ),
    )
    out += _section("Response checklist", "\n".join(rows))

    steps = list(incident.steps.select_related("done_by"))
    if steps:
        rows = markdown.table(
            ["step", "done at", "by"],
            (
                (f"{s.order}. {s.text.splitlines()[0]}", _when(s.done_at), _who(s.done_by) if s.done_at else "-")
                for s in steps
            ),
        )
        out += _section("Runbook steps", "\n".join(rows))

    assignments = incident.role_assignments.select_related("role", "contact", "user").order_by(
        "role__order", "started_at"
    )
    rows = markdown.table(
        ["role", "held by", "from", "until"],
        ((a.role, a.holder, _when(a.started_at), _when(a.ended_at) if a.ended_at else "now") for a in assignments),
    )
    out += _section("Roles", "\n".join(rows))

    jobs = [
        (job, job.run or job.verification or job.restore)
        for job in incident.jobs.select_related("run__target", "verification", "restore")
    ]
    rows = markdown.table(
        ["job", "status", "started", "finished"],
        ((job, obj.status, _when(obj.started_at), _when(obj.finished_at)) for job, obj in jobs),
    )
    out += _section("Linked backups, verifications and restores", "\n".join(rows))

    updates = incident.status_updates.order_by("at")
    out += _section(
        "Status-page updates",
        "\n".join(f"- {_when(u.at)} ({u.get_phase_display()}): {markdown.cell(u.message)}" for u in updates),
    )
    out += _section("Root cause", incident.root_cause)
    out += _section("Follow-up actions", incident.follow_up_actions)
    return "\n".join(out).rstrip() + "\n"
