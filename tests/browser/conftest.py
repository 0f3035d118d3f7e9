"""Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium, see scripts/install_chromium.sh)
against pytest-django's live server. Screenshots go to ``test-artifacts/`` (gitignored)."""
import os
import sys
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The weightless test pipeline parts live with the robustness tests.
sys.path.insert(0, str(ROOT / "tests" / "robustness"))


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ROOT_URLCONF = "browser_urls"  # serves MEDIA_ROOT, like the demo
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/install_chromium.sh` (part of `make test`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, request):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-last.png"), full_page=True)
    except Exception:
        pass
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def test_pipeline(settings):
    """The weightless test parts (``tests/robustness/robust_parts.py``) as the pipeline."""
    from recommender import pipeline
    from robust_parts import FAKE_PIPELINE

    settings.BUY_THE_LOOK = {"PIPELINE": dict(FAKE_PIPELINE)}
    pipeline.reset()
    yield
    pipeline.reset()


def missing_weights():
    from ml import detect, embed, gender

    return [path.name for path in (detect.DEFAULT_WEIGHTS, embed.DEFAULT_WEIGHTS, gender.DEFAULT_WEIGHTS)
            if not path.exists()]
