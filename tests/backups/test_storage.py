"""Storage under faults: one S3 module, bounded calls, a write order that leaves no orphan, and the reaper.

Real parts only: moto's S3 server, reached through the loopback proxy when a test needs a
hung or cut link, and `manage.py backup` subprocesses killed with SIGKILL at a chosen
point (the kill is real; only where it lands is chosen, by wrapping one function in the
child process).
"""

from __future__ import annotations

import os
import re
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from backups.models import Artifact, BackupRun, Location, Target
from tests.conftest import ROOT, run_backup, s3_client, wait_for
from tests.killpoints import PART_MB, backup_killed
from tests.loopback_proxy import LoopbackProxy

pytestmark = pytest.mark.django_db


# --- helpers -----------------------------------------------------------------------------


def objects(endpoint: str, bucket: str) -> list[str]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def unfinished_uploads(endpoint: str, bucket: str) -> list[str]:
    return [u["Key"] for u in s3_client(endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def artifacts_without_manifest(keys: list[str]) -> list[str]:
    present = set(keys)
    return [key for key in keys if not key.endswith(".json") and key + ".json" not in present]


def random_folder(path, megabytes: int = 12):
    path.mkdir()
    (path / "blob.bin").write_bytes(os.urandom(megabytes << 20))
    (path / "note.txt").write_text("hello\n")
    return path


def reap_as_dead(settings) -> None:
    """Run the reaper the way beat does, once the killed run's heartbeat is old enough to be judged dead."""
    from backups.tasks import reap_stale_jobs

    settings.BACKUP_STALE_SECONDS = 10
    BackupRun.objects.filter(status=BackupRun.Status.RUNNING).update(
        heartbeat_at=timezone.now() - timezone.timedelta(hours=1)
    )
    reap_stale_jobs()


# --- 1. one S3 module --------------------------------------------------------------------


def test_only_the_s3_module_makes_s3_clients_and_maps_their_errors():
    """One client factory, one Config, one error mapper: the others call backups/s3.py."""
    offenders = []
    for path in sorted((ROOT / "backups").rglob("*.py")):
        if path.name == "s3.py" or "migrations" in path.parts:
            continue
        text = path.read_text()
        for needle in ("botocore.config", "boto3.session", "storages.backends", "ClientError", "TransferConfig"):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert offenders == []


def test_uploads_are_multipart_with_bounded_parts_and_concurrency(settings):
    from backups import s3

    settings.BACKUP_S3_PART_SIZE_MB = 8
    settings.BACKUP_S3_CONCURRENCY = 2
    config = s3.transfer_config()
    assert (config.multipart_threshold, config.multipart_chunksize, config.max_concurrency) == (8 << 20, 8 << 20, 2)
    client = s3.client(endpoint_url="http://127.0.0.1:9")
    assert client.meta.config.tcp_keepalive is True
    assert client.meta.config.connect_timeout <= settings.S3_CONNECT_TIMEOUT


def test_every_attempt_of_one_request_fits_in_the_storage_deadline(settings):
    from backups import s3

    settings.BACKUP_STORAGE_TIMEOUT_SECONDS = 30
    settings.S3_CONNECT_TIMEOUT, settings.S3_READ_TIMEOUT, settings.S3_MAX_ATTEMPTS = 10, 60, 3
    connect, read = s3.request_timeouts()
    assert (connect + read) * 3 <= 30


# --- 3. write order ----------------------------------------------------------------------


def test_a_copy_is_staged_under_the_temporary_prefix_then_made_final(
    source_db, local_location, s3_location, make_target, s3_endpoint, s3_bucket
):
    seen: list[tuple[str, list[str]]] = []
    from backups import locations

    original = locations.S3Backend.put_bytes

    def put_bytes(self, key, data):
        # When the manifest is written, the artifact exists only under the temporary prefix.
        seen.append((key, objects(s3_endpoint, s3_bucket)))
        return original(self, key, data)

    locations.S3Backend.put_bytes = put_bytes
    try:
        run = run_backup(make_target("database", source_db, [local_location, s3_location]))
    finally:
        locations.S3Backend.put_bytes = original
    assert run.status == "succeeded", run.error
    key = run.artifacts.get(location=s3_location).key
    sidecar_write = next(listing for written, listing in seen if written == key + ".json")
    assert f"daily/.incomplete/{key}" in sidecar_write and f"daily/{key}" not in sidecar_write
    after = objects(s3_endpoint, s3_bucket)
    assert f"daily/{key}" in after and f"daily/{key}.json" in after
    assert not [k for k in after if "/.incomplete/" in k], after
    root = urlsplit(local_location.url).path
    assert os.path.exists(f"{root}/{key}") and os.path.exists(f"{root}/{key}.json")
    assert not os.path.exists(f"{root}/.incomplete/database"), "the staged copy's empty folders are removed"
    # The final copy carries the location's storage class; the staged one was never billed as cold.
    head = s3_client(s3_endpoint).head_object(Bucket=s3_bucket, Key=f"daily/{key}")
    assert head.get("StorageClass") == "STANDARD_IA"


def test_readers_ignore_the_temporary_prefix(local_location, s3_location, s3_endpoint, s3_bucket, tmp_path):
    from backups.services import artifacts

    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="daily/.incomplete/db/2026/x.sql.zst.age", Body=b"x")
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="daily/.incomplete/db/2026/x.sql.zst.age.json", Body=b"{}")
    assert list(s3_location.backend().list()) == []
    root = urlsplit(local_location.url).path
    os.makedirs(f"{root}/.incomplete/db", exist_ok=True)
    open(f"{root}/.incomplete/db/y.sql.zst.age", "wb").write(b"y")
    open(f"{root}/.incomplete/db/y.sql.zst.age.json", "w").write("{}")
    assert list(local_location.backend().list()) == []
    for source in (
        f"{root}/.incomplete/db/y.sql.zst.age",
        f"file://{root}/.incomplete/db/y.sql.zst.age",
        f"s3://{s3_bucket}/daily/.incomplete/db/2026/x.sql.zst.age",
    ):
        with pytest.raises(artifacts.ArtifactRefused, match="unfinished upload"):
            artifacts.resolve(source)


# --- 2 and 4. bounded calls, faults with real processes -----------------------------------


@pytest.fixture
def proxied_s3(db, s3_endpoint, s3_bucket):
    """An S3 location reached through a loopback proxy the test controls."""
    with LoopbackProxy("127.0.0.1", urlsplit(s3_endpoint).port) as proxy:
        location = Location.objects.create(name="far-s3", url=f"s3://{s3_bucket}/daily", endpoint_url=proxy.url)
        yield proxy, location


def test_a_stalled_server_fails_the_run_within_the_storage_deadline(
    settings, proxied_s3, local_location, make_target, s3_endpoint, s3_bucket, tmp_path
):
    proxy, location = proxied_s3
    settings.BACKUP_STORAGE_TIMEOUT_SECONDS = 4
    settings.S3_READ_TIMEOUT = 60  # left high, as a person may: the storage deadline still bounds the run
    settings.BACKUP_S3_PART_SIZE_MB = PART_MB
    folder = random_folder(tmp_path / "tree")
    target = make_target("uploads", str(folder), [local_location, location], engine="files")
    stalled_at: list[float] = []

    def stall_once_uploading():
        # Hang the server after the first part went through: the run is mid-multipart.
        wait_for(lambda: proxy.bytes_up > (PART_MB + 1) << 20, timeout=60, interval=0.01, message="the upload")
        proxy.stall()
        stalled_at.append(time.monotonic())

    staller = threading.Thread(target=stall_once_uploading, daemon=True)
    staller.start()
    run = run_backup(target)
    ended = time.monotonic()
    staller.join(1)

    assert stalled_at, "the upload never started"
    assert run.status == "failed"
    assert ended - stalled_at[0] < 4 + 8, f"the run took {ended - stalled_at[0]:.1f} s after the stall"
    assert "location far-s3" in run.error and "4 s" in run.error, run.error
    assert run.artifacts.filter(location=local_location).exists(), "the local copy is kept"

    proxy.resume()
    reap_as_dead(settings)
    wait_for(lambda: not unfinished_uploads(s3_endpoint, s3_bucket), timeout=30, message="the upload aborted")
    assert artifacts_without_manifest(objects(s3_endpoint, s3_bucket)) == []


def test_a_reset_mid_upload_aborts_the_multipart_upload_at_once(
    settings, proxied_s3, make_target, s3_endpoint, s3_bucket, tmp_path
):
    proxy, location = proxied_s3
    settings.BACKUP_S3_PART_SIZE_MB = PART_MB
    settings.S3_MAX_ATTEMPTS = 1
    target = make_target("uploads", str(random_folder(tmp_path / "tree")), [location], engine="files")

    def cut_once_uploading():
        wait_for(lambda: proxy.bytes_up > (PART_MB + 1) << 20, timeout=60, interval=0.01, message="the upload")
        proxy.reset()  # the parts in flight fail; the server still answers new connections

    threading.Thread(target=cut_once_uploading, daemon=True).start()
    run = run_backup(target)

    assert run.status == "failed" and "location far-s3" in run.error, run.error
    # No reaper: the failed upload was aborted as it failed.
    assert unfinished_uploads(s3_endpoint, s3_bucket) == []
    assert objects(s3_endpoint, s3_bucket) == []


@pytest.mark.django_db(transaction=True)  # the child process must see the target
@pytest.mark.parametrize("point", ["mid-upload", "after-upload", "before-publish"])
def test_a_backup_killed_during_its_s3_copy_leaves_nothing_after_the_reaper(
    point, settings, s3_location, make_target, s3_endpoint, s3_bucket, tmp_path
):
    make_target("uploads", str(random_folder(tmp_path / "tree")), [s3_location], engine="files")
    run = backup_killed("uploads", point)

    reap_as_dead(settings)

    run.refresh_from_db()
    assert run.status == "failed"
    keys = objects(s3_endpoint, s3_bucket)
    assert artifacts_without_manifest(keys) == [], keys
    assert not [key for key in keys if key.endswith(".age.json")], f"a manifest of nothing: {keys}"
    assert unfinished_uploads(s3_endpoint, s3_bucket) == []


@pytest.mark.django_db(transaction=True)  # the child process must see the target
def test_a_backup_killed_after_its_local_copy_leaves_nothing_in_either_location_after_the_reaper(
    settings, local_location, s3_location, make_target, s3_endpoint, s3_bucket, tmp_path
):
    make_target("uploads", str(random_folder(tmp_path / "tree", megabytes=1)), [local_location, s3_location], "files")
    root = urlsplit(local_location.url).path
    backup_killed("uploads", "after-local-upload")
    staged = [os.path.join(d, f) for d, _, files in os.walk(f"{root}/.incomplete") for f in files]
    assert staged, "the premise: the local copy was staged when the run was killed"

    reap_as_dead(settings)

    files = [os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(root) for f in names]
    assert not [f for f in files if f.startswith(".incomplete/")], files
    assert artifacts_without_manifest(files) == [], files
    assert objects(s3_endpoint, s3_bucket) == [] and unfinished_uploads(s3_endpoint, s3_bucket) == []


def test_the_reaper_leaves_a_running_runs_upload_alone(settings, s3_location, s3_endpoint, s3_bucket):
    from backups.tasks import reap_stale_jobs

    target = Target.objects.create(name="db", engine="postgresql", source="postgres://x/y")
    run = BackupRun.objects.create(
        target=target, status=BackupRun.Status.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    key = f"db/2026/12/01/db-{run.started_at:%Y%m%dT%H%M%SZ}-r{run.pk}-abcdef.sql.zst.age"
    s3 = s3_client(s3_endpoint)
    s3.put_object(Bucket=s3_bucket, Key=f"daily/.incomplete/{key}", Body=b"in flight")
    upload = s3.create_multipart_upload(Bucket=s3_bucket, Key=f"daily/.incomplete/{key}")

    reap_stale_jobs()

    assert f"daily/.incomplete/{key}" in objects(s3_endpoint, s3_bucket)
    assert unfinished_uploads(s3_endpoint, s3_bucket) == [f"daily/.incomplete/{key}"]
    s3.abort_multipart_upload(Bucket=s3_bucket, Key=f"daily/.incomplete/{key}", UploadId=upload["UploadId"])


def test_the_reaper_lists_an_unknown_artifact_without_manifest_and_removes_a_failed_runs(
    settings, s3_location, s3_endpoint, s3_bucket, caplog
):
    from backups.services import orphans

    target = Target.objects.create(name="db", engine="postgresql", source="postgres://x/y")
    target.locations.add(s3_location)
    failed = BackupRun.objects.create(target=target, status=BackupRun.Status.FAILED, started_at=timezone.now())
    mine = f"db/2026/12/01/db-{failed.started_at:%Y%m%dT%H%M%SZ}-r{failed.pk}-abcdef.sql.zst.age"
    stranger = "db/2026/12/01/db-20261201T000000Z-r99999-123456.sql.zst.age"
    s3 = s3_client(s3_endpoint)
    for key in (mine, stranger):
        s3.put_object(Bucket=s3_bucket, Key=f"daily/{key}", Body=b"left by an older version")

    report = orphans.reap()

    keys = objects(s3_endpoint, s3_bucket)
    assert f"daily/{mine}" not in keys, "a failed run's manifest-less copy is junk"
    assert f"daily/{stranger}" in keys, "what no run of this portal explains is listed, never deleted"
    assert any(stranger in line and "no manifest" in line for line in report.incomplete), report
    assert not Artifact.objects.exists()


def test_a_run_id_in_a_key_is_only_trusted_with_its_start_time():
    from backups.services import orphans

    named = orphans.run_named("db/2026/12/01/db-20261201T000000Z-r12-abcdef.tar.zst.age")
    assert named == ("db", 12, "20261201T000000Z")
    assert orphans.run_named("db/notes.txt") is None
    assert re.match(r"^\d{8}T\d{6}Z$", orphans.run_named("a/b-20990101T000000Z-r1-000000.env.gz.age")[2])


@pytest.mark.parametrize("where", ["local", "s3"])
def test_put_file_reports_the_bytes_sent_so_far(where, settings, local_location, s3_location, tmp_path):
    """The copy phase's progress: every location calls ``progress`` with a growing total that ends at the size."""
    settings.BACKUP_S3_PART_SIZE_MB = PART_MB
    artifact = tmp_path / "spool.age"
    artifact.write_bytes(os.urandom(12 << 20))
    location = local_location if where == "local" else s3_location
    seen: list[int] = []

    stored = location.backend().put_file(artifact, "t/2026/12/01/t-20261201T000000Z-r1-abcdef.env.zst.age", seen.append)

    assert stored.size == 12 << 20
    assert seen and seen == sorted(seen) and seen[-1] == 12 << 20, seen[-5:]
    if where == "s3":
        assert len(seen) > 3, "an S3 upload reports as it goes, not once at the end"


def test_a_local_copy_across_filesystems_reports_each_chunk(local_location, tmp_path):
    from backups.locations import LocalBackend

    artifact = tmp_path / "spool.age"
    artifact.write_bytes(os.urandom(3 << 20))
    staged = tmp_path / "staged.age"
    seen: list[int] = []

    LocalBackend._copy(artifact, staged, seen.append)  # what put_file does when a hard link is refused (EXDEV)

    assert seen == [1 << 20, 2 << 20, 3 << 20]
    assert staged.read_bytes() == artifact.read_bytes()


def test_the_reaper_cleans_a_local_folder_by_run_and_by_age(settings, local_location):
    from backups.services import orphans

    settings.BACKUP_ORPHAN_GRACE_SECONDS = 3600
    target = Target.objects.create(name="db", engine="postgresql", source="postgres://x/y")
    failed = BackupRun.objects.create(target=target, status=BackupRun.Status.FAILED, started_at=timezone.now())
    root = urlsplit(local_location.url).path
    left = {
        "failed": f"db/2026/12/01/db-{failed.started_at:%Y%m%dT%H%M%SZ}-r{failed.pk}-abcdef.sql.zst.age",
        "fresh-unknown": "db/2026/12/01/db-20261201T000000Z-r99998-abcdef.sql.zst.age",
        "old-unknown": "db/2026/12/01/db-20261201T000000Z-r99999-abcdef.sql.zst.age",
    }
    for key in left.values():
        os.makedirs(os.path.dirname(f"{root}/.incomplete/{key}"), exist_ok=True)
        open(f"{root}/.incomplete/{key}", "wb").write(b"partial")
    # The failed run had written its manifest before it died: a manifest of nothing, removed with it.
    os.makedirs(os.path.dirname(f"{root}/{left['failed']}"), exist_ok=True)
    open(f"{root}/{left['failed']}.json", "w").write("{}")
    two_hours_ago = time.time() - 7200
    os.utime(f"{root}/.incomplete/{left['old-unknown']}", (two_hours_ago, two_hours_ago))

    report = orphans.reap()

    remaining = {name for name, key in left.items() if os.path.exists(f"{root}/.incomplete/{key}")}
    assert remaining == {"fresh-unknown"}, report
    assert not os.path.exists(f"{root}/{left['failed']}.json")
    assert len(report.removed) == 2


def test_rebuildcatalog_takes_nothing_from_the_temporary_prefix(s3_location, s3_endpoint, s3_bucket):
    from backups.services import catalog

    key = "daily/.incomplete/db/2026/12/01/db-20261201T000000Z-r1-abcdef.sql.zst.age"
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key=key, Body=b"partial")
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key=key + ".json", Body=b"{}")

    report = catalog.rebuild(s3_location)

    assert (report.runs_added, report.copies_added, report.problems) == (0, 0, [])
    assert not BackupRun.objects.exists()


def test_making_a_copy_final_is_a_multipart_copy_above_one_part(
    monkeypatch, settings, s3_location, s3_endpoint, s3_bucket, tmp_path
):
    """CopyObject stops at 5 GB; above one part the final copy is made of UploadPartCopy parts (shown with 5 MiB)."""
    from backups import s3

    monkeypatch.setattr(s3, "COPY_PART_BYTES", 5 << 20)
    settings.BACKUP_S3_PART_SIZE_MB = PART_MB
    artifact = tmp_path / "spool.age"
    artifact.write_bytes(os.urandom(12 << 20))
    backend = s3_location.backend()
    key = "t/2026/12/01/t-20261201T000000Z-r1-abcdef.env.zst.age"

    backend.put_file(artifact, key)
    backend.publish(key)

    head = s3_client(s3_endpoint).head_object(Bucket=s3_bucket, Key=f"daily/{key}")
    assert head["ContentLength"] == 12 << 20 and head["ETag"].strip('"').endswith("-3"), head["ETag"]
    assert backend.read_bytes(key) == artifact.read_bytes()
    assert objects(s3_endpoint, s3_bucket) == [f"daily/{key}"]
