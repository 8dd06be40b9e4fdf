"""How a running job shows its progress: the bars on the run and restore pages and on the dashboard.

Plain functions over the models (no admin import), so the portal's dashboard and this app's admin
draw the same bar from the same numbers.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html

from drportal import humanize

from .models import BackupRun, Progress, Restore
from .services import queues


def _bar(url: str, status: str, percent: int | None, text: str) -> str:
    return format_html(
        '<span class="run-progress" data-url="{}" data-status="{}">'
        '<progress max="100" {}></progress> <span class="run-progress-text">{}</span></span>',
        url,
        status,
        format_html('value="{}"', percent) if percent is not None else "",
        text,
    )


def progress_text(run: BackupRun, estimate: Progress) -> str:
    """The bar's words: what the run does now, how far it is, and (when it can be told) how long is left."""
    if run.status == BackupRun.Status.QUEUED:
        # Never "N bytes read": a queued run has read nothing; it waits for a worker of its queue.
        return f"queued: waiting for a worker of queue {run.queue or run.target.queue}"
    if run.status != BackupRun.Status.RUNNING:
        return run.get_status_display()
    if estimate.phase == "manifest":
        return f"writing the manifest in {estimate.where}"
    if estimate.phase == "copy":
        text = f"copying to {estimate.where}: {humanize.size(estimate.done)} of {humanize.size(estimate.total)} sent"
    elif estimate.total:
        text = f"dumping: {humanize.size(estimate.done)} of about {humanize.size(estimate.total)} read"
    else:
        text = f"dumping: {humanize.size(estimate.done)} read (no earlier backup to compare its size with)"
    if estimate.percent is not None:
        text += f", {estimate.percent}%"
    if estimate.rate:
        text += f", {humanize.size(round(estimate.rate))}/s"
    if estimate.seconds_left is not None:
        text += f", about {humanize.duration(estimate.seconds_left)} left"
    return text


def run_estimate(run: BackupRun) -> Progress:
    """The run's estimate, the dump measured against the previous stored run's size (one query, while it dumps)."""
    dumping = run.status == BackupRun.Status.RUNNING and run.phase.partition(":")[0] not in ("copy", "manifest")
    return run.estimate(run.expected_bytes_in() if dumping else None)


def progress_bar(run: BackupRun, estimate: Progress | None = None) -> str:
    """What a running backup is doing: bytes read while it dumps (against the previous good run's size,
    when there is one), bytes sent to the location it is copying to, or which manifest it is writing;
    with its percentage and time left."""
    estimate = estimate or run_estimate(run)
    url = reverse("admin:backups_backuprun_progress", args=[run.pk])
    return _bar(url, run.status, estimate.percent, progress_text(run, estimate))


def status_badge(run: BackupRun) -> str:
    """The run's status badge; the progress poller swaps it (``data-url``) when the status changes."""
    return format_html(
        '<span class="run-status run-status-{}" data-url="{}">{}</span>',
        run.status,
        reverse("admin:backups_backuprun_progress", args=[run.pk]),
        run.get_status_display(),
    )


def progress_data(run: BackupRun) -> dict:
    """The run page's live parts, for its poller: status, numbers, the bar and badge, and the fields that change."""
    estimate = run_estimate(run)
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "finished": run.is_finished,
        "phase": run.phase,
        "bytes_in": run.bytes_in,
        "bytes_out": run.bytes_out,
        "copied": run.copied,
        "percent": estimate.percent,
        "seconds_left": estimate.seconds_left,
        "time_left": humanize.duration(estimate.seconds_left, empty=""),
        "html": progress_bar(run, estimate),
        "badge": status_badge(run),
        # The change page's read-only fields, by name (".field-<name> .readonly"): text only.
        "fields": {
            "started_at": _when(run.started_at),
            "finished_at": _when(run.finished_at) if run.is_finished else "-",
            "duration_display": humanize.duration(run.duration),
            "phase": run.phase or "-",
            "worker": run.worker or "-",
            "heartbeat_at": _when(run.heartbeat_at),
            "error": run.error or "-",
            "waiting": queues.waiting_reason(run) or "-",
            "bytes_in": str(run.bytes_in),
            "bytes_out": str(run.bytes_out),
        },
    }


def _when(moment) -> str:
    """As the admin writes a date-time in a read-only field, so a live update reads like the page it updates."""
    return formats.localize(timezone.template_localtime(moment)) if moment else "-"


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
