"""The backup journey in a real browser: add a location and a target, back up now, watch it, verify it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import reload_until, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_add_location_and_target_back_up_now_watch_it_finish_and_verify(celery_worker, admin_page, source_db, tmp_path):
    page = admin_page
    backups_dir = tmp_path / "b"
    # The local PostgreSQL trusts loopback, so a password in the URL is ignored by the server
    # but lets us check that the admin never shows it back.
    source = source_db.replace("postgres@", "postgres:hunter2-not-shown@", 1)

    # Backup › Locations › Add
    page.get_by_role("link", name="Locations").click()
    page.get_by_role("link", name=re.compile("Add location")).click()
    page.fill("#id_name", "disk")
    page.fill("#id_url", f"file://{backups_dir}")
    page.click("input[name=_save]")
    expect(page.locator("ul.messagelist")).to_contain_text("was added successfully")
    expect(page.locator("#result_list")).to_contain_text(f"file://{backups_dir}")

    # Backup › Targets › Add: the source is a password field, the locations a two-box picker.
    page.goto("/admin/")
    page.get_by_role("link", name="Targets").click()
    page.get_by_role("link", name=re.compile("Add target")).click()
    page.fill("#id_name", "botflow-db")
    page.select_option("#id_engine", "postgresql")
    expect(page.locator("#id_source")).to_have_attribute("type", "password")
    page.fill("#id_source", source)
    page.select_option("#id_locations_from", label="disk")
    page.click("#id_locations_add")
    expect(page.locator("#id_locations_to option")).to_have_text(["disk"])
    page.click("input[name=_save]")
    expect(page.locator("ul.messagelist")).to_contain_text("was added successfully")
    row = page.locator("#result_list tbody tr", has_text="botflow-db")
    expect(row).to_contain_text("disk")
    expect(row).to_contain_text(source_db.rsplit("/", 1)[1])
    expect(row).not_to_contain_text("hunter2")  # the source is shown without its password

    # Select it, run the "Back up now" action, follow "run #N" from the message.
    row.locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "back_up_now")
    page.click("button[name=index]")
    message = page.locator("ul.messagelist li.success")
    expect(message).to_contain_text(re.compile(r"Backup of botflow-db queued as run #\d+\."))
    message.get_by_role("link", name=re.compile(r"run #\d+")).click()
    expect(page).to_have_url(re.compile(r"/admin/backups/backuprun/\d+/change/$"))

    # progress.js polls the run and, once it has ended, swaps in the page's final content; the live server
    # serves it (and backups/admin.css, which colours the badge) from /static/.
    assert page.request.get("/static/backups/progress.js").ok
    status = page.locator("div.field-status_badge .run-status")
    expect(status).to_have_text("Succeeded", timeout=60_000)
    expect(status).to_have_css("background-color", "rgb(46, 133, 64)")
    bar = page.locator("div.field-progress .run-progress")
    expect(bar).to_have_attribute("data-status", "succeeded")
    expect(bar.locator("progress")).to_have_attribute("value", "100")
    expect(page.locator("div.field-tables_display")).to_contain_text("messages")

    artifact = page.locator("#artifacts-group tr.form-row")
    expect(artifact).to_have_count(1)
    expect(artifact.locator("td.field-location")).to_have_text("disk")
    expect(artifact.locator("td.field-url")).to_contain_text(f"file://{backups_dir}/botflow-db/")
    expect(artifact.locator("td.field-status")).to_have_text("Stored")

    # Verify: queues an integrity check (newest first in the inline, beside the automatic one
    # the worker ran after the backup); the page does not poll verifications, so reload.
    page.get_by_role("button", name="Verify", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text(re.compile(r"Verification of run #\d+ queued\."))
    ours = page.locator("#verifications-group tr.form-row").first
    expect(ours.locator("td.field-triggered")).to_have_text("admin (admin)")
    expect(ours.locator("td.field-kind")).to_contain_text("integrity")
    reload_until(page, ours.locator("td.field-status_badge"), "Passed", timeout=60)
    expect(ours.locator("td.field-summary")).to_contain_text("checks passed")

    assert page.js_errors == []
    screenshot(page, "backup-run.png")

    # The dashboard: the objective for this target turns ok once beat's RPO check runs.
    from backups.models import Objective, Target
    from backups.services import rpo

    objective = Objective.objects.create(name="database", rpo=timedelta(hours=1))
    objective.targets.set([Target.objects.get(name="botflow-db")])
    rpo.evaluate()  # what beat's "rpo: evaluate objectives" entry does every minute
    page.goto("/admin/")
    row = page.locator('tr.objective-row[data-objective="database"]')
    expect(row.locator(".rpo-state")).to_have_text("Ok")
    expect(row.locator(".rpo-state")).to_have_class(re.compile("rpo-state-ok"))
    expect(row.locator("svg.chart")).to_have_count(1)
    expect(page.locator("#dash-targets")).to_contain_text("botflow-db")
    expect(page.locator("#content-main")).to_contain_text("Backup runs")  # the app list is still there
    assert page.js_errors == []
    screenshot(page, "dashboard.png")
