"""The dashboard's target rows carry the targets list's job buttons (one helper, one set of permissions):
DevOps may press them, by hand-typed POSTs too; viewers and commanders see none and are refused."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from backups.models import BackupRun, Verification
from backups.services import backup
from drportal import roles
from tests.conftest import role_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored_run(source_db, local_location, make_target):
    target = make_target("botflow-db", source_db, [local_location])
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    return run


def targets_card(html: str) -> str:
    card = html[html.index('id="dash-targets"') :]
    return card[: card.index("</section>")]


def test_devops_presses_back_up_now_and_verify_on_the_dashboard(stored_run):
    client = role_client(roles.DEVOPS)
    card = targets_card(client.get(reverse("admin:index")).content.decode())
    # The buttons sit in a form of their own with the page's CSRF token; each names its own URL.
    assert '<form method="post" id="dash-target-actions">' in card and "csrfmiddlewaretoken" in card
    backup_url = reverse("admin:backups_target_backup", args=[stored_run.target_id])
    verify_url = reverse("admin:backups_backuprun_verify", args=[stored_run.pk])
    restore_url = reverse("admin:backups_backuprun_restore", args=[stored_run.pk])
    assert f'formaction="{backup_url}"' in card and ">Back up now</button>" in card
    assert f'formaction="{verify_url}"' in card and ">Verify</button>" in card
    assert f'href="{restore_url}"' in card and ">Restore…</a>" in card

    # What the browser sends when "Back up now" is pressed: the form's token, to the button's URL.
    response = client.post(backup_url, {"csrfmiddlewaretoken": client.token})
    queued = BackupRun.objects.get(status="queued")
    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:backups_backuprun_change", args=[queued.pk]
    )
    assert (queued.target_id, queued.trigger, queued.triggered_by.username) == (
        stored_run.target_id,
        "manual",
        "devops",
    )
    response = client.post(verify_url, {"csrfmiddlewaretoken": client.token, "kind": "integrity"})
    assert response.status_code == 302
    check = Verification.objects.get()
    assert (check.run_id, check.kind, check.triggered_by.username) == (stored_run.pk, "integrity", "devops")

    # The dashboard now shows the queued run as the target's newest backup; Verify still names the stored one.
    card = targets_card(client.get(reverse("admin:index")).content.decode())
    assert "run-status-queued" in card and f'formaction="{verify_url}"' in card


def test_without_a_stored_run_the_dashboard_offers_only_back_up_now(local_location, make_target):
    target = make_target("fresh", "env:NOT_YET", [local_location])
    card = targets_card(role_client(roles.DEVOPS).get(reverse("admin:index")).content.decode())
    row = card[card.index('data-target="fresh"') :]
    row = row[: row.index("</tr>")]
    assert reverse("admin:backups_target_backup", args=[target.pk]) in row
    assert "Verify" not in row and "Restore…" not in row


@pytest.mark.parametrize("role", [roles.VIEWER, roles.INCIDENT_COMMANDER])
def test_roles_without_the_permissions_see_no_buttons_and_are_refused(stored_run, role):
    client = role_client(role)
    html = client.get(reverse("admin:index")).content.decode()
    card = targets_card(html)
    assert "botflow-db" in card  # they do see the target
    assert "dash-target-actions" not in card and "row-button" not in card and "<th>actions</th>" not in card
    for url, data in (
        (reverse("admin:backups_target_backup", args=[stored_run.target_id]), {}),
        (reverse("admin:backups_backuprun_verify", args=[stored_run.pk]), {"kind": "integrity"}),
    ):
        response = client.post(url, {"csrfmiddlewaretoken": client.token, **data})
        assert response.status_code == 403, url
    assert not BackupRun.objects.filter(status="queued").exists() and not Verification.objects.exists()
    assert client.get(reverse("admin:backups_backuprun_restore", args=[stored_run.pk])).status_code == 403


def test_a_dashboard_post_without_the_csrf_token_is_refused(stored_run):
    client = role_client(roles.DEVOPS)
    response = client.post(reverse("admin:backups_target_backup", args=[stored_run.target_id]))
    assert response.status_code == 403
    assert not BackupRun.objects.filter(status="queued").exists()
    assert re.search(r"CSRF|forgery|security", response.content.decode(), re.I)
