"""No page of the portal scrolls sideways: every admin changelist and every object's change page, the
dashboard, /status/ and the portal's own views, at a desktop width and on a phone, as a superuser and as
the Viewer role, with at least one object of every model so no list is empty.

A document wider than the viewport means the operator has to scroll sideways to read a row or
press a button; wide tables scroll inside their own container instead.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from tests.browser.conftest import ADMIN_PASSWORD, log_in, screenshot
from tests.portal.test_role_crawl import one_of_everything  # noqa: F401  (the fixture, reused)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {"desktop": (1400, 1000), "phone": (390, 844)}


def may_view(user, model, obj=None) -> bool:
    """What the admin itself decides (a ModelAdmin may hide more than the permissions do, e.g. beat's screens)."""
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return admin.site._registry[model].has_view_or_change_permission(request, obj)


def crawl_urls(user) -> list[str]:
    """Every page `user` may open: the portal's own views, and for every registered model they may see, its
    changelist and the change page of every one of its objects."""
    from backups.models import BackupRun, Restore

    run, record = BackupRun.objects.first(), Restore.objects.get()
    # The dashboard, the public status page and the portal's own pages beside the model pages (the incident's
    # timeline is a POST and its report a download: no page to look at).
    urls = [
        reverse("admin:index"),
        "/status/",
        reverse("admin:drills_drill_upcoming"),
        reverse("admin:backups_backuprun_progress", args=[run.pk]),
        reverse("admin:backups_restore_progress", args=[record.pk]),
    ]
    if user.has_perm("backups.restore_backuprun"):
        urls.append(reverse("admin:backups_backuprun_restore", args=[run.pk]))
    for model in admin.site._registry:
        if not may_view(user, model):
            continue
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls.append(reverse(f"{prefix}_changelist"))
        objects = model._default_manager.order_by("pk")
        urls += [reverse(f"{prefix}_change", args=[obj.pk]) for obj in objects if may_view(user, model, obj)]
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


def showcase(page, role: str, viewport: str) -> None:
    """Screenshots of the dashboard, an incident and a backup run, kept under test-artifacts/ to look at."""
    from backups.models import BackupRun
    from incidents.models import Incident

    run = BackupRun.objects.order_by("pk").first()
    for name, url in [
        ("dashboard", reverse("admin:index")),
        ("incident", reverse("admin:incidents_incident_change", args=[Incident.objects.get().pk])),
        ("run", reverse("admin:backups_backuprun_change", args=[run.pk])),
    ]:
        page.goto(url)
        screenshot(page, f"{name}-{role}-{viewport}.png")


@pytest.mark.parametrize("role", ["superuser", "Viewer"])
def test_no_admin_page_is_wider_than_the_viewport(role_groups, page, superuser, one_of_everything, people, role):  # noqa: F811
    long_values()
    if role == "superuser":
        user, password = superuser, ADMIN_PASSWORD
    else:
        user, password = people[role], "pw"
    log_in(page, user.username, password)
    urls = crawl_urls(user)
    registered = [m for m in admin.site._registry if may_view(user, m)]
    objects = sum(1 for m in registered for o in m._default_manager.all() if may_view(user, m, o))
    # Every changelist and every object's change page the role may open, and the portal's own pages.
    assert len(urls) >= len(registered) + objects + 5
    assert objects > 60 and len(registered) > (30 if role == "superuser" else 25)
    print(f"{role}: {len(urls)} pages ({len(registered)} changelists, {objects} change pages) at each size")
    offenders = []
    for name, (width, height) in VIEWPORTS.items():
        page.set_viewport_size({"width": width, "height": height})
        offenders += [f"{name} {line}" for url in urls if (line := too_wide(page, url))]
        showcase(page, role.lower(), name)
    assert offenders == [], f"{len(offenders)} of {2 * len(urls)} pages scroll sideways ({role}):\n" + "\n".join(
        offenders
    )
