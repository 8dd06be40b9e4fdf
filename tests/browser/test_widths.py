"""No page of the portal scrolls sideways: every admin changelist and change page, the dashboard and
/status/, at a desktop width and on a phone, with one object of every model so no list is empty.

A document wider than the viewport means the operator has to scroll sideways to read a row or
press a button; wide tables scroll inside their own container instead.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from tests.browser.conftest import screenshot
from tests.portal.test_role_crawl import one_of_everything  # noqa: F401  (the fixture, reused)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {"desktop": (1400, 1000), "phone": (390, 844)}


def crawl_urls() -> list[str]:
    from backups.models import BackupRun, Restore

    run, record = BackupRun.objects.first(), Restore.objects.get()
    # The dashboard, the public status page and the portal's own views beside the model pages.
    urls = [
        reverse("admin:index"),
        "/status/",
        reverse("admin:drills_drill_upcoming"),
        reverse("admin:backups_backuprun_progress", args=[run.pk]),
        reverse("admin:backups_backuprun_restore", args=[run.pk]),
        reverse("admin:backups_restore_progress", args=[record.pk]),
    ]
    for model in admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls.append(reverse(f"{prefix}_changelist"))
        # The first and the newest object: the newest is where the long values below land.
        objects = model._default_manager.order_by("pk")
        for pk in dict.fromkeys(o.pk for o in (objects.first(), objects.last()) if o is not None):
            urls.append(reverse(f"{prefix}_change", args=[pk]))
    return urls


def too_wide(page, url: str) -> str | None:
    """`None` if `url` fits the viewport, else a line naming it, its width and what sticks out."""
    response = page.goto(url)
    assert response is not None and response.status < 400, f"{url}: {response and response.status}"
    width = page.evaluate(
        """() => {
          const doc = document.documentElement.scrollWidth, view = window.innerWidth;
          if (doc <= view) return null;
          // The deepest elements whose right edge passes the viewport: what to fix.
          const out = [...document.querySelectorAll('body *')].filter(e => {
            const r = e.getBoundingClientRect();
            const past = el => el.getBoundingClientRect().right > view + 1;
            return past(e) && r.width > 0 && ![...e.children].some(past);
          }).slice(0, 3).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
            + (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\\s+/).join('.') : ''));
          return {doc, view, out};
        }"""
    )
    if width is None:
        return None
    return f"{url}: {width['doc']}px > {width['view']}px ({', '.join(width['out'])})"


@pytest.fixture
def role_groups(transactional_db) -> None:
    """The role groups come from a data migration, which a transactional test's flush removes."""
    from django.contrib.auth.models import Group

    from drportal import roles

    for role in roles.ROLES:
        Group.objects.get_or_create(name=role)
    roles.sync_role_permissions()


LONG_WORD = "s3://botflow-backups/" + "x" * 200 + "/botflow-db.dump.zst.age"


def long_values() -> None:
    """The values that widen pages in real use: unbroken paths and errors in lists and pages."""
    from backups.models import BackupRun, Target
    from incidents.models import Incident

    target = Target.objects.get(name="app")
    BackupRun.objects.create(target=target, status="failed", trigger="command", error=f"could not write {LONG_WORD}")
    Incident.objects.update(summary=f"Restored from {LONG_WORD}")
    Incident.objects.get().log("note", f"Copied {LONG_WORD} to the scratch host")


def test_no_admin_page_is_wider_than_the_viewport(role_groups, admin_page, one_of_everything):  # noqa: F811
    page = admin_page
    long_values()
    urls = crawl_urls()
    assert len(urls) > 40
    offenders = []
    for name, (width, height) in VIEWPORTS.items():
        page.set_viewport_size({"width": width, "height": height})
        offenders += [f"{name} {line}" for url in urls if (line := too_wide(page, url))]
        page.goto(reverse("admin:index"))
        screenshot(page, f"dashboard-{name}.png")  # kept as a test artefact, to look at
    assert offenders == [], f"{len(offenders)} pages of {len(urls)} scroll sideways:\n" + "\n".join(offenders)
