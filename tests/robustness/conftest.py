"""Fixtures of the robustness tests: a private MEDIA_ROOT, clients, a weightless pipeline (test parts)."""
import pytest

from robust_parts import FAKE_PIPELINE

# The live server (pytest-django's ``live_server``, Django's threaded WSGI server) listens with a backlog of 10
# connections; a production server listens with hundreds (gunicorn: 2048). The load tests open 200 connections
# at once, so give the test server a production-like backlog.
#
# Its other difference: it starts one thread per connection, without bound, and each thread opens its own
# database connection — 200 simultaneous requests would need 200 PostgreSQL connections (the server allows 100)
# and fail with "too many clients". A production deployment bounds its concurrency (gunicorn workers × threads,
# below max_connections, or a pool); the live server is bounded the same way: at most LIVE_SERVER_THREADS
# requests are handled at once, the others wait in the backlog, as they would in front of gunicorn.
import threading  # noqa: E402

from django.core.servers.basehttp import ThreadedWSGIServer, WSGIServer  # noqa: E402

LIVE_SERVER_THREADS = 32
WSGIServer.request_queue_size = max(WSGIServer.request_queue_size, 1024)
if not getattr(ThreadedWSGIServer, "_btl_bounded", False):
    _slots = threading.BoundedSemaphore(LIVE_SERVER_THREADS)
    _handle = ThreadedWSGIServer.process_request_thread

    def _bounded_process_request_thread(self, request, client_address):
        with _slots:
            _handle(self, request, client_address)

    ThreadedWSGIServer.process_request_thread = _bounded_process_request_thread
    ThreadedWSGIServer._btl_bounded = True


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    cache.clear()
    # Many uploads per test: lift the search throttle (its own test lowers it again).
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES,
                                                                 "search": "100000/minute"})


@pytest.fixture(autouse=True)
def _celery_join_flag():
    """Eager tasks run in parallel threads (the load tests' live server) race on Celery's process-wide "a join
    would block" flag (``denied_join_result`` saves and restores it non-atomically) and can leave it set, after
    which any later ``result.get()`` in this process raises "Never call result.get() within a task". Reset it."""
    yield
    from celery._state import _set_task_join_will_block

    _set_task_join_will_block(False)


@pytest.fixture
def fake_pipeline(settings):
    """``BUY_THE_LOOK["PIPELINE"]`` pointed at the weightless test parts of ``robust_parts``."""
    from recommender import pipeline

    settings.BUY_THE_LOOK = {**getattr(settings, "BUY_THE_LOOK", {}), "PIPELINE": dict(FAKE_PIPELINE)}
    pipeline.reset()
    yield settings.BUY_THE_LOOK
    pipeline.reset()


@pytest.fixture
def staff_user(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("robust-staff", password="pw-robust-staff-1", is_staff=True,
                                                is_superuser=True)


@pytest.fixture
def staff_api(staff_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(staff_user)
    return client


@pytest.fixture
def product(db):
    from catalog.models import Product

    return Product.objects.create(sku="ROBUST-1", name="Robust Top", gender="Women", master_category="Apparel",
                                  sub_category="Topwear", article_type="Tops", base_colour="Black", price="19.00")
