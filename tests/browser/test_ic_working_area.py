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
from tests.conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {"desk": {"width": 1400, "height": 1000}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def plan(transactional_db, monkeypatch, tmp_path):
    from drportal.plan import apply_plan

    monkeypatch.setenv("BACKUP_LOCAL_DIR", str(tmp_path / "plan-backups"))
    apply_plan(ROOT / "plans" / "botflow.toml")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_open_a_p1_with_title_and_severity_alone(plan, admin_page, viewport):
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
def test_scenario_suggested_from_the_title_and_picked_in_one_click(plan, admin_page, viewport):
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
    screenshot(page, f"ic-open-p1-{viewport}.png")
    assert page.js_errors == []
