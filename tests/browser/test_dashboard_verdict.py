"""The dashboard's verdict line in a real browser, at desktop and phone sizes: "Not safe" naming the
breached objective, then "Safe" once that last breached objective gets a verified backup."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def plan(plan_applied):
    from backups.models import Objective

    Objective.objects.update(created_at=timezone.now() - timedelta(days=30))  # installed long ago


@pytest.mark.parametrize("viewport", [(1400, 1000), (390, 844)], ids=["desktop", "phone"])
def test_the_verdict_line_turns_from_not_safe_to_safe_when_the_last_breached_objective_is_verified(
    plan, admin_page, viewport
):
    from backups.models import BackupRun, Objective, Ping, Target
    from backups.services import rpo
    from tests.portal.test_health_safety import record_heartbeat, run

    page = admin_page
    page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    record_heartbeat("beat")
    record_heartbeat("worker@browser", ["celery"])
    for target in Target.objects.all():
        run(target, 20, verified=True)
    for objective in Objective.objects.filter(ping=True):
        Ping.objects.create(objective=objective)
    database = Target.objects.get(name="database")
    BackupRun.objects.filter(target=database).update(started_at=timezone.now() - timedelta(hours=5))
    rpo.evaluate()

    page.goto("/admin/")
    verdict = page.locator("#dash-verdict")
    expect(verdict.locator(".verdict-line")).to_contain_text("Not safe")
    expect(verdict).to_contain_text("objective database: breached")
    box = verdict.bounding_box()
    assert box and box["y"] < 400, "the verdict is the first thing on the page"
    screenshot(page, f"dashboard-not-safe-{viewport[0]}.png")

    run(database, 5, verified=True)
    rpo.evaluate()
    page.reload()
    expect(verdict.locator(".verdict-line")).to_contain_text("Safe")
    expect(verdict.locator(".verdict-line")).not_to_contain_text("Not safe")
    expect(verdict).not_to_contain_text("breached")
    assert page.locator("#dash-verdict").get_attribute("data-verdict") == "safe"
    screenshot(page, f"dashboard-safe-{viewport[0]}.png")
