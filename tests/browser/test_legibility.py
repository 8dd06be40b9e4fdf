"""Things a unit test cannot see: controls and badges that render but cannot be read.

Both were real bugs once: a confirm button styled as Django's red-x delete link, and a badge
colour missing for "passed".
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from backups.models import Verification
from backups.services import verify

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TRANSPARENT = "rgba(0, 0, 0, 0)"


def colours(locator) -> dict:
    return locator.evaluate(
        "e => { const s = getComputedStyle(e);"
        " return {color: s.color, background: s.backgroundColor, image: s.backgroundImage}; }"
    )


def test_the_yes_restore_button_is_visible(admin_page, run):
    page = admin_page
    page.goto(f"/admin/backups/backuprun/{run.pk}/restore/")
    button = page.locator("#confirm-restore")
    expect(button).to_have_text("Yes, restore")
    style = colours(button)
    assert style["background"] != TRANSPARENT and style["background"] != style["color"], style


def test_a_passed_verification_badge_is_visible(admin_page, run):
    page = admin_page
    verification = verify.start_verification(run, kind=Verification.Kind.INTEGRITY, trigger="command")
    Verification.objects.filter(pk=verification.pk).update(status=Verification.Status.PASSED)
    page.goto(f"/admin/backups/backuprun/{run.pk}/change/")
    badge = page.locator("#verifications-group td.field-status_badge .run-status")
    expect(badge).to_have_text("Passed")
    style = colours(badge)
    assert style["background"] != TRANSPARENT and style["background"] != style["color"], style


def test_a_badge_in_a_narrow_column_stays_on_one_line(admin_page, run):
    """Once "Passe/d": the admin breaks long words anywhere in table cells, badges included."""
    page = admin_page
    verification = verify.start_verification(run, kind=Verification.Kind.INTEGRITY, trigger="command")
    Verification.objects.filter(pk=verification.pk).update(status=Verification.Status.PASSED)
    page.goto(f"/admin/backups/backuprun/{run.pk}/change/")
    badge = page.locator("#verifications-group td.field-status_badge .run-status")
    expect(badge).to_have_text("Passed")
    one_line = badge.evaluate("e => e.getBoundingClientRect().height")
    # Squeeze the badge's cell to a column narrower than the word, as a phone or a crowded list does.
    narrow = badge.evaluate(
        """e => {
          const box = document.createElement('div');
          box.style.width = '24px';
          e.parentElement.appendChild(box);
          box.appendChild(e);
          return {height: e.getBoundingClientRect().height, lines: e.getClientRects().length};
        }"""
    )
    assert narrow == {"height": one_line, "lines": 1}, (one_line, narrow)
