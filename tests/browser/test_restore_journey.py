"""The restore journey in a real browser: open a backup run, "Restore…", confirm, watch it finish."""

from __future__ import annotations

import re

import psycopg
import pytest
from playwright.sync_api import expect

from backups.models import Restore
from tests.browser.conftest import screenshot
from tests.conftest import drop_database, table_rows

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def drop_rollback_databases(transactional_db):
    """The restore keeps the replaced database for rollback; drop it after the test."""
    yield
    for name in Restore.objects.exclude(rollback_name="").values_list("rollback_name", flat=True):
        drop_database(name)


def test_open_a_run_restore_it_confirm_and_watch_it_finish(
    celery_worker, admin_page, run, source_db, drop_rollback_databases
):
    page = admin_page
    before = table_rows(source_db)
    with psycopg.connect(source_db) as conn:
        conn.execute("DELETE FROM messages")
    dbname = source_db.rsplit("/", 1)[1]

    # Open the run from the Backup runs list.
    page.get_by_role("link", name="Backup runs").click()
    page.locator("#result_list").get_by_role("link", name=str(run.pk), exact=True).click()
    expect(page.locator("div.field-status_badge .run-status")).to_have_text("Succeeded")

    # "Restore…" shows what will happen and changes nothing yet.
    page.get_by_role("link", name="Restore…").click()
    expect(page).to_have_url(re.compile(rf"/admin/backups/backuprun/{run.pk}/restore/$"))
    expect(page.locator("h1")).to_have_text(f"Restore run #{run.pk} of botflow-db?")
    plan = page.locator("ul.restore-plan")
    expect(plan).to_contain_text("Target: botflow-db")
    expect(plan.locator(".restore-destination")).to_have_text(source_db)
    expect(plan.locator(".restore-replaces")).to_contain_text(f"replaces database {dbname}")
    expect(plan.locator(".restore-rollback")).to_have_text(
        re.compile(rf"^{re.escape(dbname)}_pre_restore_\d{{8}}T\d{{4}}$")
    )
    expect(page.locator("#id_location")).to_have_value("local")
    expect(page.locator("#id_to")).to_have_value("")
    assert table_rows(source_db)["messages"] == []
    assert not Restore.objects.exists()
    screenshot(page, "restore-confirm.png")

    # "Yes, restore" queues it and lands on the restore's page, which polls and reloads itself.
    page.click("#confirm-restore")
    expect(page).to_have_url(re.compile(r"/admin/backups/restore/\d+/change/$"))
    expect(page.locator("ul.messagelist")).to_contain_text(re.compile(r"Restore #\d+ queued\."))
    expect(page.locator("div.field-status_badge .run-status")).to_have_text("Succeeded", timeout=60_000)
    bar = page.locator("div.field-progress .run-progress")
    expect(bar).to_have_attribute("data-status", "succeeded")
    expect(bar.locator("progress")).to_have_attribute("value", "100")
    record = Restore.objects.get()
    assert (record.status, record.triggered_by.username) == ("succeeded", "admin"), record.error
    # The name is stamped to the minute when the restore runs; the page must show the real one.
    assert record.rollback_name.startswith(f"{dbname}_pre_restore_")
    expect(page.locator("div.field-rollback_name .readonly")).to_have_text(record.rollback_name)
    expect(page.locator("div.field-log")).to_contain_text(f"previous database kept as {record.rollback_name}")
    expect(page.locator("div.field-log")).to_contain_text("To roll back")
    expect(page.locator("div.field-tables_display")).to_contain_text("messages")
    assert table_rows(source_db) == before
    assert page.js_errors == []
    screenshot(page, "restore.png")
