"""The incident lifecycle in a real browser: open a P1 on the database scenario, publish an update, resolve
with recovery verified; /status/ is red while it is open and operational (components reset) after; the
report's RTO stops at recovery verified, before the resolution."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RED = "rgb(192, 57, 43)"  # .state-major on /status/
GREEN = "rgb(46, 133, 64)"  # .state-operational


def banner_colour(page) -> str:
    return page.locator("#overall").evaluate("el => getComputedStyle(el).backgroundColor")


def test_open_update_resolve_with_recovery_verified_and_the_status_page_follows(
    plan_applied, admin_page, browser, tmp_path
):
    from drportal.humanize import duration as human
    from incidents.models import Incident, StatusComponent

    page = admin_page
    page.goto("/admin/incidents/incident/add/")
    page.fill("#id_title", "Database Corruption")
    page.select_option("#id_severity", label="P1 – Critical")
    page.select_option("#id_scenario", label="Scenario 1: Database Corruption or Data Loss")
    page.check("#id_customer_facing")
    page.fill("#id_public_title", "Message history unavailable")
    impact = timezone.localtime(timezone.now() - timezone.timedelta(minutes=12))
    page.fill("#id_impact_started_at_0", f"{impact:%Y-%m-%d}")
    page.fill("#id_impact_started_at_1", f"{impact:%H:%M:%S}")
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("was added successfully")
    incident = Incident.objects.get()
    # Nothing of the database was ever backed up: the page says the window is unknown, and why.
    expect(page.locator("#rpo-unknown-reason")).to_have_text("no verified backup of database before impact")

    # An anonymous visitor in another browser context: an ongoing P1 is red even before any component changes.
    visitor = browser.new_context(base_url=page.url.split("/admin/")[0]).new_page()
    visitor.goto("/status/")
    expect(visitor.locator("#overall")).to_contain_text("1 ongoing incident")
    assert banner_colour(visitor) == RED

    # Publish an update: API in partial outage.
    api = StatusComponent.objects.get(name="API")
    form = page.locator("#status-update")
    form.locator("select[name=phase]").select_option("identified")
    form.locator("textarea[name=message]").fill("We are restoring message history from backup.")
    form.locator(f"select[name=component-{api.pk}]").select_option("partial")
    form.get_by_role("button", name="Publish update and notify stakeholders").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Status update published")
    visitor.reload()
    expect(visitor.locator("#incident-" + str(incident.pk))).to_contain_text("We are restoring message history")
    expect(visitor.locator(".components")).to_contain_text("Partial outage")
    assert banner_colour(visitor) == RED  # the P1's impact outranks the partial outage
    screenshot(visitor, "incident-lifecycle-status-open.png")

    # Resolving before recovery is verified is refused, with the reason.
    page.locator("#resolve-button").click()
    expect(page.locator("ul.messagelist")).to_contain_text("cannot be resolved yet: recovery is not verified")
    assert Incident.objects.get().is_open

    # Tick "Recovery verified" with evidence: the RTO clock stops there.
    keys = list(incident.checklist.values_list("key", flat=True))
    row = keys.index("recovery-verified")
    page.check(f"#id_checklist-{row}-done")
    page.fill(f"#id_checklist-{row}-evidence_note", "row counts match the backup")
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("was changed successfully")
    expect(page.locator("#rto-clock")).to_contain_text("stopped: recovery verified")

    # Resolve: the public "Resolved" update is prefilled and the component this incident set is ticked.
    resolve = page.locator("#resolve")
    expect(resolve.locator("#resolve-message")).to_have_value(re.compile("This incident has been resolved"))
    expect(resolve.locator(f"input[name=reset][value='{api.pk}']")).to_be_checked()
    page.locator("#resolve-button").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Incident resolved")
    expect(page.locator("#incident-status")).to_have_text(re.compile("resolved", re.I))

    visitor.reload()
    expect(visitor.locator("#overall")).to_have_text("All systems operational")
    assert banner_colour(visitor) == GREEN
    expect(visitor.locator(".components")).not_to_contain_text("outage")
    history = visitor.locator("#incident-" + str(incident.pk))
    expect(history).to_contain_text("Message history unavailable")
    expect(history).to_contain_text("Resolved")
    expect(history).to_contain_text("This incident has been resolved")
    screenshot(visitor, "incident-lifecycle-status-resolved.png")
    assert StatusComponent.objects.get(pk=api.pk).state == "operational"

    # The report's RTO stops at recovery verified, before the resolution, and says so.
    incident = Incident.objects.get()
    assert incident.recovered_at < incident.resolved_at
    with page.expect_download() as download_info:
        page.click("#download-report")
    download_info.value.save_as(tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    stopped = human(incident.recovered_at - incident.impact_started_at)
    assert f"| RTO (impact → recovery verified or resolved) | {stopped} (stopped at recovery verified" in text
    assert "clock still running" not in text
    assert "(Resolved): This incident has been resolved" in text
    assert page.js_errors == []
    visitor.context.close()
