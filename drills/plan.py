"""Plan sections owned by the drills app: [tests.*] (the testing schedule) and [document.*] (the plan itself).

[tests.KEY]: name, cadence (monthly, quarterly, annual or cron), cron (for a cron cadence), start (the first
occurrence: a TOML date or date-time, UTC), description, scenario (a scenario's key), automated (the portal
performs it: a restore test), target (which target it restore-tests; default every enabled database target),
enabled. The tables' order in the file is the order of the schedule.

[document.KEY]: title, version, owner, overview, review_cadence, last_reviewed (a date), next_review (a date;
default last_reviewed plus the cadence), status, change_log = [{date, version, changes, author}, ...].
Reviews signed off in the portal move a document forward; applying an older plan file never moves it back
(the version, review dates and the change log only go forward), so applying the same file twice changes nothing.
"""

from __future__ import annotations

from backups.models import Target
from drportal.plan import PlanContext, Table, section
from drportal.validators import validate_name
from incidents.models import Scenario

from .cadence import Cadence
from .models import ChangeLogEntry, PlanDocument, TestActivity, version_key


@section("tests", order=80)
def apply_tests(tables: dict[str, Table], ctx: PlanContext) -> None:
    for position, (key, table) in enumerate(tables.items(), start=1):
        table.check(None, validate_name, key)
        cadence = table.str("cadence", required=True, choices=Cadence.values)
        cron = table.str("cron")
        starts_at = table.moment("start", required=True)
        scenario_key = table.str("scenario")
        automated = table.bool("automated", False)
        target_name = table.str("target")
        values = {
            "name": table.str("name", required=True),
            "cadence": cadence,
            "cron": cron,
            "starts_at": starts_at,
            "description": table.str("description"),
            "automation": TestActivity.Automation.RESTORE_TEST if automated else "",
            "enabled": table.bool("enabled", True),
            "order": table.int("order", position, minimum=0),
        }
        table.done()
        if cadence == Cadence.CRON and not cron:
            raise table.error("cron", "a cron cadence needs a cron expression, e.g. '0 9 * * 1'")
        if cron and cadence != Cadence.CRON:
            raise table.error("cron", f'only applies to cadence = "cron" (this test is {cadence})')
        values["scenario"] = None
        if scenario_key:
            values["scenario"] = Scenario.objects.filter(key=scenario_key).first()
            if values["scenario"] is None:
                raise table.error("scenario", f"no scenario {scenario_key!r} (define it under [scenarios.*])")
        values["target"] = None
        if target_name:
            if not automated:
                raise table.error("target", "only an automated test restore-tests a target; set automated = true")
            values["target"] = Target.objects.filter(name=target_name).first()
            if values["target"] is None:
                raise table.error("target", f"unknown target {target_name!r}")
        table.upsert(TestActivity, {"key": key}, values, ctx, f"test {key}")


@section("document", order=90)
def apply_documents(tables: dict[str, Table], ctx: PlanContext) -> None:
    for key, table in tables.items():
        table.check(None, validate_name, key)
        version = table.str("version", "1.0")
        last_reviewed = table.date("last_reviewed")
        next_review = table.date("next_review")
        values = {
            "title": table.str("title", required=True),
            "owner": table.str("owner", required=True),
            "overview": (table.str("overview") or "").strip(),
            "review_cadence": table.str(
                "review_cadence", Cadence.QUARTERLY, choices=[Cadence.MONTHLY, Cadence.QUARTERLY, Cadence.ANNUAL]
            ),
            "status": table.str("status", PlanDocument.Status.ACTIVE, choices=PlanDocument.Status.values),
        }
        change_log = _change_log(table)
        table.done()
        if not version_key(version):
            raise table.error("version", f"must be numbers separated by dots, like 1.0, got {version!r}")
        document = PlanDocument.objects.filter(key=key).first()
        # Only forward: a review signed off in the portal may have moved the document past this file.
        if document is None or version_key(version) > version_key(document.version):
            values["version"] = version
        if last_reviewed and (
            document is None or not document.last_reviewed_at or last_reviewed > document.last_reviewed_at
        ):
            values["last_reviewed_at"] = last_reviewed
            probe = PlanDocument(review_cadence=values["review_cadence"])
            values["next_review_at"] = next_review or probe.next_review_after(last_reviewed)
        document, _ = table.upsert(PlanDocument, {"key": key}, values, ctx, f"document {key}")
        existing = set(document.change_log.values_list("version", flat=True))
        for entry in change_log:
            if entry["version"] not in existing:
                ChangeLogEntry.objects.create(document=document, **entry)
                ctx.changed(f"added change-log entry {entry['version']} to document {key}")


def _change_log(table: Table) -> list[dict]:
    entries = []
    for entry in table.tables("change_log", item="entry", fields="date, version, changes and author"):
        entries.append(
            {
                "date": entry.date("date", required=True),
                "version": entry.str("version", required=True),
                "changes": entry.str("changes", required=True),
                "author": entry.str("author", required=True),
            }
        )
        entry.done()
    return entries
