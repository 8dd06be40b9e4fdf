"""The commander's journey in a real browser: open a P1 "Database Corruption" incident, log, assign,
tick, resolve, download the report."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_commander_opens_logs_assigns_ticks_resolves_and_downloads_the_report(plan_applied, admin_page, tmp_path):
    from incidents.models import Incident

    page = admin_page
    page.goto("/admin/incidents/incident/")
    page.get_by_role("link", name=re.compile("Add incident")).click()
    page.fill("#id_title", "Database Corruption")
    page.select_option("#id_severity", label="P1 – Critical")
    page.select_option("#id_scenario", label="Scenario 1: Database Corruption or Data Loss")
    impact = timezone.localtime(timezone.now() - timezone.timedelta(minutes=12))
    page.fill("#id_impact_started_at_0", f"{impact:%Y-%m-%d}")
    page.fill("#id_impact_started_at_1", f"{impact:%H:%M:%S}")
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("was added successfully")
    expect(page).to_have_url(re.compile(r"/admin/incidents/incident/\d+/change/$"))

    # The top of the page: severity, status and the RTO clock against the scenario's 1 hour.
    expect(page.locator("#incident-status")).to_have_text(re.compile("detected", re.I))
    expect(page.locator("#rto-clock")).to_contain_text("of 1 h 00 min")
    expect(page.locator("#rto-clock")).to_contain_text("on track")
    # The runbook was copied onto the incident, commands included (rendered with the scenario's target and locations).
    expect(page.locator("pre.runbook-command").first).to_contain_text('psql "$BOTFLOW_DATABASE_URL" -c "SELECT NOW();"')
    expect(page.locator("pre.runbook-command", has_text="manage.py restore")).to_contain_text(
        "python manage.py restore RUN_ID --location local"
    )

    # The one-line "add to timeline" box.
    page.fill("#add-to-timeline input[name=timeline_text]", "messages table returns checksum errors; restoring")
    page.get_by_role("button", name="Add to timeline").click()
    expect(page.locator("#timeline tbody tr").first).to_contain_text("messages table returns checksum errors")

    # Assign the Incident Commander role and tick the first two checklist items in one save.
    page.select_option("#id_role_assignments-2-0-role", label="Incident Commander")
    page.select_option("#id_role_assignments-2-0-contact", label="CEO (CEO / Incident Commander)")
    page.check("#id_checklist-0-done")
    page.check("#id_checklist-1-done")
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("was changed successfully")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("Incident Commander: CEO (CEO / Incident Commander).")
    expect(timeline).to_contain_text("Checklist ✓ Incident detected and severity assessed.")
    expect(timeline).to_contain_text("Checklist ✓ Incident Commander notified.")
    expect(page.locator("#checklist-group")).to_contain_text("admin, ")  # ticked by whom, when
    expect(page.locator("#id_checklist-0-done")).to_be_checked()

    # Resolve it (recovery was not verified here, so it needs a reason): the report becomes due 24 hours later.
    page.select_option("#id_status", "resolved")
    page.fill("#id_resolved_without_recovery", "false alarm: the checksum errors came from a broken disk on a replica")
    page.click("input[name=_continue]")
    expect(page.locator("#incident-status")).to_have_text(re.compile("resolved", re.I))
    expect(timeline.locator("tbody tr").first).to_contain_text("Status: detected → resolved.")
    expect(page.locator("#tools")).to_contain_text("due ")
    screenshot(page, "incident-journey.png")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "incident-journey-top.png"))  # what the commander sees first

    # Download the report.
    with page.expect_download() as download_info:
        page.click("#download-report")
    download = download_info.value
    incident = Incident.objects.get()
    assert download.suggested_filename == f"incident-{incident.pk}-report.md"
    download.save_as(tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    assert "# Post-incident report: #" in text and "Database Corruption" in text
    for section in ("## Summary", "## Timeline", "## Response checklist", "## Roles", "## Root cause"):
        assert section in text
    assert "messages table returns checksum errors" in text
    assert "| [x] | Incident Commander notified |" in text
    assert "| Incident Commander | CEO (CEO / Incident Commander) |" in text
    assert page.js_errors == []
