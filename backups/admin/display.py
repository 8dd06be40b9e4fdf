"""What the job pages share: buttons, progress bars, status badges and columns, verification summaries."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from drportal import humanize
from drportal.admin_base import RecordAdminMixin

from .. import engines
from ..models import BackupRun, Target, Verification


def button_permissions(request) -> dict[str, bool]:
    """Which of the job buttons this person may press (the views they post to check again)."""
    return {
        "backup": request.user.has_perm("backups.run_backup"),
        "verify": request.user.has_perm("backups.verify_backuprun"),
        "restore": request.user.has_perm("backups.restore_backuprun"),
    }


def _relative(when) -> str:
    """ "5 min ago" / "in 2 h", in the portal's one way of writing durations."""
    if when is None:
        return ""
    seconds = (when - timezone.now()).total_seconds()
    return f"in {humanize.duration(seconds)}" if seconds >= 0 else f"{humanize.duration(-seconds)} ago"


def _post_button(url: str, label: str, *, kind: str = "") -> str:
    """A POST button. In a changelist row it sits inside the changelist form (forms cannot nest), so it
    submits that form, CSRF token included, to its own URL; on a change page the template wraps it."""
    extra = format_html(' name="kind" value="{}"', kind) if kind else ""
    return format_html(
        '<button type="submit" class="button row-button" formmethod="post" formaction="{}"{}>{}</button>',
        url,
        extra,
        label,
    )


def job_buttons(target_id: int, stored_run_id: int | None, perms: dict[str, bool], *, to_a_moment: bool = False) -> str:
    """Back up now (the target), Verify and Restore… (a stored run: the newest, on a target's row).

    A target that restores to a moment (pgbackrest) gets "Restore to a moment…" instead of a run's Restore….
    """
    parts = []
    if perms["backup"]:
        parts.append(_post_button(reverse("admin:backups_target_backup", args=[target_id]), "Back up now"))
    if stored_run_id and perms["verify"]:
        url = reverse("admin:backups_backuprun_verify", args=[stored_run_id])
        parts.append(_post_button(url, "Verify", kind=Verification.Kind.INTEGRITY))
    if to_a_moment and perms["restore"]:
        url = reverse("admin:backups_target_restore_moment", args=[target_id])
        parts.append(format_html('<a class="button row-button" href="{}">Restore to a moment…</a>', url))
    elif stored_run_id and perms["restore"]:
        url = reverse("admin:backups_backuprun_restore", args=[stored_run_id])
        parts.append(format_html('<a class="button row-button" href="{}">Restore…</a>', url))
    return format_html('<span class="row-buttons">{}</span>', mark_safe(" ".join(parts))) if parts else "-"


def _to_a_moment(engine_name: str) -> bool:
    engine = engines.find(engine_name)
    return engine is not None and engine.restores_to_a_moment


def target_buttons(target: Target, perms: dict[str, bool]) -> str:
    return job_buttons(target.pk, target.stored_run_id, perms, to_a_moment=_to_a_moment(target.engine))


def target_buttons_column(perms: dict[str, bool]):
    def buttons(obj):
        return target_buttons(obj, perms)

    buttons.short_description = "actions"
    return buttons


def run_buttons_column(perms: dict[str, bool]):
    def buttons(obj):
        stored = obj.pk if obj.status in BackupRun.WITH_ARTIFACT else None
        return job_buttons(obj.target_id, stored, perms, to_a_moment=_to_a_moment(obj.target.engine))

    buttons.short_description = "actions"
    return buttons


def _status_badge(obj) -> str:
    return format_html('<span class="run-status run-status-{}">{}</span>', obj.status, obj.get_status_display())


class ReadOnlyInline(RecordAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False


class StatusColumn:
    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return _status_badge(obj)


class VerificationColumns(StatusColumn):
    @admin.display(description="checks")
    def summary(self, obj):
        return verification_summary(obj)


class TriggerColumn:
    """The "triggered by" column of every job: how it started and who started it."""

    @admin.display(description="triggered by")
    def triggered(self, obj):
        return obj.trigger_description


def restored_tables_html(tables: list[dict]) -> str:
    """A restore's or restore test's per-table row counts: in the backup, and restored."""
    if not tables:
        return "-"
    rows = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", ((t["name"], t["expected"], t["restored"]) for t in tables)
    )
    header = mark_safe("<tr><th>table</th><th>expected</th><th>restored</th></tr>")
    return format_html('<table class="run-tables">{}{}</table>', header, rows)


def verification_summary(obj: Verification) -> str:
    if obj.error:
        return obj.error
    failed = [c for c in obj.checks if c["result"] != "pass"]
    if failed:
        return format_html_join(format_html("<br>"), "{}: {}", ((c["name"], c["message"]) for c in failed))
    if not obj.checks:
        return "-"
    text = f"{len(obj.checks)} checks passed"
    if obj.tables:
        text += f"; {len(obj.tables)} tables restored with matching row counts"
    return text


class JobColumns(StatusColumn):
    """Columns shared by the pages of jobs (backup runs, restores): status, progress, duration."""

    @staticmethod
    def progress_html(obj) -> str:
        raise NotImplementedError

    @admin.display(description="progress")
    def progress(self, obj):
        return self.progress_html(obj)

    @admin.display(description="duration")
    def duration_display(self, obj):
        return humanize.duration(obj.duration)
