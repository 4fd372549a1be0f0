"""Browser tests: Playwright for Python driving Debian's Chromium, headless, against the live
server. Installed by scripts/install-browser.sh (never `playwright install`). Skipped, with the
reason, only when /usr/bin/chromium is missing. Screenshots go to var/screenshots/."""

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
PASSWORD = "pw-Secret-123"



def pytest_collection_modifyitems(config, items):
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: run scripts/install-browser.sh")
        for item in items:
            if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the ORM calls the tests make
    # between browser steps are still synchronous. Allowed only while the browser runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS, timeout=60_000)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def page(browser, live_server, settings):
    # Dashboard numbers must move between page views in these tests.
    settings.DASHBOARD_CACHE_SECONDS = 0
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def login():
    def do(page, user, password=PASSWORD):
        page.goto("/admin/login/?next=/admin/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")
        return page

    return do


@pytest.fixture
def shot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name):
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return take


@pytest.fixture(autouse=True)
def _reversible_urls(settings):
    """As in tests/staff: fall back to the reversible URLs if a route breaks reverse()."""
    from django.urls import clear_url_caches, reverse

    try:
        reverse("health")
    except ValueError:
        settings.ROOT_URLCONF = "tests.staff.urls"
        clear_url_caches()
    yield
    clear_url_caches()
