"""file:// locations are validated once (backups.models.check_location_url), wherever they are created.

`file://tmp/x` means host "tmp" and path /x: it used to be accepted and wrote to /x at the root.
Each bad form is refused by `manage.py applyplan` (a real subprocess) and by the admin (a DevOps
user's POST), with a message saying why; nothing is created.
"""

from __future__ import annotations

import html
import secrets
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.urls import reverse

from backups.locations import LocationError
from backups.models import Location, Target
from drportal import roles
from tests.conftest import ROOT, manage_py, run_backup, target_form

pytestmark = pytest.mark.django_db


def applyplan(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "plan.toml"
    path.write_text(textwrap.dedent(text))
    return manage_py("applyplan", str(path))


def bad_forms(tmp_path: Path) -> list[tuple[str, str]]:
    """(URL, what the refusal must say) for each form a location may not take."""
    link = tmp_path / "link-to-etc"
    link.symlink_to("/etc")
    return [
        ("file://tmp/x", "file://tmp/x has a host 'tmp'; write file:///tmp/x"),
        ("file://localhost/srv/backups", "has a host 'localhost'; write file:///localhost/srv/backups"),
        ("file:tmp/x", "file:tmp/x is not an absolute folder"),
        ("file:///tmp/a/../b", "file:///tmp/a/../b has a '..' segment"),
        ("file:///tmp//x", "is not normalised ('//' or '.'); write file:///tmp/x"),
        ("file:///tmp/./x", "is not normalised ('//' or '.'); write file:///tmp/x"),
        ("file:///", "file:/// is the filesystem root"),
        ("file:///etc", "file:///etc is the system folder /etc"),
        ("file:///etc/portal-backups", "is inside the system folder /etc"),
        ("file:///usr/local/backups", "is inside the system folder /usr"),
        ("file:///var/lib/postgresql/16/main", "is inside the system folder /var/lib/postgresql"),
        ("file:///var", "file:///var contains the system folder /var/lib/postgresql"),
        (f"file://{ROOT}/backups", f"is inside the portal's code folder {ROOT}"),
        (f"file://{settings.BACKUP_SPOOL_DIR}/x", f"is inside the backup spool folder {settings.BACKUP_SPOOL_DIR}"),
        (f"file://{link}/x", "(through a symbolic link, /etc/x) is inside the system folder /etc"),
    ]


BAD_NAMES = [
    "host",
    "localhost",
    "relative",
    "dotdot",
    "double-slash",
    "dot",
    "root",
    "etc",
    "in-etc",
    "in-usr",
    "pgdata",
    "var",
    "code",
    "spool",
    "symlink",
]


@pytest.mark.parametrize("index", range(len(BAD_NAMES)), ids=BAD_NAMES)
def test_the_plan_loader_refuses_each_bad_file_url(tmp_path, index):
    url, said = bad_forms(tmp_path)[index]
    result = applyplan(tmp_path, f'[locations.bad]\nurl = "{url}"\n')
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    assert "[locations.bad] key 'url'" in result.stderr and said in result.stderr, result.stderr
    assert not Location.objects.exists()


@pytest.fixture
def devops(client):
    user = User.objects.create_user("devops", password="pw")
    roles.assign(user, "DevOps")
    client.force_login(user)
    return client


def add_location(client, name: str, url: str, **extra) -> str:
    response = client.post(reverse("admin:backups_location_add"), {"name": name, "url": url, "enabled": "on", **extra})
    assert response.status_code == 200, "the form was accepted"
    return html.unescape(response.content.decode())


@pytest.mark.parametrize("index", range(len(BAD_NAMES)), ids=BAD_NAMES)
def test_the_admin_refuses_each_bad_file_url(devops, tmp_path, index):
    url, said = bad_forms(tmp_path)[index]
    page = add_location(devops, "bad", url)
    assert said in page
    assert not Location.objects.exists()


def test_a_good_folder_is_accepted_by_both(devops, tmp_path):
    response = devops.post(
        reverse("admin:backups_location_add"), {"name": "disk", "url": f"file://{tmp_path}/disk", "enabled": "on"}
    )
    assert response.status_code == 302
    # Saving it again (its own folder) is not "inside another location".
    location = Location.objects.get(name="disk")
    response = devops.post(
        reverse("admin:backups_location_change", args=[location.pk]),
        {"name": "disk", "url": f"file://{tmp_path}/disk/", "enabled": "on"},
    )
    assert response.status_code == 302


def test_a_location_inside_or_holding_another_is_refused(devops, tmp_path):
    Location.objects.create(name="outer", url=f"file://{tmp_path}/outer")
    page = add_location(devops, "inner", f"file://{tmp_path}/outer/inner")
    assert f"file://{tmp_path}/outer/inner is inside location outer's folder (file://{tmp_path}/outer)" in page
    page = add_location(devops, "parent", f"file://{tmp_path}")
    assert f"file://{tmp_path} contains location outer's folder" in page
    page = add_location(devops, "same", f"file://{tmp_path}/outer")
    assert "is location outer's folder" in page
    assert list(Location.objects.values_list("name", flat=True)) == ["outer"]


def test_s3_prefixes_of_one_bucket_may_not_overlap(devops):
    Location.objects.create(name="daily", url="s3://bucket/daily")
    page = add_location(devops, "nested", "s3://bucket/daily/more")
    assert "s3://bucket/daily/more is inside location daily's prefix (s3://bucket/daily)" in page
    assert add_location(devops, "whole", "s3://bucket").count("contains location daily's prefix") == 1
    ok = devops.post(reverse("admin:backups_location_add"), {"name": "weekly", "url": "s3://bucket/weekly"})
    assert ok.status_code == 302


@pytest.mark.parametrize("engine", ["files", "sqlite", "env"])
def test_a_location_may_not_overlap_a_targets_source(devops, tmp_path, engine):
    source = {
        "files": f"{tmp_path}/data",
        "sqlite": f"sqlite:///{tmp_path}/data/app.sqlite3",
        "env": f"{tmp_path}/data/app.env",
    }[engine]
    Target.objects.create(name="app", engine=engine, source=source)
    inside = f"file://{tmp_path}/data/backups" if engine == "files" else f"file://{tmp_path}"
    relation = "is inside" if engine == "files" else "contains"
    page = add_location(devops, "mine", inside)
    assert f"{inside} {relation} the {engine} source that target app backs up" in page
    assert not Location.objects.exists()


def test_a_target_may_not_read_a_locations_folder(devops, tmp_path):
    location = Location.objects.create(name="disk", url=f"file://{tmp_path}/disk")
    response = devops.post(
        reverse("admin:backups_target_add"),
        target_form(location, name="everything", engine="files", source=str(tmp_path)),
    )
    page = html.unescape(response.content.decode())
    assert "this files source contains location disk's folder" in page
    assert not Target.objects.exists()


def test_the_plan_loader_refuses_a_location_inside_another_and_a_source_holding_one(tmp_path):
    result = applyplan(
        tmp_path,
        f"""
        [locations.outer]
        url = "file://{tmp_path}/outer"
        [locations.inner]
        url = "file://{tmp_path}/outer/inner"
        """,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"[locations.inner] key 'url': file://{tmp_path}/outer/inner is inside location outer's" in result.stderr

    result = applyplan(
        tmp_path,
        f"""
        [locations.disk]
        url = "file://{tmp_path}/data/backups"
        [targets.data]
        engine = "files"
        source = "{tmp_path}/data"
        locations = ["disk"]
        """,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "[targets.data] key 'source': this files source contains location disk's folder" in result.stderr
    assert not Location.objects.exists() and not Target.objects.exists()


@pytest.fixture
def root_folder():
    """A folder at the filesystem root that `file://tmp/<it>` would wrongly write into."""
    name = f"drp-host-test-{secrets.token_hex(4)}"
    yield name
    shutil.rmtree(f"/{name}", ignore_errors=True)


def test_a_legacy_location_with_a_host_fails_the_backup_and_writes_nothing(source_db, make_target, root_folder):
    """A row saved before the check (or without clean()) must not write at the root either."""
    legacy = Location.objects.create(name="legacy", url=f"file://tmp/{root_folder}")
    run = run_backup(make_target("db", source_db, [legacy]))
    assert run.status == "failed"
    assert f"location legacy: file://tmp/{root_folder} has a host 'tmp'" in run.error
    assert not Path(f"/{root_folder}").exists()
    assert not run.artifacts.exists()


def test_a_copy_whose_spool_file_vanished_names_the_spool_file_not_the_destination(tmp_path):
    """As when the stale-run cleanup of another process removed the spool under a live copy."""
    location = Location.objects.create(name="disk", url=f"file://{tmp_path}/disk")
    gone = tmp_path / "spool" / "run7-abc.age"

    with pytest.raises(LocationError) as refused:
        location.backend().put_file(gone, "db/2026/x.age")

    assert str(refused.value) == (
        f"location disk: cannot read the file to copy, {gone}: No such file or directory; nothing was stored"
    )
    assert not any(p.is_file() for p in (tmp_path / "disk").rglob("*")), "no partial file is left behind"


def test_a_symbolic_link_into_another_location_is_seen_through(devops, tmp_path):
    (tmp_path / "outer").mkdir()
    Location.objects.create(name="outer", url=f"file://{tmp_path}/outer")
    (tmp_path / "alias").symlink_to(tmp_path / "outer")
    page = add_location(devops, "sneaky", f"file://{tmp_path}/alias/inner")
    assert f"file://{tmp_path}/alias/inner is inside location outer's folder" in page
    assert list(Location.objects.values_list("name", flat=True)) == ["outer"]
