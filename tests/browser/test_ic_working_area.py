"""The incident commander's worst day in a real browser, at a desk (1400×1000) and on a phone (390×844):
open a P1 with a title and a severity alone; the top of the page is where the work happens, and typing a
summary then "Add to timeline" keeps both."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {"desk": {"width": 1400, "height": 1000}, "phone": {"width": 390, "height": 844}}


# The widest elements sticking out of the viewport (the leaf-most of each branch), to name the culprit.
WIDE = """(limit) => [...document.querySelectorAll('body *')]
  .filter(el => el.getBoundingClientRect().right > limit + 1 && el.getClientRects().length)
  .filter(el => el.parentElement.getBoundingClientRect().right <= limit + 1)
  .slice(0, 8).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
  + (el.className ? '.' + el.className : '') + ' ' + Math.round(el.getBoundingClientRect().right))"""


def assert_no_sideways_scrolling(page, limit: int) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= limit, f"the page is {width} px wide: {page.evaluate(WIDE, limit)}"


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_open_a_p1_with_title_and_severity_alone(plan_applied, admin_page, viewport):
    from incidents.models import Incident

    page = admin_page
    page.set_viewport_size(VIEWPORTS[viewport])
    before = timezone.now()
    page.goto("/admin/incidents/incident/add/")
    page.fill("#id_title", "Messages lost after a bad migration")
    page.select_option("#id_severity", label="P1 – Critical")
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("was added successfully")
    incident = Incident.objects.get()
    # Impact start defaulted to when the form was opened: now, give or take the test's own seconds.
    assert before - timedelta(minutes=1) <= incident.impact_started_at <= timezone.now()
    assert incident.severity.key == "P1"
    expect(page.locator("#incident-status")).to_have_text(re.compile("detected", re.I))
    assert page.js_errors == []


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_scenario_suggested_from_the_title_and_picked_in_one_click(plan_applied, admin_page, viewport):
    from incidents.models import Incident

    page = admin_page
    page.set_viewport_size(VIEWPORTS[viewport])
    page.goto("/admin/incidents/incident/add/")
    # The impact start is filled in (now) and stays editable.
    expect(page.locator("#id_impact_started_at_0")).not_to_have_value("")
    page.fill("#id_title", "Redis is down")
    suggestion = page.locator("#scenario-suggestion")
    expect(suggestion).to_contain_text("Scenario 4: Redis Cache Failure")
    suggestion.get_by_role("button", name=re.compile("Redis Cache Failure")).click()
    expect(page.locator("#id_scenario option:checked")).to_have_text("Scenario 4: Redis Cache Failure")
    # Every scenario is one click away too, whatever the title says.
    page.locator("#scenario-picks").get_by_role("button", name=re.compile("Security Incident")).click()
    expect(page.locator("#id_scenario option:checked")).to_have_text("Scenario 6: Security Incident")
    page.select_option("#id_severity", label="P1 – Critical")
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("was added successfully")
    assert Incident.objects.get().scenario.key == "security-incident"
    page.goto("/admin/incidents/incident/add/")
    page.fill("#id_title", "Database corruption, the Redis cache and storage are down")
    expect(page.locator("#scenario-suggestion button")).to_have_count(3)
    assert_no_sideways_scrolling(page, VIEWPORTS[viewport]["width"])
    screenshot(page, f"ic-open-p1-{viewport}.png")
    assert page.js_errors == []


@pytest.fixture
def open_p1(plan_applied):
    from incidents.models import Incident, Scenario, Severity, StatusComponent

    StatusComponent.objects.get_or_create(name="API")
    return Incident.open(
        title="Messages table corrupted",
        severity=Severity.objects.get(key="P1"),
        scenario=Scenario.objects.get(key="database-corruption"),
        impact_started_at=timezone.now() - timedelta(minutes=20),
        customer_facing=True,
    )


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_add_to_timeline_after_typing_a_summary_keeps_both(open_p1, admin_page, viewport):
    from incidents.models import Incident

    page = admin_page
    page.set_viewport_size(VIEWPORTS[viewport])
    page.goto(f"/admin/incidents/incident/{open_p1.pk}/change/")
    work = page.locator("#working-area")
    # Everything the commander works with first is at the top, in one place.
    expect(work.locator("#incident-status")).to_have_text(re.compile("detected", re.I))
    expect(work.locator("#rto-clock")).to_contain_text("on track")
    expect(work.locator("#next-checklist")).to_contain_text("Incident detected and severity assessed")
    expect(work.locator("#add-to-timeline")).to_be_visible()
    expect(work.locator("#post-update")).to_be_visible()
    # The long reference sections are folded away (and open on a click).
    report = page.locator("details", has=page.locator("#id_summary"))
    expect(report).not_to_have_attribute("open", "")
    expect(page.locator("details", has=page.locator("pre.runbook-command")).first).to_be_attached()

    # The tired commander: types the summary in the report section, then logs a decision at the top.
    report.locator("summary").click()
    page.fill("#id_summary", "A migration truncated the messages table.")
    work.locator("select[name=timeline_kind]").select_option("decision")
    work.locator("input[name=timeline_text]").fill("Restore messages from the 02:00 backup")
    work.get_by_role("button", name="Add to timeline").click()
    expect(page.locator("ul.messagelist")).to_contain_text("was changed successfully")
    incident = Incident.objects.get(pk=open_p1.pk)
    assert incident.summary == "A migration truncated the messages table."
    entry = incident.timeline.get(text="Restore messages from the 02:00 backup")
    assert entry.kind == "decision"
    expect(work.locator("#recent-timeline")).to_contain_text("Restore messages from the 02:00 backup")
    expect(page.locator("#timeline")).to_contain_text("Restore messages from the 02:00 backup")

    # Ticking the next checklist item from the top saves with the rest too.
    work.locator("#next-checklist").get_by_text("Incident detected and severity assessed").click()
    work.locator("input[name=timeline_text]").fill("Team assembled on the bridge call")
    work.locator("input[name=timeline_text]").press("Enter")
    expect(page.locator("ul.messagelist")).to_contain_text("was changed successfully")
    assert incident.checklist.get(key="detected").done_at is not None
    # The kind went back to "note" after the decision was saved: Enter logs a plain note.
    assert incident.timeline.get(text="Team assembled on the bridge call").kind == "note"
    expect(work.locator("#next-checklist")).not_to_contain_text("Incident detected and severity assessed")

    # A public update from the same place, while another edit is pending: both go through.
    page.locator("details", has=page.locator("#id_root_cause")).locator("summary").click()
    page.fill("#id_root_cause", "An unreviewed migration.")
    work.locator("select[name=update_phase]").select_option("identified")
    work.locator("textarea[name=update_message]").fill("We are restoring message history from backup.")
    work.get_by_role("button", name="Post public update").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Status update published")
    incident.refresh_from_db()
    assert incident.root_cause == "An unreviewed migration."
    assert incident.status_updates.get().message == "We are restoring message history from backup."
    assert_no_sideways_scrolling(page, VIEWPORTS[viewport]["width"])
    screenshot(page, f"ic-working-area-{viewport}.png")
    assert page.js_errors == []
