"""Scenario 6 helpers: force logout, the read-only switch, restore before T; and who may do what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from backups.models import BackupRun, Restore, Target
from incidents.models import IncidentJob, PortalSwitch

from .conftest import staff_with

pytestmark = pytest.mark.django_db


def test_force_logout_ends_every_other_session(client, incident, commander):
    others = []
    for name in ("alice", "bob"):
        other = Client()
        other.force_login(staff_with(name, "view_incident"))
        assert other.get(reverse("admin:incidents_incident_changelist")).status_code == 200
        others.append(other)
    client.force_login(commander)
    url = reverse("admin:incidents_incident_force_logout", args=[incident.pk])

    page = client.get(url).content.decode()
    assert "2</strong> active session(s)" in page and Session.objects.count() == 3  # looking changes nothing
    assert client.post(url, {}).status_code == 200  # no confirm: only the page again
    response = client.post(url, {"confirm": "yes"})
    assert response.status_code == 302

    assert Session.objects.count() == 1
    for other in others:
        assert other.get(reverse("admin:incidents_incident_changelist")).status_code == 302  # to the login
    assert client.get(reverse("admin:incidents_incident_changelist")).status_code == 200
    assert "Forced logout of all portal users: 2 session(s) ended" in incident.timeline.first().text


def test_read_only_switch_refuses_admin_writes_until_switched_off(client, incident, commander):
    client.force_login(commander)
    switch_url = reverse("admin:incidents_incident_read_only", args=[incident.pk])
    client.post(switch_url, {"on": "1"})
    assert PortalSwitch.objects.get(name="read_only").on

    response = client.post(reverse("admin:incidents_incident_timeline", args=[incident.pk]), {"text": "a note"})
    assert response.status_code == 503
    assert "The portal is read-only" in response.content.decode()
    assert client.get(reverse("admin:incidents_incident_change", args=[incident.pk])).status_code == 200
    assert "READ-ONLY" in incident.timeline.first().text

    client.post(switch_url, {"on": "0"})  # the switch itself still works
    response = client.post(reverse("admin:incidents_incident_timeline", args=[incident.pk]), {"text": "a note"})
    assert response.status_code == 302 and incident.timeline.first().text == "a note"


def test_security_tools_need_their_own_permissions(client, incident):
    user = staff_with("responder", "view_incident", "change_incident")
    client.force_login(user)
    page = client.get(reverse("admin:incidents_incident_change", args=[incident.pk])).content.decode()
    assert "add-to-timeline" in page
    assert "Force logout" not in page and "restore-before" not in page and "read-only-switch" not in page
    for name in ("force_logout", "read_only", "restore_before"):
        assert client.post(reverse(f"admin:incidents_incident_{name}", args=[incident.pk])).status_code == 403
    assert not PortalSwitch.objects.filter(on=True).exists()


def test_restore_before_t_goes_through_the_safe_restore_confirmation_and_links_the_restore(
    client, incident, source_db, plan_location, make_target
):
    from backups.services import backup

    target = make_target("botflow-db", source_db, [plan_location])
    good = backup.execute(backup.start_backup(target, trigger="command"))
    assert good.status == "succeeded", good.error
    later = backup.execute(backup.start_backup(target, trigger="command"))
    assert later.status == "succeeded"
    commander = staff_with("ic", "view_incident", "change_incident", "restore_via_incident", "view_backuprun")
    client.force_login(commander)

    response = client.post(
        reverse("admin:incidents_incident_restore_before", args=[incident.pk]),
        {"target": target.pk, "before": f"{later.started_at - timedelta(microseconds=1):%Y-%m-%d %H:%M:%S.%f}"},
    )
    confirm_url = f"{reverse('admin:backups_backuprun_restore', args=[good.pk])}?incident={incident.pk}"
    assert response.status_code == 302 and response["Location"] == confirm_url
    page = client.get(confirm_url).content.decode()
    assert "What will happen" in page and "Yes, restore" in page
    assert not Restore.objects.exists()

    response = client.post(confirm_url, {"location": "local", "to": "", "confirm": "yes"})
    assert response.status_code == 302
    record = Restore.objects.get()
    assert record.run == good
    assert IncidentJob.objects.get(incident=incident).restore == record
    assert "Restore of botflow-db as of before" in incident.timeline.filter(kind="system").last().text
    # Without ?incident= the commander (no backups.restore_backuprun) may not restore at all.
    assert client.get(reverse("admin:backups_backuprun_restore", args=[good.pk])).status_code == 403


def test_restore_before_a_time_with_no_backup_says_so(client, incident, commander):
    client.force_login(commander)
    target = Target.objects.get(name="database")
    BackupRun.objects.create(target=target, status="succeeded", sha256="0" * 64, started_at=timezone.now())
    response = client.post(
        reverse("admin:incidents_incident_restore_before", args=[incident.pk]),
        {"target": target.pk, "before": "2020-01-01 00:00"},
        follow=True,
    )
    page = response.content.decode()
    assert "No good backup of database with a stored copy was taken before 2020-01-01 00:00 UTC." in page
