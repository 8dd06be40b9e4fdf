"""A run's progress for people: percentage against the previous good run, throughput and time left
(BackupRun.estimate, one place), the bar's words, and the progress JSON the run page polls."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from backups.display import progress_bar
from backups.models import BackupRun
from backups.pipeline import encrypt_stream
from drportal import roles
from tests.conftest import role_client

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


def bar_text(run: BackupRun) -> str:
    return progress_bar(run).replace("\xa0", " ")  # sizes are written with a no-break space


@pytest.fixture
def target(local_location, make_target):
    return make_target("db", "env:NOPE", [local_location])


def stored(target, bytes_in: int, ago: timedelta) -> BackupRun:
    at = timezone.now() - ago
    return BackupRun.objects.create(
        target=target, status="succeeded", sha256="a" * 64, bytes_in=bytes_in, bytes_out=bytes_in // 10, queued_at=at
    )


def running(target, **fields) -> BackupRun:
    now = timezone.now()
    values = {"status": "running", "phase": "dump", "started_at": now - timedelta(seconds=10), "heartbeat_at": now}
    values["phase_started_at"] = values["started_at"]
    return BackupRun.objects.create(target=target, lease_owner="h:1:1", **{**values, **fields})


def test_dump_estimate_against_the_previous_stored_run(target):
    stored(target, 50 * MB, timedelta(days=2))
    stored(target, 100 * MB, timedelta(days=1))  # the newest stored run is the yardstick
    BackupRun.objects.create(target=target, status="failed", bytes_in=999 * MB)  # a failed run is not
    run = running(target, bytes_in=25 * MB)
    assert run.expected_bytes_in() == 100 * MB
    estimate = run.estimate(run.expected_bytes_in())
    assert estimate.percent == 25
    assert estimate.rate == pytest.approx(2.5 * MB)
    assert estimate.seconds_left == pytest.approx(30)
    text = bar_text(run)
    assert "dumping: 25.0 MB of about 100.0 MB read, 25%, 2.5 MB/s, about 30 s left" in text
    assert 'value="25"' in text


def test_dump_without_an_earlier_run_says_so_and_never_invents_a_time_left(target):
    run = running(target, bytes_in=3 * MB)
    estimate = run.estimate(run.expected_bytes_in())
    assert (estimate.percent, estimate.seconds_left) == (None, None)
    assert estimate.rate == pytest.approx(0.3 * MB)
    text = bar_text(run)
    assert "no earlier backup to compare its size with" in text and "left" not in text and "value=" not in text


def test_a_dump_larger_than_expected_stays_below_100_and_says_0_s_left(target):
    stored(target, 10 * MB, timedelta(days=1))
    run = running(target, bytes_in=15 * MB)
    estimate = run.estimate(run.expected_bytes_in())
    assert estimate.percent == 99 and estimate.seconds_left == 0


def test_copy_estimate_from_the_copy_phase_only(target):
    now = timezone.now()
    run = running(
        target,
        phase="copy:local",
        bytes_in=200 * MB,
        bytes_out=40 * MB,
        copied={"local": 10 * MB},
        started_at=now - timedelta(minutes=30),  # the dump's time does not count against the copy
        phase_started_at=now - timedelta(seconds=5),
        heartbeat_at=now,
    )
    estimate = run.estimate()
    assert (estimate.percent, estimate.rate, estimate.seconds_left) == (25, 2 * MB, 15)
    assert "copying to local: 10.0 MB of 40.0 MB sent, 25%, 2.0 MB/s, about 15 s left" in bar_text(run)


def test_a_queued_run_never_says_bytes_read(target):
    run = BackupRun.enqueue(target, trigger="manual")
    text = bar_text(run)
    assert "queued: waiting for a worker of queue" in text and "read" not in text
    assert str(run) == f"#{run.pk} db"  # the heading: no status to go stale


def test_progress_json_follows_the_run_for_a_viewer(target):
    stored(target, 100 * MB, timedelta(days=1))
    run = running(target, bytes_in=25 * MB)
    client = role_client(roles.VIEWER)
    data = client.get(reverse("admin:backups_backuprun_progress", args=[run.pk])).json()
    assert (data["status"], data["status_label"], data["finished"]) == ("running", "Running", False)
    assert data["percent"] == 25
    assert data["seconds_left"] == pytest.approx(30) and data["time_left"] == "30 s"
    assert 'data-url="' in data["badge"] and ">Running</span>" in data["badge"]
    assert "about 30 s left" in data["html"].replace("\xa0", " ") and data["fields"]["waiting"] == "-"

    BackupRun.objects.filter(pk=run.pk).update(status="failed", error="pg_dump: connection lost", lease_owner="")
    data = client.get(reverse("admin:backups_backuprun_progress", args=[run.pk])).json()
    assert (data["status"], data["finished"], data["fields"]["error"]) == ("failed", True, "pg_dump: connection lost")
    assert ">Failed</span>" in data["badge"] and data["time_left"] == ""
    assert client.get(reverse("admin:backups_backuprun_progress", args=[987654])).status_code == 404


def test_progress_follows_the_source_even_while_the_compressor_holds_its_output(tmp_path):
    """zstd's 2 MiB jobs emit nothing for megabytes of input: progress is reported as the source is read."""
    import io
    import os

    import pyrage

    reports: list[tuple[int, int]] = []
    identity = pyrage.x25519.Identity.generate()
    source = io.BytesIO(os.urandom(256) * (6 * 4096))  # 6 MiB, very compressible
    with open(tmp_path / "out", "wb") as sink:
        encrypt_stream(
            source, sink, [identity.to_public()], on_progress=lambda i, o: reports.append((i, o)), progress_interval=0
        )
    read_before_any_output = [i for i, o in reports if o == 0]
    assert read_before_any_output and max(read_before_any_output) >= 1 * MB, reports[:5]
