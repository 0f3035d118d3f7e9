"""Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium, see scripts/install_chromium.sh)
against pytest-django's live server. Screenshots go to ``test-artifacts/`` (gitignored)."""
import os

import pytest

from browser_helpers import ARTIFACTS

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ROOT_URLCONF = "browser_urls"  # serves MEDIA_ROOT, like the demo
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from django.core.cache import cache

    cache.clear()


# The session's Chromium (`chromium` fixture) lives in tests/conftest.py.


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


@pytest.fixture
def test_pipeline(settings):
    """The weightless test parts (``tests/robustness/robust_parts.py``) as the pipeline."""
    from recommender import pipeline
    from robust_parts import FAKE_PIPELINE

    settings.BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter", "PIPELINE": dict(FAKE_PIPELINE)}
    pipeline.reset()
    yield
    pipeline.reset()
