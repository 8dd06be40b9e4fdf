"""Browser fixtures: Debian's Chromium driven by Playwright's sync API against `live_server`.

No pytest-playwright: one Chromium per session, a fresh context (cookies, storage) per test.
The app runs in pytest-django's live server thread, which also serves /static/ (the admin's
CSS and JS, and backups/progress.js) through Django's static files handler.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# Playwright's sync API keeps an asyncio loop on the main thread; Django's ORM calls from
# the test body (fixtures, assertions) would otherwise raise SynchronousOnlyOperation.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "correct-horse-battery-staple"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item so `page` can screenshot failures."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ (git-ignored) and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server, request):
    """A page in a fresh browser context; screenshots itself to test-artifacts/ if the test fails."""
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    reports = (getattr(request.node, f"rep_{when}", None) for when in ("setup", "call"))
    if any(report is not None and report.failed for report in reports):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        try:
            print(f"\nscreenshot of the failing page ({page.url}): {screenshot(page, f'FAILED-{safe}.png')}")
        except Exception as exc:  # the browser may be what failed
            print(f"\ncould not take a screenshot: {exc}")
    context.close()


@pytest.fixture
def superuser(transactional_db):
    from django.contrib.auth.models import User

    return User.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)


def log_in(page, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD) -> None:
    """Log in through the admin's own login form and land on the admin index."""
    from playwright.sync_api import expect

    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#user-tools")).to_contain_text(username)


@pytest.fixture
def admin_page(page, superuser):
    """`page`, logged in to the admin as a superuser."""
    log_in(page)
    return page


@pytest.fixture
def run(transactional_db, source_db, local_location, make_target):
    """A succeeded backup of `source_db` (target "botflow-db"), taken in-process, stored in `local`."""
    from backups.services import backup

    target = make_target("botflow-db", source_db, [local_location])
    finished = backup.execute(backup.start_backup(target, trigger="command"))
    assert finished.status == "succeeded", finished.error
    return finished


def reload_until(page, locator, text, timeout: float = 60):
    """Reload `page` until `locator` shows `text` (for pages that do not poll by themselves)."""
    import time

    from playwright.sync_api import expect

    deadline = time.monotonic() + timeout
    while True:
        try:
            expect(locator).to_contain_text(text, timeout=1_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.reload()
