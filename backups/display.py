"""How a running job shows its progress: the bars on the run and restore pages and on the dashboard.

Plain functions over the models (no admin import), so the portal's dashboard and this app's admin
draw the same bar from the same numbers.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import format_html

from drportal import humanize

from .models import BackupRun, Restore


def _bar(url: str, status: str, percent: int | None, text: str) -> str:
    return format_html(
        '<span class="run-progress" data-url="{}" data-status="{}">'
        '<progress max="100" {}></progress> <span class="run-progress-text">{}</span></span>',
        url,
        status,
        format_html('value="{}"', percent) if percent is not None else "",
        text,
    )


def progress_bar(run: BackupRun) -> str:
    """What a running backup is doing: bytes read while it dumps (against the previous good run's size,
    when there is one), bytes sent to the location it is copying to, or which manifest it is writing."""
    kind, _, where = run.phase.partition(":")
    text = run.status
    if run.status == BackupRun.Status.RUNNING and kind == "copy":
        sent = (run.copied or {}).get(where, 0)
        percent = min(99, int(100 * sent / run.bytes_out)) if run.bytes_out else None
        text = f"copying to {where}: {humanize.size(sent)} of {humanize.size(run.bytes_out)} sent"
    elif run.status == BackupRun.Status.RUNNING and kind == "manifest":
        percent, text = 99, f"writing the manifest in {where}"
    elif run.status == BackupRun.Status.RUNNING:
        expected = (
            BackupRun.objects.with_artifact()
            .filter(target_id=run.target_id)
            .order_by("-queued_at")
            .values_list("bytes_in", flat=True)
            .first()
        )
        percent = min(99, int(100 * run.bytes_in / expected)) if expected else None
        text = f"dumping: {humanize.size(run.bytes_in)} read"
    elif run.status in BackupRun.WITH_ARTIFACT:
        percent = 100
    elif run.status == BackupRun.Status.QUEUED:
        percent, text = None, f"{humanize.size(run.bytes_in)} read"
    else:
        percent = 0
    return _bar(reverse("admin:backups_backuprun_progress", args=[run.pk]), run.status, percent, text)


def restore_progress_bar(record: Restore) -> str:
    if record.status == Restore.Status.RUNNING and record.bytes_total:
        percent = min(99, int(100 * record.bytes_done / record.bytes_total))
    elif record.status == Restore.Status.SUCCEEDED:
        percent = 100
    else:
        percent = None if record.status in (Restore.Status.QUEUED, Restore.Status.RUNNING) else 0
    text = (
        f"{humanize.size(record.bytes_done)} of {humanize.size(record.bytes_total)}"
        if record.status == Restore.Status.RUNNING
        else record.status
    )
    return _bar(reverse("admin:backups_restore_progress", args=[record.pk]), record.status, percent, text)
