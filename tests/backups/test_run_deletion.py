"""Deleting a run in the admin goes through the retention service: its copies leave every location,
the indexes are rewritten, and a target's last verified (or last stored) copy is never deleted."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from backups.models import Artifact, BackupRun, Verification
from backups.services import backup, retention
from drportal import roles
from tests.conftest import s3_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def devops(client):
    user = User.objects.create_user("dev-ops", password="pw")
    roles.assign(user, roles.DEVOPS)
    assert not user.is_superuser
    client.force_login(user)
    return client


@pytest.fixture
def two_runs(source_db, local_location, s3_location, make_target):
    """Two real backups of one target, each stored on disk and in (moto's) S3; the newer one verified."""
    target = make_target("db", source_db, [local_location, s3_location])
    runs = []
    for _ in range(2):
        run = backup.execute(backup.start_backup(target, trigger="command"))
        assert run.status == "succeeded", run.error
        runs.append(run)
    Verification.objects.create(run=runs[1], kind="integrity", status="passed")
    return target, runs


def local_files(location) -> set[str]:
    root = Path(urlsplit(location.url).path)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def s3_keys(location) -> set[str]:
    parts = urlsplit(location.url)
    listed = s3_client(location.endpoint_url).list_objects_v2(Bucket=parts.netloc)
    prefix = parts.path.strip("/") + "/"
    return {obj["Key"].removeprefix(prefix) for obj in listed.get("Contents", [])}


def index_runs(keys_reader, location, target) -> set[int]:
    return {entry["run_id"] for entry in json.loads(keys_reader(f"{target.name}/manifest.json"))["runs"]}


def delete_selected(client, runs, *, confirm: bool = True):
    """The admin's two POSTs: the action shows the confirmation page, then post=yes deletes."""
    url = reverse("admin:backups_backuprun_changelist")
    data = {"action": "delete_selected", "_selected_action": [r.pk for r in runs]}
    first = client.post(url, data)
    if not confirm:
        return first
    return client.post(url, {**data, "post": "yes"}, follow=True)


def test_delete_selected_removes_the_copies_from_every_location(devops, two_runs, local_location, s3_location):
    target, (old, new) = two_runs
    old_key = old.artifacts.get(location=local_location).key
    assert {old_key, old_key + ".json"} <= local_files(local_location)
    assert {old_key, old_key + ".json"} <= s3_keys(s3_location)

    page = delete_selected(devops, [old], confirm=False)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Are you sure" in html
    # The confirmation page says what leaves the locations, not only the catalogue rows.
    assert old_key in html and "local" in html and "s3" in html
    assert BackupRun.objects.filter(pk=old.pk).exists()  # nothing happens on the first POST

    done = delete_selected(devops, [old])
    assert done.status_code == 200
    assert not BackupRun.objects.filter(pk=old.pk).exists()
    for files in (local_files(local_location), s3_keys(s3_location)):
        assert old_key not in files and old_key + ".json" not in files
    # The newer run is untouched, and each location's index lists only what is there.
    new_key = new.artifacts.get(location=local_location).key
    assert {new_key, new_key + ".json"} <= local_files(local_location)
    assert {new_key, new_key + ".json"} <= s3_keys(s3_location)
    for location in (local_location, s3_location):
        assert index_runs(location.backend().read_bytes, location, target) == {new.pk}


def test_deleting_the_only_verified_run_is_refused_and_nothing_is_deleted(
    devops, two_runs, local_location, s3_location
):
    target, (old, new) = two_runs
    before = (local_files(local_location), s3_keys(s3_location))

    # The delete page typed by hand (GET), then its POST: refused both times, with the target named.
    url = reverse("admin:backups_backuprun_delete", args=[new.pk])
    page = devops.get(url, follow=True)
    assert f"only verified copy of target {target.name}" in page.content.decode()
    answer = devops.post(url, {"post": "yes"}, follow=True)
    assert f"only verified copy of target {target.name}" in answer.content.decode()

    answer = delete_selected(devops, [new])
    assert f"only verified copy of target {target.name}" in answer.content.decode()

    assert BackupRun.objects.filter(pk__in=[old.pk, new.pk]).count() == 2
    assert Artifact.objects.filter(status="stored").count() == 4
    assert (local_files(local_location), s3_keys(s3_location)) == before


def test_deleting_every_run_of_a_target_is_refused_as_a_whole(devops, two_runs, local_location, s3_location):
    target, runs = two_runs
    Verification.objects.all().delete()  # nothing verified: the last stored copy is what is protected
    before = (local_files(local_location), s3_keys(s3_location))

    answer = delete_selected(devops, runs)

    assert f"target {target.name}" in answer.content.decode()
    assert BackupRun.objects.filter(target=target).count() == 2
    assert (local_files(local_location), s3_keys(s3_location)) == before


def test_a_running_run_cannot_be_deleted(devops, two_runs):
    target, _runs = two_runs
    running = BackupRun.objects.create(target=target, status="running")
    answer = delete_selected(devops, [running])
    assert "is running" in answer.content.decode()
    assert BackupRun.objects.filter(pk=running.pk).exists()


def test_the_service_refuses_the_last_verified_copy_from_any_caller(two_runs):
    target, (old, new) = two_runs
    with pytest.raises(retention.DeletionRefused, match=f"only verified copy of target {target.name}"):
        retention.delete_runs([new.pk])
    assert Artifact.objects.filter(run=new, status="stored").count() == 2
    retention.delete_runs([old.pk])
    assert not BackupRun.objects.filter(pk=old.pk).exists()


def test_the_model_refuses_to_mark_a_targets_last_stored_copy_deleted(two_runs, local_location, s3_location):
    from backups.models import CopyProtected

    target, (old, new) = two_runs
    Verification.objects.all().delete()
    copies = list(Artifact.objects.filter(run__target=target).order_by("pk"))
    for copy in copies[:-1]:
        copy.mark_deleted()
    with pytest.raises(CopyProtected, match=f"last stored copy of target {target.name}"):
        copies[-1].mark_deleted()
    assert Artifact.objects.get(pk=copies[-1].pk).status == "stored"


def test_a_location_that_cannot_delete_keeps_the_run_and_says_so(devops, two_runs, local_location, s3_location):
    from tests.conftest import free_port

    target, (old, new) = two_runs
    s3_key = old.artifacts.get(location=s3_location).key
    real_endpoint = s3_location.endpoint_url
    s3_location.endpoint_url = f"http://127.0.0.1:{free_port()}"  # S3 unreachable while deleting
    s3_location.save()

    answer = delete_selected(devops, [old])

    html = answer.content.decode().lower()  # the admin capitalises messages
    assert "location s3: cannot delete" in html and f"run #{old.pk} kept in the catalogue" in html
    # The catalogue says exactly what the locations hold: the local copy is gone, the S3 one is not.
    assert BackupRun.objects.filter(pk=old.pk).exists()
    assert old.artifacts.get(location=local_location).status == "deleted"
    assert old.artifacts.get(location=s3_location).status == "stored"
    assert old.artifacts.get(location=local_location).key not in local_files(local_location)
    s3_location.endpoint_url = real_endpoint
    assert {s3_key, s3_key + ".json"} <= s3_keys(s3_location)


def test_a_viewer_posting_delete_selected_by_hand_deletes_nothing(client, two_runs):
    target, runs = two_runs
    viewer = User.objects.create_user("viewer", password="pw")
    roles.assign(viewer, roles.VIEWER)
    client.force_login(viewer)
    delete_selected(client, runs[:1])
    assert client.post(reverse("admin:backups_backuprun_delete", args=[runs[0].pk]), {"post": "yes"}).status_code == 403
    assert BackupRun.objects.filter(target=target).count() == 2
    assert Artifact.objects.filter(status="stored").count() == 4


@pytest.mark.django_db(transaction=True)
def test_two_deletions_racing_cannot_remove_a_targets_last_two_copies(tmp_path):
    """The guard locks the target's stored copies: the second deletion waits, then sees one copy left."""
    import threading
    import time

    from django.db import connection, transaction

    from backups.models import CopyProtected, Location, Target

    target = Target.objects.create(name="db", engine="postgresql", source="postgresql://x/y")
    run = BackupRun.objects.create(target=target, status="succeeded", sha256="0" * 64)
    copies = [
        Artifact.objects.create(
            run=run,
            location=Location.objects.create(name=name, url=f"file://{tmp_path / name}"),
            key="k",
            url="file:///k",
            size=1,
            sha256="0" * 64,
        )
        for name in ("near", "far")
    ]
    first_marked, outcome = threading.Event(), {}

    def first():
        try:
            with transaction.atomic():
                Artifact.objects.get(pk=copies[0].pk).mark_deleted()
                first_marked.set()
                time.sleep(1.0)  # hold the lock while the second deletion tries
        finally:
            connection.close()

    def second():
        first_marked.wait(10)
        try:
            Artifact.objects.get(pk=copies[1].pk).mark_deleted()
            outcome["second"] = "deleted"
        except CopyProtected as exc:
            outcome["second"] = str(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert "last stored copy of target db" in outcome["second"]
    assert Artifact.objects.filter(status="stored").count() == 1
