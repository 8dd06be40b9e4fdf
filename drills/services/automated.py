"""Drills the portal performs itself: the monthly "Backup Verification" is a real restore test.

For each target under test the newest succeeded backup is restored into a scratch
database and its row counts compared (``backups.services.verify``), in this process:
this runs inside a Celery task already. The restore tests' outcome becomes the
drill's: result, measured RTO (how long the restores took), measured RPO (how old the
restored backup was), after-action notes and an evidence report (JSON and Markdown)
kept in the default storage. A drill that cannot run is still recorded, as failed,
with the reason: failures are data.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.files.base import ContentFile
from django.utils import timezone

from backups import engines
from backups.models import BackupRun, Target, Verification
from backups.services import verify
from drportal import markdown

from ..models import Drill, DrillEvidence, TestActivity
from . import schedule

logger = logging.getLogger(__name__)


# The backups app's monthly schedule restore-tests every target on the 1st, the same morning
# the plan's drill is due: a restore test this recent is the scheduled drill's evidence, rather
# than restoring the same database twice in one morning. People who perform the drill by hand
# always get a fresh one.
REUSE_WITHIN = timedelta(hours=24)


class DrillNotAutomated(Exception):
    pass


@dataclass
class Outcome:
    target: Target
    run: BackupRun | None
    verification: Verification | None
    problem: str = ""
    reused: bool = False

    @property
    def passed(self) -> bool:
        return self.verification is not None and self.verification.ok


def targets_under_test(activity: TestActivity) -> list[Target]:
    if activity.target_id:
        return [activity.target]
    return list(Target.objects.filter(enabled=True, engine__in=engines.names(is_database=True)).order_by("name"))


def recent_restore_test(target: Target, now: datetime) -> Verification | None:
    """The newest restore test of ``target`` queued within REUSE_WITHIN, finished or not."""
    return (
        Verification.objects.filter(
            target=target, kind=Verification.Kind.RESTORE_TEST, queued_at__gte=now - REUSE_WITHIN
        )
        .select_related("run")
        .order_by("-queued_at", "-id")
        .first()
    )


def _reused(verification: Verification) -> Outcome:
    problem = "" if verification.ok else _problem(verification)
    return Outcome(verification.run.target, verification.run, verification, problem, reused=True)


def _problem(verification: Verification) -> str:
    failed = [f"{c['name']}: {c['message']}" for c in verification.checks if c["result"] != "pass"]
    return verification.error or "; ".join(failed) or "restore test failed"


def start_restore_tests(drill: Drill, *, user=None, now: datetime | None = None) -> list[Verification]:
    """The restore tests ``drill`` needs, made *queued* for the caller to send to each target's queue.

    A restore test has to run where the target's data and copies are reachable: on a worker of the
    target's queue, not wherever the drill itself runs. So the drill's task starts them first (one
    per target under test; for the schedule, none for a target restore-tested within REUSE_WITHIN)
    and ``perform`` later uses them. A target without a backup gets none: ``perform`` says so.
    """
    now = now or timezone.now()
    if drill.activity.automation != TestActivity.Automation.RESTORE_TEST or drill.status != Drill.Status.SCHEDULED:
        return []
    trigger = BackupRun.Trigger.MANUAL if user else BackupRun.Trigger.SCHEDULE
    started = []
    for target in targets_under_test(drill.activity):
        if user is None and recent_restore_test(target, now) is not None:
            continue
        run = target.runs.with_artifact().order_by("-started_at", "-id").first()
        if run is not None:
            started.append(
                verify.start_verification(run, kind=Verification.Kind.RESTORE_TEST, trigger=trigger, user=user)
            )
    return started


def _restore_test(target: Target, user, identities, since: datetime | None = None) -> Outcome:
    recent = recent_restore_test(target, timezone.now())
    # The schedule takes any recent one; a person only the one started for this performance (since).
    if recent is not None and (user is None or (since is not None and recent.queued_at >= since)):
        return _reused(recent)
    # A partial run's landed copies are restorable: the drill tests the newest backup with an artifact.
    run = target.runs.with_artifact().order_by("-started_at", "-id").first()
    if run is None:
        return Outcome(target, None, None, f"{target.name} has no succeeded backup to restore")
    if since is not None:
        # Its restore tests were sent to the targets' queues; this process may not reach this one.
        return Outcome(
            target,
            run,
            None,
            f"{target.name}: no restore test was started for this drill (its backup #{run.pk} "
            "landed after the drill began); perform the drill again",
        )
    trigger = BackupRun.Trigger.MANUAL if user else BackupRun.Trigger.SCHEDULE
    verification = verify.start_verification(run, kind=Verification.Kind.RESTORE_TEST, trigger=trigger, user=user)
    verification = verify.verify(verification, identities=identities)
    return Outcome(target, run, verification, "" if verification.ok else _problem(verification))


def perform(
    drill: Drill, *, user=None, identities=None, now: datetime | None = None, since: datetime | None = None
) -> Drill:
    """Run an automated drill now; returns it done (pass, partial or fail), or unchanged if not scheduled
    or still waiting for its restore tests.

    ``since``: when the restore tests for this performance were started (``start_restore_tests``); a
    person's drill then uses those instead of restoring in this process.
    """
    if drill.activity.automation != TestActivity.Automation.RESTORE_TEST:
        raise DrillNotAutomated(f"{drill.activity.name} is performed by people, not by the portal")
    if (user is None or since is not None) and _waiting_for_restore_tests(drill):
        return drill  # still scheduled: its task (or the hourly one) performs it once they finish
    if not drill.start(user):
        drill.refresh_from_db()
        return drill
    started = timezone.now()
    outcomes: list[Outcome] = []
    error = ""
    try:
        targets = targets_under_test(drill.activity)
        if not targets:
            error = "no enabled database target to restore-test"
        for target in targets:
            outcomes.append(_restore_test(target, user, identities, since))
    except Exception as exc:  # recorded on the drill, never lost in a log only
        logger.exception("automated drill %s crashed", drill.pk)
        error = f"unexpected error: {type(exc).__name__}: {exc}"
    finished = timezone.now()
    return _record(drill, outcomes, error, started, finished, user, now)


def _waiting_for_restore_tests(drill: Drill) -> bool:
    """True while a recent restore test of a target under test is still queued or running."""
    now = timezone.now()
    pending = [
        target.name
        for target in targets_under_test(drill.activity)
        if (recent := recent_restore_test(target, now)) is not None and not recent.is_finished
    ]
    if pending:
        logger.info("drill %s waits for the restore test(s) in progress of %s", drill.pk, ", ".join(pending))
    return bool(pending)


def _result(outcomes: list[Outcome], error: str) -> str:
    passed = sum(o.passed for o in outcomes)
    if error or not outcomes or passed == 0:
        return Drill.Result.FAIL
    return Drill.Result.PASS if passed == len(outcomes) else Drill.Result.PARTIAL


def _record(drill, outcomes, error, started, finished, user, now) -> Drill:
    result = _result(outcomes, error)
    durations = [o.verification.duration_seconds for o in outcomes if o.passed and o.verification.duration_seconds]
    ages = [started - o.run.started_at for o in outcomes if o.passed and o.run.started_at]
    rpos = [obj.rpo for o in outcomes for obj in o.target.objectives.filter(enabled=True)]
    well = [
        f"{o.target.name}: backup run #{o.run.pk} restored in {o.verification.duration_seconds:.1f} s; "
        f"{len(o.verification.tables)} table(s), {sum(t.get('restored') or 0 for t in o.verification.tables)} "
        "row(s), every count matching the backup"
        for o in outcomes
        if o.passed
    ]
    badly = [_named(o) for o in outcomes if not o.passed]
    if error:
        badly.insert(0, error)
    # A drill that did not pass says why in its error field (the admin's first line), not only
    # in the after-action notes further down: an empty error next to "fail" reads as "no idea".
    if result != Drill.Result.PASS:
        error = "; ".join(badly) or "no restore test passed"
    report = _report(drill, outcomes, result, error, started, finished)
    linked = next((o.verification for o in outcomes if o.verification and not o.passed), None) or next(
        (o.verification for o in outcomes if o.verification), None
    )
    schedule.complete(
        drill,
        result,
        user=user,
        now=now,
        performed_at=started,
        measured_rto=timedelta(seconds=sum(durations)) if durations else None,
        measured_rpo=max(ages) if ages else None,
        target_rpo=drill.target_rpo or (min(rpos) if rpos else None),
        went_well="\n".join(well),
        went_badly="\n".join(badly),
        recommendations="" if result == Drill.Result.PASS else "Fix the failing restore and run the drill again.",
        error=error,
        verification=linked,
    )
    stamp = f"{started:%Y%m%d-%H%M%S}"
    for name, body, description in (
        (f"restore-test-{stamp}.json", json.dumps(report, indent=2, default=str), "Restore test report (JSON)"),
        (f"restore-test-{stamp}.md", _markdown(report), "Restore test report"),
    ):
        evidence = DrillEvidence(drill=drill, description=description, uploaded_by=user)
        evidence.file.save(name, ContentFile(body.encode()), save=True)
    logger.info("automated drill %s (%s): %s", drill.pk, drill.activity.key, result)
    return drill


def _named(outcome: Outcome) -> str:
    """The outcome's problem, prefixed with its target's name unless the problem already starts with it."""
    if outcome.problem.startswith(f"{outcome.target.name} "):
        return outcome.problem
    return f"{outcome.target.name}: {outcome.problem}"


def _report(drill, outcomes, result, error, started, finished) -> dict:
    return {
        "drill": drill.pk,
        "activity": drill.activity.name,
        "due_at": drill.due_at.isoformat(),
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "result": result,
        "error": error,
        "targets": [
            {
                "target": o.target.name,
                "backup_run": o.run.pk if o.run else None,
                "backup_started_at": o.run.started_at.isoformat() if o.run and o.run.started_at else None,
                "verification": o.verification.pk if o.verification else None,
                "reused": o.reused,
                "status": o.verification.status if o.verification else "not run",
                "duration_seconds": o.verification.duration_seconds if o.verification else None,
                "checks": o.verification.checks if o.verification else [],
                "tables": o.verification.tables if o.verification else [],
                "problem": o.problem,
            }
            for o in outcomes
        ],
    }


def _markdown(report: dict) -> str:
    lines = [
        f"# {report['activity']}: restore test report",
        "",
        f"- Drill: #{report['drill']}, due {report['due_at']}",
        f"- Performed: {report['started_at']} to {report['finished_at']}",
        f"- Result: **{report['result']}**",
    ]
    if report["error"]:
        lines.append(f"- Error: {report['error']}")
    for item in report["targets"]:
        lines += ["", f"## {item['target']}", ""]
        if item["backup_run"] is None:
            lines.append("- Backup run: no backup run")
        else:
            taken = f" taken {item['backup_started_at']}" if item["backup_started_at"] else ""
            lines.append(f"- Backup run: #{item['backup_run']}{taken}")
        reused = " (the schedule's restore test of that morning, reused)" if item["reused"] else ""
        if item["verification"] is None:
            lines.append("- Restore test: not run")
        else:
            lines.append(f"- Restore test: verification #{item['verification']}: {item['status']}{reused}")
        if item["duration_seconds"] is not None:
            lines.append(f"- Restore duration: {item['duration_seconds']:.1f} s")
        if item["problem"]:
            lines.append(f"- Problem: {item['problem']}")
        if item["tables"]:
            lines += [
                "",
                *markdown.table(
                    ["Table", "Rows in backup", "Rows restored"],
                    ((t.get("name"), t.get("expected"), t.get("restored")) for t in item["tables"]),
                    align="lrr",
                ),
            ]
    return "\n".join(lines) + "\n"
