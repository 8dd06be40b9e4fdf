"""The files engine: local folders and S3 prefixes, backed up as tar and restored byte for byte.

Real parts only: folders on disk, objects on moto's S3 server, the real
pipeline, `manage.py restore` and the verification service.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from backups.engines.files import RESTORE_MARKER, restore_token
from backups.engines.restorers import restorer_for
from backups.models import Artifact, BackupRun, Restore
from backups.services import restore, verify
from tests.conftest import free_port, kill_restore_midway, run_backup, run_restore, s3_client, wait_for
from tests.http_stub import Answer, HttpStub, Request

pytestmark = pytest.mark.django_db

UNICODE_NAME = "Ünïcödé 文件.txt"
OLD_MTIME = 978_307_200  # 2001-01-01: far from "now", so a lost mtime shows


def make_tree(root: Path) -> None:
    """Unicode names, empty files and folders, nesting, a 5 MB random file, an executable, a symlink."""
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "Ordner ñ" / "leer").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / UNICODE_NAME).write_text("grüße, 你好\n", encoding="utf-8")
    (root / "empty.txt").write_bytes(b"")
    (root / "a" / "b" / "c" / "deep.txt").write_bytes(b"deep\n")
    (root / "a" / "Ordner ñ" / "naïve.bin").write_bytes(b"\x00\x01\x02" * 1000)
    (root / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    script = root / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    os.utime(root / UNICODE_NAME, (OLD_MTIME, OLD_MTIME))
    (root / "link-to-deep").symlink_to("a/b/c/deep.txt")


def tree(root: Path) -> dict[str, object]:
    """Every path under ``root`` (folders included) → its bytes, "<dir>" or ("link", target)."""
    found: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                found[relative] = "<dir>"
            else:
                found[relative] = path.read_bytes()
    return found


def local_artifacts(location) -> list[Path]:
    root = Path(urlsplit(location.url).path)
    return [p for p in root.rglob("*.age")] if root.exists() else []


def assert_failed_without_artifact(run: BackupRun, *needles: str, location) -> None:
    assert run.status == "failed"
    for needle in needles:
        assert needle in run.error, run.error
    assert not Artifact.objects.filter(run=run).exists()
    assert local_artifacts(location) == []


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "site-uploads"
    make_tree(root)
    return root


@pytest.fixture
def folder_run(folder, local_location, make_target) -> BackupRun:
    run = run_backup(make_target("uploads", str(folder), [local_location], engine="files"))
    assert run.status == "succeeded", run.error
    return run


# --- local folders -----------------------------------------------------------------------------


def test_a_folder_restores_to_another_path_byte_for_byte(folder, folder_run, tmp_path):
    assert folder_run.format == "tar" and folder_run.engine == "files"
    expected = tree(folder)
    size = sum(len(value) for value in expected.values() if isinstance(value, bytes))
    assert folder_run.tables == {"files": 6, "directories": 6, "bytes": size, "symlinks": 1}
    assert Path(folder_run.artifacts.get().url).name.endswith(".tar.zst.age")
    copy = tmp_path / "elsewhere" / "copy"

    code, result = run_restore(str(folder_run.pk), "--to", str(copy))

    assert code == 0, result
    assert result["rollback_name"] is None
    assert tree(copy) == expected
    assert {"empty-dir", "a/Ordner ñ/leer", UNICODE_NAME, "empty.txt"} <= set(tree(copy))
    assert (copy / UNICODE_NAME).stat().st_mtime == OLD_MTIME
    assert os.access(copy / "run.sh", os.X_OK)
    assert {t["name"]: (t["expected"], t["restored"]) for t in result["tables"]}["files"] == (6, 6)
    assert [p.name for p in copy.parent.iterdir()] == ["copy"]  # no scratch folder left beside it


def test_in_place_restore_keeps_the_previous_folder_for_rollback(folder, folder_run):
    original = tree(folder)
    (folder / "big.bin").unlink()
    (folder / "a" / "b" / "c" / "deep.txt").write_bytes(b"overwritten\n")
    (folder / "new.txt").write_text("added after the backup\n")
    damaged = tree(folder)

    code, result = run_restore(str(folder_run.pk), "--to", f"file://{folder}")

    assert code == 0, result
    assert tree(folder) == original
    rollback = Path(result["rollback_name"])
    assert rollback.parent == folder.parent and rollback.name.startswith("site-uploads.pre_restore_")
    assert tree(rollback) == damaged
    assert "To roll back" in result["log"]
    assert [p for p in folder.parent.iterdir() if ".restoring-" in p.name] == []


def test_the_artifact_restores_with_standard_tools_alone(folder, folder_run, age_key, tmp_path):
    artifact = Path(urlsplit(folder_run.artifacts.get().url).path)
    dest = tmp_path / "by-hand"
    dest.mkdir()
    subprocess.run(
        f"age -d -i {age_key.identity_file} '{artifact}' | zstd -d | tar -x -C '{dest}'",
        shell=True,
        check=True,
        capture_output=True,
    )
    assert tree(dest) == tree(folder)


def test_symlinks_out_of_the_folder_are_stored_as_links_and_refused_on_restore(
    tmp_path, local_location, make_target, age_key
):
    root = tmp_path / "linked"
    root.mkdir()
    (root / "inside.txt").write_text("inside\n")
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("must never be read through the link\n")
    (root / "escape").symlink_to(outside)
    run = run_backup(make_target("linked", str(root), [local_location], engine="files"))
    assert run.status == "succeeded", run.error
    assert run.tables == {"files": 1, "directories": 0, "bytes": 7, "symlinks": 1}
    artifact = Path(urlsplit(run.artifacts.get().url).path)
    plain = subprocess.run(
        f"age -d -i {age_key.identity_file} '{artifact}' | zstd -d", shell=True, check=True, capture_output=True
    ).stdout
    assert b"must never be read" not in plain

    code, result = run_restore(str(run.pk), "--to", str(tmp_path / "restored"))

    assert code == 1
    assert "unsafe entry" in result["error"] and "escape" in result["error"], result["error"]
    assert not (tmp_path / "restored").exists()
    assert [p.name for p in tmp_path.iterdir() if ".restoring-" in p.name] == []


def test_restore_to_the_targets_own_folder_by_default(folder, folder_run):
    (folder / UNICODE_NAME).unlink()
    code, result = run_restore(str(folder_run.pk))
    assert code == 0, result
    assert (folder / UNICODE_NAME).read_text(encoding="utf-8") == "grüße, 你好\n"


def test_a_missing_folder_fails_the_run_with_its_name_and_no_artifact(tmp_path, local_location, make_target):
    missing = tmp_path / "not-there"
    run = run_backup(make_target("uploads", str(missing), [local_location], engine="files"))
    assert_failed_without_artifact(run, str(missing), "does not exist", location=local_location)


def test_verify_integrity_and_restore_test_pass_for_a_files_run(folder_run):
    scratch_before = set(Path(tempfile.gettempdir()).glob("drp_restore_test_*"))

    integrity = verify.verify(verify.start_verification(folder_run, kind="integrity", trigger="command"))
    assert integrity.ok, integrity.checks

    tested = verify.verify(verify.start_verification(folder_run, kind="restore_test", trigger="command"))
    assert tested.ok, (tested.error, tested.checks)
    assert {t["name"]: t["restored"] for t in tested.tables} == folder_run.tables
    assert set(Path(tempfile.gettempdir()).glob("drp_restore_test_*")) - scratch_before == set()


# --- S3 prefixes -------------------------------------------------------------------------------

S3_OBJECTS = {
    UNICODE_NAME: "grüße, 你好\n".encode(),
    "empty.bin": b"",
    "nested/y.txt": b"y\n",
    "nested/deeper/x.json": b'{"x": 1}\n',
    "nested/deeper/naïve ñ.txt": b"accents\n",
    "photos/": b"",  # an empty "folder", as the S3 console creates one
}


def objects_under(client, bucket: str, prefix: str) -> dict[str, bytes]:
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"][len(prefix) :]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return found


@pytest.fixture
def bucket_run(s3_endpoint, s3_bucket, local_location, make_target):
    client = s3_client(s3_endpoint)
    # 9 MB: above boto3's multipart threshold, so the restore's upload goes in parts.
    objects = {**S3_OBJECTS, "big.bin": os.urandom(9 * 1024 * 1024)}
    for name, body in objects.items():
        client.put_object(Bucket=s3_bucket, Key=f"app/uploads/{name}", Body=body)
    client.put_object(Bucket=s3_bucket, Key="app/uploads-other/not-included.txt", Body=b"outside the prefix")
    target = make_target(
        "bucket-uploads", f"s3://{s3_bucket}/app/uploads/", [local_location], engine="files", endpoint_url=s3_endpoint
    )
    run = run_backup(target)
    assert run.status == "succeeded", run.error
    return run, client, objects


# A long prefix too: the restore's record holds the destination plus its token.
@pytest.mark.parametrize("prefix", ["restored/", "/".join(["a-rather-long-folder-name"] * 24) + "/"])
def test_a_bucket_prefix_restores_to_a_fresh_prefix_byte_for_byte(bucket_run, s3_bucket, prefix):
    run, client, objects = bucket_run
    assert run.tables == {"files": 6, "directories": 3, "bytes": sum(len(b) for b in objects.values())}

    code, result = run_restore(str(run.pk), "--to", f"s3://{s3_bucket}/{prefix}")

    assert code == 0, result
    assert result["rollback_name"] is None
    assert "nothing was replaced" in result["log"]
    assert objects_under(client, s3_bucket, prefix) == objects
    assert objects_under(client, s3_bucket, "app/uploads/") == objects


def test_restored_objects_carry_the_restores_marker_which_only_that_restore_recovers_by(
    bucket_run, s3_bucket, s3_endpoint
):
    run, client, objects = bucket_run

    code, result = run_restore(str(run.pk), "--to", f"s3://{s3_bucket}/restored/")

    assert code == 0, result
    token = restore_token(Restore.objects.get(pk=result["id"]).scratch_name)
    assert token and result["destination"] == f"s3://{s3_bucket}/restored/"
    markers = {
        key: client.head_object(Bucket=s3_bucket, Key=f"restored/{key}")["Metadata"].get(RESTORE_MARKER)
        for key in objects
    }
    assert markers == dict.fromkeys(objects, token)
    # Another restore's cleanup (its own token) under the same prefix removes none of them.
    other = restorer_for("tar", f"s3://{s3_bucket}/restored/", endpoint_url=s3_endpoint)
    done = other.recover(other.scratch, None)
    assert done == [
        f"removed 0 object(s) the interrupted restore had uploaded under s3://{s3_bucket}/restored/ "
        f"and left the {len(objects)} other object(s) there untouched"
    ]
    assert objects_under(client, s3_bucket, "restored/") == objects


def test_a_bucket_prefix_restores_to_a_local_folder_byte_for_byte(bucket_run, tmp_path):
    run, _client, objects = bucket_run
    dest = tmp_path / "from-s3"

    code, result = run_restore(str(run.pk), "--to", str(dest))

    assert code == 0, result
    files = {name: body for name, body in objects.items() if not name.endswith("/")}
    folders = {"nested": "<dir>", "nested/deeper": "<dir>", "photos": "<dir>"}
    assert tree(dest) == {**files, **folders}


def test_restore_into_a_non_empty_prefix_is_refused_and_writes_nothing(bucket_run, s3_bucket):
    run, client, _objects = bucket_run
    client.put_object(Bucket=s3_bucket, Key="occupied/live.txt", Body=b"live data")

    code, result = run_restore(str(run.pk), "--to", f"s3://{s3_bucket}/occupied/")

    assert code == 1
    assert result["status"] == "refused"
    assert "already holds objects" in result["error"] and "empty prefix" in result["error"]
    assert objects_under(client, s3_bucket, "occupied/") == {"live.txt": b"live data"}


def test_restore_test_of_a_bucket_run_passes_without_writing_to_s3(bucket_run, s3_bucket):
    run, client, _objects = bucket_run
    keys_before = set(objects_under(client, s3_bucket, ""))
    tested = verify.verify(verify.start_verification(run, kind="restore_test", trigger="command"))
    assert tested.ok, (tested.error, tested.checks)
    assert set(objects_under(client, s3_bucket, "")) == keys_before


def test_an_unsafe_key_midway_fails_the_run_rather_than_storing_a_short_archive(
    s3_endpoint, s3_bucket, local_location, make_target
):
    client = s3_client(s3_endpoint)
    client.put_object(Bucket=s3_bucket, Key="app/a-big.bin", Body=os.urandom(3 * 1024 * 1024))
    client.put_object(Bucket=s3_bucket, Key="app/zz/../escape.txt", Body=b"listed last")
    target = make_target(
        "bucket-uploads", f"s3://{s3_bucket}/app/", [local_location], engine="files", endpoint_url=s3_endpoint
    )
    run = run_backup(target)
    assert_failed_without_artifact(run, "app/zz/../escape.txt", "cannot be archived safely", location=local_location)
    assert run.bytes_in == 0 and not run.sha256


def test_a_missing_bucket_fails_the_run_with_its_name_and_no_artifact(s3_endpoint, local_location, make_target):
    missing = f"drp-missing-{secrets.token_hex(4)}"
    target = make_target(
        "bucket-uploads", f"s3://{missing}/app/", [local_location], engine="files", endpoint_url=s3_endpoint
    )
    run = run_backup(target)
    assert_failed_without_artifact(run, f"bucket {missing} does not exist", location=local_location)


def test_an_empty_prefix_fails_rather_than_storing_an_empty_archive(
    s3_endpoint, s3_bucket, local_location, make_target
):
    target = make_target(
        "bucket-uploads", f"s3://{s3_bucket}/typo/", [local_location], engine="files", endpoint_url=s3_endpoint
    )
    run = run_backup(target)
    assert_failed_without_artifact(run, "holds no objects", location=local_location)


def test_an_unreachable_endpoint_fails_the_run_with_the_endpoint(settings, local_location, make_target):
    settings.S3_CONNECT_TIMEOUT = 2
    endpoint = f"http://127.0.0.1:{free_port()}"
    target = make_target(
        "bucket-uploads", "s3://any-bucket/app/", [local_location], engine="files", endpoint_url=endpoint
    )
    run = run_backup(target)
    assert_failed_without_artifact(run, "cannot reach the S3 endpoint", endpoint, location=local_location)


def test_a_folder_restores_to_s3_with_markers_for_empty_folders(
    tmp_path, s3_endpoint, s3_bucket, local_location, make_target
):
    root = tmp_path / "plain"
    make_tree(root)
    (root / "link-to-deep").unlink()
    target = make_target("plain", str(root), [local_location], engine="files", endpoint_url=s3_endpoint)
    run = run_backup(target)
    assert run.status == "succeeded", run.error

    code, result = run_restore(str(run.pk), "--to", f"s3://{s3_bucket}/from-disk/")

    assert code == 0, result
    files = {name: body for name, body in tree(root).items() if isinstance(body, bytes)}
    markers = {"empty-dir/": b"", "a/Ordner ñ/leer/": b""}
    assert objects_under(s3_client(s3_endpoint), s3_bucket, "from-disk/") == {**files, **markers}


def test_a_failed_upload_to_s3_deletes_what_it_uploaded(
    folder, tmp_path, s3_endpoint, s3_bucket, local_location, make_target
):
    # The symlink comes after big.bin and empty.txt in the archive: those are uploaded, then the restore fails.
    target = make_target("linked", str(folder), [local_location], engine="files", endpoint_url=s3_endpoint)
    run = run_backup(target)
    assert run.status == "succeeded", run.error

    code, result = run_restore(str(run.pk), "--to", f"s3://{s3_bucket}/half/")

    assert code == 1
    assert "link-to-deep is not a regular file" in result["error"], result["error"]
    assert objects_under(s3_client(s3_endpoint), s3_bucket, "half/") == {}


def test_recover_after_a_killed_restore_puts_the_previous_folder_back(tmp_path):
    from backups.engines.restorers import restorer_for

    live, rollback, scratch = tmp_path / "data", tmp_path / "data.pre_restore_x", tmp_path / ".data.restoring-x"
    rollback.mkdir()
    (rollback / "kept.txt").write_text("previous")
    scratch.mkdir()
    (scratch / "half.txt").write_text("half restored")

    done = restorer_for("tar", str(live)).recover(str(scratch), str(rollback))

    assert tree(live) == {"kept.txt": b"previous"}
    assert not scratch.exists() and not rollback.exists()
    assert len(done) == 2


@pytest.mark.django_db(transaction=True)
def test_a_restore_to_s3_killed_midway_is_cleaned_up_by_the_reaper_leaving_others_objects(
    settings, tmp_path, s3_endpoint, s3_bucket, local_location, make_target
):

    root = tmp_path / "many"
    root.mkdir()
    for i in range(400):  # one upload each: slow enough to kill the restore partway
        (root / f"file-{i:03}.txt").write_bytes(os.urandom(2048))
    target = make_target("many", str(root), [local_location], engine="files", endpoint_url=s3_endpoint)
    run = run_backup(target)
    assert run.status == "succeeded", run.error
    client = s3_client(s3_endpoint)
    kill_restore_midway(
        [str(run.pk), "--to", f"s3://{s3_bucket}/killed/"],
        until=lambda: client.list_objects_v2(Bucket=s3_bucket, Prefix="killed/")["KeyCount"] >= 20,
        message="the restore to be uploading",
        too_fast="give it more files",
    )

    uploaded = objects_under(client, s3_bucket, "killed/")
    assert 20 <= len(uploaded) < 400
    # Others write under the same prefix meanwhile: a new object, and one of the restore's keys overwritten.
    overwritten = sorted(uploaded)[0]
    client.put_object(Bucket=s3_bucket, Key="killed/someone-elses.txt", Body=b"not the restore's")
    client.put_object(Bucket=s3_bucket, Key=f"killed/{overwritten}", Body=b"rewritten by someone else")
    record = Restore.objects.get()
    assert record.status == "running" and restore_token(record.scratch_name)

    time.sleep(0.05)
    settings.BACKUP_STALE_SECONDS = 0
    assert restore.reap_stale_restores() == 1

    record.refresh_from_db()
    assert record.status == "failed"
    assert "presumed dead" in record.error, record.error
    assert (
        f"removed {len(uploaded) - 1} object(s) the interrupted restore had uploaded under s3://{s3_bucket}/killed/ "
        "and left the 2 other object(s) there untouched"
    ) in record.error, record.error
    assert objects_under(client, s3_bucket, "killed/") == {
        "someone-elses.txt": b"not the restore's",
        overwritten: b"rewritten by someone else",
    }


# --- BACKUP_TIMEOUT_SECONDS ------------------------------------------------------------------


class TricklingS3:
    """Enough of S3 for a backup: a prefix listing one large object, whose body then comes a byte at a time.

    Each byte arrives well within the read timeout, so only the backup's own deadline can end the read.
    """

    SIZE = 10 * 1024 * 1024
    LISTING = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<Name>slow</Name><Prefix>app/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>"
        "<IsTruncated>false</IsTruncated>"
        "<Contents><Key>app/huge.bin</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
        f'<ETag>"0"</ETag><Size>{SIZE}</Size><StorageClass>STANDARD</StorageClass></Contents>'
        "</ListBucketResult>"
    ).encode()

    def __init__(self, stub: HttpStub) -> None:
        self.stub = stub
        self.endpoint = stub.base_url
        self.body_started = threading.Event()
        self.client_hung_up = stub.client_hung_up  # set when the backup stops reading the body
        stub.default = self.answer

    def answer(self, request: Request) -> Answer:
        if "list-type=2" in urlsplit(request.path).query:
            return Answer(200, self.LISTING, {"Content-Type": "application/xml"})
        headers = {"Content-Length": str(self.SIZE), "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT", "ETag": '"0"'}
        return Answer(200, self.trickle(), headers)

    def trickle(self):
        self.body_started.set()
        while True:  # the stub stops asking when it stops or the client hangs up
            yield b"x"
            time.sleep(0.05)


@pytest.fixture
def trickling_s3(monkeypatch, http_stub):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return TricklingS3(http_stub)


def producer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "files-dump" and t.is_alive()]


def test_a_bucket_that_trickles_fails_the_run_at_the_timeout_and_stops_reading_it(
    settings, trickling_s3, local_location, make_target
):
    settings.BACKUP_TIMEOUT_SECONDS = 2  # S3_READ_TIMEOUT stays at its default: it never trips here
    target = make_target(
        "slow-bucket", "s3://slow/app/", [local_location], engine="files", endpoint_url=trickling_s3.endpoint
    )
    started = time.monotonic()

    run = run_backup(target)

    assert time.monotonic() - started < 15
    assert trickling_s3.body_started.is_set()
    assert_failed_without_artifact(
        run, "reading s3://slow/app/ did not finish within 2 s (BACKUP_TIMEOUT_SECONDS)", location=local_location
    )
    assert list(settings.BACKUP_SPOOL_DIR.glob(f"run{run.pk}-*")) == []
    assert producer_threads() == []
    wait_for(trickling_s3.client_hung_up.is_set, timeout=10, message="the backup to hang up on the slow source")


def test_a_folder_too_big_to_read_in_time_fails_the_run_at_the_timeout(settings, tmp_path, local_location, make_target):
    root = tmp_path / "huge"
    root.mkdir()
    (root / "small.txt").write_text("read in time\n")
    with open(root / "sparse.img", "wb") as handle:
        handle.truncate(256 << 30)  # 256 GiB of zeros that take no disk space, but far longer than 1 s to read
    settings.BACKUP_TIMEOUT_SECONDS = 1
    started = time.monotonic()

    run = run_backup(make_target("huge", str(root), [local_location], engine="files"))

    assert time.monotonic() - started < 15
    assert_failed_without_artifact(
        run, f"reading {root} did not finish within 1 s (BACKUP_TIMEOUT_SECONDS)", location=local_location
    )
    assert producer_threads() == []
