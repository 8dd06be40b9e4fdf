"""DevOps' buttons in a real browser, as the DevOps role user (not a superuser): Back up now, Verify and
Restore… on a target's row in the targets list, each a POST with the page's own CSRF token."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def devops_page(page, transactional_db):
    from django.contrib.auth.models import Group

    from drportal import roles
    from tests.conftest import role_user

    # A flush between transactional tests removes the groups the migration made; put them back.
    for role in roles.ROLES:
        Group.objects.get_or_create(name=role)
    roles.sync_role_permissions()
    role_user(roles.DEVOPS)
    log_in(page, "devops", "pw")
    return page


def test_target_row_buttons_back_up_verify_and_restore(run, devops_page, no_other_workers):
    # The session's worker is paused: the new run stays queued, so the row's "Verify" and "Restore…"
    # still act on the newest *stored* run, the fixture's.
    from backups.models import BackupRun, Verification

    page = devops_page
    page.goto("/admin/backups/target/")
    row = page.locator("#result_list tbody tr", has_text="botflow-db")
    expect(row.locator(".field-last_result")).to_contain_text("Succeeded")

    row.get_by_role("button", name="Back up now").click()
    expect(page).to_have_url(re.compile(r"/admin/backups/backuprun/\d+/change/$"))
    expect(page.locator("ul.messagelist li.success")).to_contain_text("Backup of botflow-db queued")
    assert BackupRun.objects.filter(status="queued", trigger="manual", triggered_by__username="devops").count() == 1

    page.goto("/admin/backups/target/")
    page.locator("#result_list tbody tr", has_text="botflow-db").get_by_role("button", name="Verify").click()
    expect(page.locator("ul.messagelist li.success")).to_contain_text(f"Verification of run #{run.pk} queued.")
    assert Verification.objects.get().run_id == run.pk

    page.goto("/admin/backups/target/")
    page.locator("#result_list tbody tr", has_text="botflow-db").get_by_role("link", name="Restore…").click()
    expect(page.locator("h1")).to_contain_text(f"Restore run #{run.pk} of botflow-db?")
    assert page.js_errors == []


def test_targets_and_runs_lists_with_buttons_fit_1400_px(run, devops_page):
    page = devops_page
    for url in ("/admin/backups/target/", "/admin/backups/backuprun/"):
        page.goto(url)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1400, f"{url} is {width} px wide"


def test_dashboard_target_row_back_up_now_and_verify(run, devops_page, no_other_workers):
    """The dashboard's Targets card has the same buttons; each press is a POST with the page's token."""
    from backups.models import BackupRun, Verification

    page = devops_page
    page.goto("/admin/")
    row = page.locator("#dash-targets tr.target-row", has_text="botflow-db")
    row.get_by_role("button", name="Back up now").click()
    expect(page).to_have_url(re.compile(r"/admin/backups/backuprun/\d+/change/$"))
    expect(page.locator("ul.messagelist li.success")).to_contain_text("Backup of botflow-db queued")
    assert BackupRun.objects.filter(status="queued", trigger="manual", triggered_by__username="devops").count() == 1

    page.goto("/admin/")
    page.locator("#dash-targets tr.target-row", has_text="botflow-db").get_by_role("button", name="Verify").click()
    expect(page.locator("ul.messagelist li.success")).to_contain_text(f"Verification of run #{run.pk} queued.")
    assert Verification.objects.get().run_id == run.pk

    page.goto("/admin/")
    page.locator("#dash-targets tr.target-row", has_text="botflow-db").get_by_role("link", name="Restore…").click()
    expect(page.locator("h1")).to_contain_text(f"Restore run #{run.pk} of botflow-db?")
    assert page.js_errors == []
    page.goto("/admin/")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1400, f"the dashboard is {width} px wide with its buttons"
