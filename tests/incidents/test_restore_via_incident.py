"""A restore "via an incident" needs an existing, open incident the person may act on.

POSTs typed by hand, with a valid CSRF token, as the real role users (not superusers).
"""

from __future__ import annotations

import ast

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from backups.models import Restore
from backups.services import backup
from drportal import roles
from incidents.models import IncidentJob
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db


def role_client(role: str) -> Client:
    user = User.objects.create_user(role.lower().replace(" ", "-"), password="pw")
    roles.assign(user, role)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get(reverse("admin:index"))
    client.token = client.cookies["csrftoken"].value
    return client


@pytest.fixture
def run(source_db, plan_location, make_target):
    target = make_target("botflow-db", source_db, [plan_location])
    finished = backup.execute(backup.start_backup(target, trigger="command"))
    assert finished.status == "succeeded", finished.error
    return finished


def confirm(client: Client, run, query: str):
    url = f"{reverse('admin:backups_backuprun_restore', args=[run.pk])}{query}"
    return client.post(url, {"location": "local", "to": "", "confirm": "yes", "csrfmiddlewaretoken": client.token})


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("?incident=999", "there is no incident '999'"),
        ("?incident=", "there is no incident ''"),
        ("?incident=1%20OR%201=1", "there is no incident '1 OR 1=1'"),
    ],
)
def test_commander_cannot_restore_via_an_incident_that_does_not_exist(run, incident, query, reason):
    commander = role_client("Incident Commander")
    response = confirm(commander, run, query)
    assert response.status_code == 403
    assert reason in response.content.decode()
    assert commander.get(reverse("admin:backups_backuprun_restore", args=[run.pk]) + query).status_code == 403
    assert not Restore.objects.exists()


@pytest.mark.parametrize("status", ["resolved", "closed"])
def test_commander_cannot_restore_via_an_incident_that_is_over(run, incident, status):
    type(incident).objects.filter(pk=incident.pk).update(status=status)
    commander = role_client("Incident Commander")
    response = confirm(commander, run, f"?incident={incident.pk}")
    assert response.status_code == 403
    assert f"incident #{incident.pk} is {status}" in response.content.decode()
    assert not Restore.objects.exists()


@pytest.mark.parametrize("role", ["Viewer", "DevOps"])
def test_roles_without_the_incident_permission_cannot_restore_via_an_open_incident(run, incident, role):
    client = role_client(role)
    response = confirm(client, run, f"?incident={incident.pk}")
    assert response.status_code == 403
    assert "permission to start a restore from an incident" in response.content.decode()
    assert not Restore.objects.exists() and not IncidentJob.objects.exists()


def test_commander_restores_via_an_open_incident_and_it_is_linked(run, incident):
    commander = role_client("Incident Commander")
    response = confirm(commander, run, f"?incident={incident.pk}")
    assert response.status_code == 302
    record = Restore.objects.get()
    assert IncidentJob.objects.get(incident=incident).restore == record
    # Without ?incident= the commander may not restore at all.
    assert confirm(commander, run, "").status_code == 403
    assert Restore.objects.count() == 1


def test_backups_never_imports_incidents():
    """Layers read one way: the link is registered by incidents, backups holds only an opaque hook."""
    offenders = []
    for path in (ROOT / "backups").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("incidents", "drills")]
    assert offenders == []


def test_restore_before_t_on_a_resolved_incident_says_so_and_proposes_nothing(run, incident):
    type(incident).objects.filter(pk=incident.pk).update(status="resolved")
    commander = role_client("Incident Commander")
    entries = incident.timeline.count()
    response = commander.post(
        reverse("admin:incidents_incident_restore_before", args=[incident.pk]),
        {"target": run.target.pk, "before": "2099-01-01 00:00", "csrfmiddlewaretoken": commander.token},
        follow=True,
    )
    assert f"Incident #{incident.pk} is resolved; restores start only from an open one." in response.content.decode()
    assert incident.timeline.count() == entries
    assert not Restore.objects.exists()
