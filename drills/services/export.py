"""The living DR plan, rendered from the database as Markdown (``manage.py exportplan``).

Everything comes from the portal's own rows, with live figures where the portal has them:
each RPO objective's state right now and its newest good backup, each test's last result and
next due date. Reading only: nothing is evaluated into the database or sent.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Prefetch
from django.utils import timezone

from alerts.models import Channel
from backups.models import BackupRun, Location, Objective, Target, Verification
from backups.services import rpo
from backups.services.rpo import objective_label
from drportal.humanize import duration_words, size
from drportal.markdown import table
from incidents import runbook
from incidents.models import (
    ChecklistItemTemplate,
    Contact,
    ResponseRole,
    Scenario,
    ScenarioStep,
    ServiceProvider,
    Severity,
    StatusComponent,
)

from ..cadence import Cadence, step_label
from ..models import Drill, PlanDocument, TestActivity


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"


def render(document_key: str | None = None, now: datetime | None = None) -> str:
    now = now or timezone.now()
    documents = PlanDocument.objects.all()
    document = documents.filter(key=document_key).first() if document_key else documents.first()
    out: list[str] = []
    out += _header(document)
    out += _overview(document)
    out += _objectives(now)
    out += _backup_strategy(now)
    out += _scenarios()
    out += _incident_response()
    out += _communication()
    out += _testing_schedule(now)
    out += _contacts()
    out += _change_log(document)
    out += _next_review(document, now)
    out += ["", f"_Exported from DR Portal on {now:%Y-%m-%d %H:%M} UTC._", ""]
    return "\n".join(out)


def _header(document: PlanDocument | None) -> list[str]:
    if document is None:
        return ["# Disaster Recovery Plan", "", "_No plan document is defined ([document.*] in the plan file)._"]
    return [
        f"# {document.title}",
        "",
        f"**Version:** {document.version}",
        f"**Last Updated:** {document.last_reviewed_at or '-'}",
        f"**Owner:** {document.owner}",
        f"**Review Schedule:** {document.get_review_cadence_display().capitalize()}",
        f"**Status:** {document.get_status_display()}",
    ]


def _overview(document: PlanDocument | None) -> list[str]:
    out = ["", "## Overview", ""]
    out.append(document.overview if document and document.overview else "_No overview recorded._")
    return out


def _objectives(now: datetime) -> list[str]:
    out = ["", "## Recovery Objectives", "", "### RTO (Recovery Time Objective)", ""]
    out += table(
        ["Severity", "Target RTO", "Description"],
        ((f"**{s.name}** ({s.key})", duration_words(s.target_rto), s.description) for s in Severity.objects.all()),
    )
    out += ["", "### RPO (Recovery Point Objective)", ""]
    rows = []
    objectives = Objective.objects.filter(enabled=True).prefetch_related("targets")
    for objective in objectives:
        exposure = rpo.exposure_of(objective, now)
        seconds = exposure.exposure.total_seconds() if exposure.exposure is not None else None
        # The dashboard's words for the same state (one function): never "UNKNOWN" here and "Breached" there.
        _, state = objective_label(objective, objective.state_for(exposure.exposure, now), seconds, now)
        if objective.ping:
            frequency, newest = "pinged from outside", _when(exposure.last_good_at)
        else:
            targets = list(objective.targets.all())
            frequency = ", ".join(f"{t.name}: {t.schedule or 'not scheduled'}" for t in targets)
            newest = _newest_good_backup(targets)
        exposure_text = duration_words(exposure.exposure) if exposure.exposure is not None else "no good copy"
        rows.append(
            (
                f"**{objective.name}**",
                objective.description,
                duration_words(objective.rpo),
                frequency,
                f"{state} (data at risk now: {exposure_text})",
                newest,
            )
        )
    out += table(
        ["Data Type", "Description", "Target RPO", "Backup Frequency", "Live State", "Newest Good Backup"], rows
    )
    return out


def _newest_good_backup(targets: list[Target]) -> str:
    parts = []
    for target in targets:
        run = (
            BackupRun.objects.filter(
                # A verified partial run (a location failed, its landed copies checked) is a good backup too.
                target=target,
                status__in=BackupRun.WITH_ARTIFACT,
                verifications__status=Verification.Status.PASSED,
            )
            .order_by("-started_at")
            .first()
        )
        if run is None:
            parts.append(f"{target.name}: none verified")
        else:
            parts.append(f"{target.name}: run #{run.pk} at {_when(run.started_at)} ({size(run.bytes_out)})")
    return "; ".join(parts) or "-"


def _backup_strategy(now: datetime) -> list[str]:
    out = ["", "## Backup Strategy", "", "### What's Backed Up", ""]
    targets = Target.objects.prefetch_related("locations")
    out += table(
        ["Target", "Engine", "Description", "Schedule (cron)", "Locations", "Enabled"],
        (
            (
                t.name,
                t.engine,
                t.description,
                f"{t.schedule} {t.timezone}" if t.schedule else "not scheduled",
                ", ".join(loc.name for loc in t.locations.all()),
                "yes" if t.enabled else "no",
            )
            for t in targets
        ),
    )
    out += ["", "### Backup Locations and Retention", ""]
    out += table(
        ["Location", "URL", "Storage Class", "Retention", "Keep At Least"],
        (
            (
                loc.name,
                loc.url,
                loc.storage_class or ("STANDARD" if loc.kind == "s3" else "-"),
                f"{loc.retention_days} days" if loc.retention_days else "forever",
                f"{loc.keep_last} newest" if loc.keep_last else "-",
            )
            for loc in Location.objects.all()
        ),
    )
    out += ["", "### Backup Verification", ""]
    out.append("- Every backup: checksum, decryption, decompression and manifest of each copy (integrity check)")
    out.append("- Monthly: restoration test into a scratch database, with row counts compared")
    latest = Verification.objects.filter(kind=Verification.Kind.RESTORE_TEST).select_related("run__target").first()
    if latest:
        out.append(
            f"- Last restore test: {latest.status} ({latest.run.target.name} run #{latest.run_id}, "
            f"{_when(latest.finished_at or latest.queued_at)}"
            + (f", {latest.duration_seconds:.1f} s" if latest.duration_seconds is not None else "")
            + ")"
        )
    else:
        out.append("- Last restore test: none yet")
    return out


def _scenarios() -> list[str]:
    out = ["", "## Recovery Procedures"]
    steps = Prefetch("steps", queryset=ScenarioStep.objects.order_by("order"))
    scenarios = Scenario.objects.select_related("severity").prefetch_related(steps, "targets__locations")
    for scenario in scenarios:
        out += ["", f"### {scenario}", ""]
        out.append(f"**Severity:** {scenario.severity.name} ({scenario.severity.key})")
        out.append(f"**Target RTO:** {duration_words(scenario.target_rto, 'immediate')}")
        if scenario.target_rpo is not None:
            out.append(f"**Target RPO:** {duration_words(scenario.target_rpo)}")
        if scenario.impact:
            out.append(f"**Impact:** {scenario.impact}")
        targets = sorted(scenario.targets.all(), key=lambda t: t.name)
        if targets:
            places = {t.pk: ", ".join(sorted(loc.name for loc in t.locations.all())) or "no location" for t in targets}
            at_risk = "; ".join(f"{t.name} ({t.engine}; copies in {places[t.pk]})" for t in targets)
            out.append(f"**Data at risk (backed up by the portal):** {at_risk}")
        if scenario.description:
            out += ["", scenario.description]
        out += ["", "#### Steps:", ""]
        for step in scenario.steps.all():
            first, *rest = step.text.splitlines() or [""]
            out.append(f"{step.order}. **{first}**")
            out += [f"   {line}" for line in rest]
            command = runbook.render(step.command, scenario.targets.all())
            if command:
                out += ["   ```bash", *[f"   {line}" for line in command.splitlines()], "   ```"]
        if scenario.estimated_recovery:
            out += ["", f"**Estimated Recovery Time:** {scenario.estimated_recovery}"]
    if not Scenario.objects.exists():
        out += ["", "_No scenarios defined._"]
    return out


def _incident_response() -> list[str]:
    out = ["", "## Incident Response", "", "### Incident Severity Levels", ""]
    out += table(
        ["Level", "Description", "Response Time", "Target RTO", "Examples"],
        (
            (
                f"**{s.key} - {s.name}**",
                s.description,
                s.response_time_display,
                duration_words(s.target_rto),
                s.examples,
            )
            for s in Severity.objects.all()
        ),
    )
    out += ["", "### Incident Response Team", ""]
    holders: dict[int, list[str]] = {}
    for contact in Contact.objects.filter(default_role__isnull=False):
        holders.setdefault(contact.default_role_id, []).append(
            " / ".join(p for p in (contact.name, contact.phone) if p)
        )
    out += table(
        ["Role", "Responsibilities", "Contact"],
        ((f"**{r.name}**", r.responsibilities, "; ".join(holders.get(r.pk, []))) for r in ResponseRole.objects.all()),
    )
    items = list(ChecklistItemTemplate.objects.all())
    if items:
        out += ["", "### Incident Response Checklist", ""]
        out += [f"- [ ] {item.text}" for item in items]
    return out


def _communication() -> list[str]:
    out = ["", "### Communication Protocol", ""]
    for channel in Channel.objects.all():
        target = ", ".join(channel.recipients) if channel.kind == "email" else "Slack-compatible webhook"
        events = ", ".join(channel.events) if channel.events else "every alert"
        state = "" if channel.enabled else " (disabled)"
        out.append(f"- **{channel.name}** ({channel.get_kind_display()}{state}): {target}; {events}")
    stakeholders = [c for c in Contact.objects.filter(stakeholder=True) if c.email]
    if stakeholders:
        out.append("- **Stakeholders** (status updates by email): " + ", ".join(c.email for c in stakeholders))
    components = list(StatusComponent.objects.all())
    if components:
        out.append(
            "- **Status page** components: " + ", ".join(f"{c.name} ({c.get_state_display()})" for c in components)
        )
    reports = sorted({duration_words(s.report_due) for s in Severity.objects.all()})
    if reports:
        out.append(f"- **Post-incident:** full incident report within {' / '.join(reports)} of resolution")
    if len(out) == 3:
        out.append("_No channels defined._")
    return out


def _testing_schedule(now: datetime) -> list[str]:
    out = ["", "## Testing Schedule"]
    activities = list(TestActivity.objects.filter(enabled=True).select_related("scenario"))
    last_done = {}
    for drill in Drill.objects.filter(status=Drill.Status.DONE).order_by("activity_id", "-performed_at"):
        last_done.setdefault(drill.activity_id, drill)
    next_due = {}
    for drill in Drill.objects.filter(status__in=Drill.OPEN_STATUSES).order_by("activity_id", "due_at"):
        next_due.setdefault(drill.activity_id, drill)
    titles = {
        Cadence.MONTHLY: "Monthly Tests",
        Cadence.QUARTERLY: "Quarterly Tests",
        Cadence.ANNUAL: "Annual Tests",
        Cadence.CRON: "Other Scheduled Tests",
    }
    # A plan document's review is scheduled by the document itself (its cadence, sign-off and next
    # review date), so it is listed from there: the same date as "Next Review Date", never a second one.
    documents = list(PlanDocument.objects.exclude(status=PlanDocument.Status.RETIRED))
    for cadence, title in titles.items():
        group = [a for a in activities if a.cadence == cadence]
        reviews = [d for d in documents if d.review_cadence == cadence]
        if not group and not reviews:
            continue
        out += ["", f"### {title}", ""]
        rows = [_review_row(document, now) for document in reviews]
        for activity in group:
            last, upcoming = last_done.get(activity.pk), next_due.get(activity.pk)
            last_text = "never performed"
            if last:
                last_text = f"{last.get_result_display()} on {last.performed_at:%Y-%m-%d}"
                if last.measured_rto is not None:
                    last_text += f" (RTO {duration_words(last.measured_rto)})"
            next_text = "-"
            if upcoming:
                next_text = f"{upcoming.due_at:%Y-%m-%d}"
                if upcoming.is_overdue(now):
                    next_text += " **OVERDUE**"
            rows.append(
                (
                    f"**{activity.name}**",
                    activity.description,
                    activity.cadence_display,
                    "the portal (restore test)" if activity.automated else "team",
                    str(activity.scenario) if activity.scenario_id else "-",
                    last_text,
                    next_text,
                )
            )
        out += table(["Test", "What", "Cadence", "Performed By", "Scenario", "Last Result", "Next Due"], rows)
    if not activities and not documents:
        out += ["", "_No tests defined._"]
    return out


def _review_row(document: PlanDocument, now: datetime) -> tuple:
    last = f"reviewed on {document.last_reviewed_at}" if document.last_reviewed_at else "never reviewed"
    return (
        f"**Review: {document.title}**",
        "Review this plan and sign the review off in the portal (Plan reviews).",
        document.get_review_cadence_display().capitalize(),
        document.owner,
        "-",
        last,
        _next_review_text(document, now),
    )


def _next_review_text(document: PlanDocument, now: datetime) -> str:
    if document.next_review_at is None:
        return "not scheduled"
    text = str(document.next_review_at)
    if document.is_review_overdue(timezone.localdate(now)):
        text += " **OVERDUE**"
    return text


def _contacts() -> list[str]:
    out = ["", "## Contact Information", "", "### Emergency Contacts", ""]
    out += table(
        ["Name", "Role", "Phone", "Email"],
        (
            (c.name, c.title or (c.default_role.name if c.default_role_id else ""), c.phone, c.email)
            for c in Contact.objects.select_related("default_role")
        ),
    )
    out += ["", "### Service Providers", ""]
    out += table(
        ["Provider", "Service", "Support URL", "Phone"],
        ((p.name, p.service, p.support_url, p.contact) for p in ServiceProvider.objects.all()),
    )
    return out


def _change_log(document: PlanDocument | None) -> list[str]:
    out = ["", "## Document Change Log", ""]
    entries = document.change_log.all() if document else []
    out += table(["Date", "Version", "Changes", "Author"], ((e.date, e.version, e.changes, e.author) for e in entries))
    return out


def _next_review(document: PlanDocument | None, now: datetime) -> list[str]:
    out = ["", "## Next Review Date", ""]
    if document is None or document.next_review_at is None:
        out.append("**Scheduled Review:** not scheduled")
        return out
    text = f"**Scheduled Review:** {document.next_review_at} ({step_label(document.review_cadence)})"
    if document.is_review_overdue(timezone.localdate(now)):
        text += " **OVERDUE**"
    out.append(text)
    return out
