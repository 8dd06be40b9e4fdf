"""Probing the plan's health-check URLs: each result recorded, each flip alerted and shown.

A probe is up when the URL answers with the expected status and, if a JSON
field is named, that field is true (the plan's `"redis": true` check). It goes down only
after `failures_before_down` failed checks in a row, and back up on the first good one.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from drportal.models import Probe, ProbeResult

logger = logging.getLogger(__name__)

RESULTS_KEPT = timedelta(days=7)
MAX_BODY = 1 << 20


def fetch(probe: Probe) -> tuple[bool, int | None, str]:
    """GET the URL once; returns (ok, status code, error)."""
    request = urllib.request.Request(probe.url, headers={"User-Agent": "DR-Portal-probe/1", "Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, timeout=probe.timeout.total_seconds()) as response:
            code, body = response.status, response.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        code, body = exc.code, b""
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return False, None, f"unreachable: {getattr(exc, 'reason', exc)}"
    if code != probe.expected_status:
        return False, code, f"HTTP {code}, expected {probe.expected_status}"
    if probe.json_field:
        try:
            value = json.loads(body).get(probe.json_field)
        except (ValueError, AttributeError):
            return False, code, "the answer is not a JSON object"
        if value is not True:
            return False, code, f'"{probe.json_field}" is {json.dumps(value)}, expected true'
    return True, code, ""


def check(probe: Probe, now: datetime | None = None) -> Probe:
    """Probe once, record the result, and announce the probe's state if this result changed it."""
    started = time.monotonic()
    ok, code, error = fetch(probe)
    now = now or timezone.now()
    ProbeResult.objects.create(
        probe=probe, at=now, ok=ok, status_code=code, duration_ms=int((time.monotonic() - started) * 1000), error=error
    )
    with transaction.atomic():
        locked = Probe.objects.select_for_update().get(pk=probe.pk)
        old_state = locked.record(ok=ok, error=error, at=now)
    if locked.state != old_state:
        _announce(locked, old_state, locked.state, error)
    return locked


def _announce(probe: Probe, old: str, new: str, error: str) -> None:
    """Alert (unless it is the first result and it is good) and move the status-page component."""
    import alerts
    from incidents.models import StatusComponent

    if probe.component_id:
        state = StatusComponent.State.OPERATIONAL if new == Probe.State.UP else StatusComponent.State.MAJOR
        StatusComponent.objects.filter(pk=probe.component_id).update(state=state, updated_at=timezone.now())
    if old == Probe.State.UNKNOWN and new == Probe.State.UP:
        return
    if new == Probe.State.DOWN:
        alerts.emit(
            "probe_down",
            f"[DR Portal] {probe.name} is DOWN",
            f"Health check {probe.name} ({probe.url}) failed: {error}",
            object_ref=f"probe:{probe.pk}",
        )
    else:
        alerts.emit(
            "probe_up",
            f"[DR Portal] {probe.name} is up again",
            f"Health check {probe.name} ({probe.url}) answers as expected again.",
            object_ref=f"probe:{probe.pk}",
        )


def run_due(now: datetime | None = None) -> int:
    now = now or timezone.now()
    due = list(Probe.objects.filter(enabled=True, next_check_at__lte=now))
    for probe in due:
        check(probe)
    ProbeResult.objects.filter(at__lt=now - RESULTS_KEPT).delete()
    return len(due)
