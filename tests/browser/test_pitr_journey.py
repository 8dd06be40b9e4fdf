# ruff: noqa: F811 (the fixtures imported from tests.pitr_setup are the tests' arguments)
"""Restore a pgbackrest target to a moment in a real browser, as the DevOps role user.

The target's page, "Restore to a moment…", the time and the destination, the review (what will happen,
what was checked from the catalogue, what the database host checks), "Yes, restore", and the Restore's
page while a real worker of the target's queue (tests/pitr_setup.py) carries it out.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, timedelta

import pytest
from playwright.sync_api import expect

from backups.models import Restore
from backups.services import backup
from tests.browser.conftest import log_in, screenshot
from tests.pitr_setup import QUEUE, cluster, conf_dir, db_host_worker, target, write_then_make_the_mistake  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def devops_page(page, target):
    """`page`, logged in as the DevOps role user (the target fixture made the role groups again)."""
    from drportal import roles
    from tests.conftest import role_user

    role_user(roles.DEVOPS)
    log_in(page, "devops", "pw")
    return page


def open_restore_to_a_moment(page, target) -> None:
    page.goto(f"/admin/backups/target/{target.pk}/change/")
    page.get_by_role("link", name="Restore to a moment…").click()
    expect(page).to_have_url(re.compile(rf"/admin/backups/target/{target.pk}/restore-to-a-moment/$"))
    expect(page.locator("h1")).to_have_text(f"Restore {target.name} to a moment")


def test_devops_restores_to_a_moment_in_the_browser_and_a_worker_of_the_queue_carries_it_out(
    cluster, target, db_host_worker, devops_page
):
    page = devops_page
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    label, ended = run.pgbackrest.label, run.pgbackrest.stopped_at.isoformat()
    at_t, after_mistake, moment = write_then_make_the_mistake(cluster)
    destination = cluster.folder("restores") / "from-the-browser"

    open_restore_to_a_moment(page, target)
    expect(page.locator("#id_kind input[value=time]")).to_be_checked()
    page.fill("#id_moment", moment.isoformat())
    page.fill("#id_to", str(destination))
    page.get_by_role("button", name="Review").click()

    # The review: what will happen, what was checked here, what the database host checks before anything.
    expect(page.locator("#restore-problem")).to_have_count(0)
    plan = page.locator("#restore-plan")
    expect(plan).to_contain_text(f"Restore target maindb to {moment.isoformat()} with pgBackRest")
    expect(plan).to_contain_text(f"from backup set {label} (run #{run.pk}) plus archived WAL")
    expect(plan).to_contain_text(f"into a new data directory {destination}, started on a free port")
    expect(plan).to_contain_text("checked, then stopped and removed")
    checks = page.locator("#restore-checks li")
    expect(checks).to_have_text(
        [
            f"Checked here from the portal's catalogue: backup set {label} (run #{run.pk}) ended at {ended}, "
            f"before {moment.isoformat()}.",
            f"The worker on the database host (queue {QUEUE}) checks again before touching anything: where "
            f"{destination} leads (symlinks resolved), that the destination folder is new and empty and its parent "
            "exists, that a free port is picked there, and pgBackRest's own catalogue; if any fails, the restore "
            "is refused on its page, saying why.",
        ]
    )
    assert not Restore.objects.exists() and not destination.exists()  # reviewing changes nothing
    screenshot(page, "restore-moment-review.png")

    page.get_by_role("button", name="Yes, restore").click()
    expect(page).to_have_url(re.compile(r"/admin/backups/restore/\d+/change/$"))
    expect(page.locator("ul.messagelist")).to_contain_text(re.compile(r"Restore #\d+ queued: Restore target maindb"))
    expect(page.locator("div.field-status_badge .run-status")).to_have_text("Succeeded", timeout=300_000)

    record = Restore.objects.get()
    assert record.status == "succeeded", record.error + "\n" + record.log + db_host_worker.log()[-3000:]
    assert (record.recovery_kind, record.recovery_target, record.run) == ("time", moment.isoformat(), run)
    assert record.triggered_by.username == "devops" and not record.keep_running
    # Exactly the rows as at T, counted on the restored cluster; then (keep_running off) stopped and removed.
    assert {"name": "app.public.messages", "expected": None, "restored": len(at_t)} in record.tables
    assert "Checked on the database host:" in record.log and f"stopped and removed {destination}" in record.log
    assert not destination.exists()
    page.reload()
    expect(page.locator("div.field-tables_display")).to_contain_text("app.public.messages")
    expect(page.locator("div.field-tables_display")).to_contain_text(str(len(at_t)))
    expect(page.locator("div.field-log")).to_contain_text("Checked on the database host:")
    # The live cluster is untouched.
    assert cluster.sql("SELECT id, body FROM messages ORDER BY id") == after_mistake
    assert page.js_errors == []
    screenshot(page, "restore-moment-done.png")


def test_a_time_before_the_first_backup_shows_the_refusal_in_the_browser(cluster, target, devops_page):
    page = devops_page
    too_early = cluster.sql("SELECT date_trunc('second', now())")[0][0].astimezone(UTC)
    time.sleep(1.1)
    run = backup.execute(backup.start_backup(target, trigger="command"))
    assert run.status == "succeeded", run.error
    first_stop = run.pgbackrest.stopped_at

    open_restore_to_a_moment(page, target)
    page.fill("#id_moment", too_early.isoformat())
    page.fill("#id_to", str(cluster.folder("restores") / "too-early"))
    page.get_by_role("button", name="Review").click()

    expect(page.locator("#restore-problem")).to_have_text(
        f"This restore cannot go ahead: no backup had finished by {too_early.isoformat()}: the earliest moment it "
        f"can restore to is {(first_stop + timedelta(seconds=1)).isoformat()} (the first backup of maindb ended at "
        f"{first_stop.isoformat()}; WAL before a backup cannot be replayed without one)"
    )
    expect(page.locator("#restore-plan")).to_have_count(0)
    expect(page.get_by_role("button", name="Yes, restore")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("Traceback")
    expect(page.locator("#id_moment")).to_have_value(too_early.isoformat())  # the form keeps what was typed
    assert not Restore.objects.exists() and page.js_errors == []
