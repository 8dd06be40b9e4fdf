"""A running run's page follows the job live (progress.js polling the run's progress JSON): the status badge
says "Running" as soon as bytes are read (never "Queued"), the bar shows a percentage against the previous
good run's size that rises, and a time left from the throughput so far; when the run ends the badge shows
its final status without a reload.

The backup is really slow: pg_dump reaches PostgreSQL through a loopback proxy throttled by the test.
"""

from __future__ import annotations

import re
import secrets
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.conftest import PG_ADMIN_URL, create_botflow_db, drop_database, pg_url
from tests.loopback_proxy import LoopbackProxy

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RATE = 800 * 1024  # bytes per second through the proxy: the dump (~8 MB) takes ~10 s


@pytest.fixture
def slow_source():
    """A BotFlow database of ~8 MB, and its URL through a proxy the test throttles."""
    name = f"drp_slow_{secrets.token_hex(4)}"
    create_botflow_db(name, conversations=200, messages=150_000)
    upstream = urlsplit(pg_url(name))
    with LoopbackProxy(upstream.hostname, upstream.port or 5432) as proxy:
        user = urlsplit(PG_ADMIN_URL).username or "postgres"
        yield f"postgresql://{user}@127.0.0.1:{proxy.port}/{name}", proxy
    drop_database(name)


def test_running_run_page_shows_running_percent_and_time_left_then_the_final_status(
    celery_worker, admin_page, slow_source, local_location, make_target
):
    from backups.models import BackupRun
    from backups.services import backup

    source, proxy = slow_source
    target = make_target("slow-db", source, [local_location])
    first = backup.execute(backup.start_backup(target, trigger="command"))  # unthrottled: the size to expect
    assert first.status == "succeeded", first.error
    proxy.throttle(RATE)

    page = admin_page
    page.goto(f"/admin/backups/target/{target.pk}/change/")
    page.get_by_role("button", name="Back up now").click()
    expect(page).to_have_url(re.compile(r"/admin/backups/backuprun/\d+/change/$"))
    run_id = int(page.url.rstrip("/").split("/")[-2])
    page.evaluate("window.__notReloaded = true")

    badge = page.locator("div.field-status_badge .run-status")
    text = page.locator("div.field-progress .run-progress-text")
    expect(badge).to_have_text("Running", timeout=30_000)
    expect(page.locator("div.field-waiting .readonly")).to_have_text("-")
    expect(text).to_contain_text(re.compile(r"dumping: .* of about .* read, \d+%"))

    # Sample the page while the dump runs: the badge and the bar agree, the percentage rises, a time left shows.
    percents, lefts = [], []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        shown, status = text.inner_text(), badge.inner_text()
        if "read" in shown:
            assert status == "Running", f"the badge says {status!r} while the bar says {shown!r}"
        if match := re.search(r"(\d+)%", shown):
            if "dumping" in shown:
                percents.append(int(match[1]))
        if match := re.search(r"about ([0-9.]+ (?:s|min|h \d+ min)) left", shown):
            lefts.append(match[1])
        if len(set(percents)) >= 3 and lefts:
            break
        time.sleep(0.5)
    assert len(set(percents)) >= 3, f"the percentage did not rise: {percents}"
    assert percents == sorted(percents) and percents[-1] > percents[0], percents
    assert lefts, "no time left was shown"
    screenshot(page, "run-live-progress.png")
    value = int(page.locator("div.field-progress progress").get_attribute("value"))
    assert 0 < value < 100
    assert BackupRun.objects.get(pk=run_id).status == "running"

    proxy.throttle(None)  # let it finish
    expect(badge).to_have_text("Succeeded", timeout=60_000)
    expect(page.locator("div.field-progress progress")).to_have_attribute("value", "100")
    expect(page.locator("div.field-finished_at .readonly")).not_to_have_text("-")
    # What the end brought (the copy, the per-table row counts) is swapped in without navigating.
    expect(page.locator("#artifacts-group tr.form-row")).to_have_count(1)
    expect(page.locator("div.field-tables_display")).to_contain_text("messages")
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    assert page.js_errors == []
    assert BackupRun.objects.get(pk=run_id).status == "succeeded"
