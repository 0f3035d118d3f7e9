"""A django-oscar 4.2 shop (Oscar's own sandbox settings, trimmed) with "Buy Me That Look" added exactly as
docs/add-to-your-shop.md ("A django-oscar shop") says: the lines marked ``# buy-the-look`` are the plugin's.

Run its suite with ``pytest --ds=tests.oscar_shop.settings tests/oscar_shop`` (``make test`` does).

Environment: ``OSCAR_SHOP_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/oscar_shop``; tests use
``test_oscar_shop_<pid>``), ``CELERY_BROKER_URL`` (unset: analyses run eagerly in-process), ``MEDIA_ROOT``.
"""
import os
import tempfile
from pathlib import Path

import dj_database_url
from oscar.defaults import *  # noqa: F401,F403  (Oscar's OSCAR_* defaults, as Oscar's docs do)

BASE_DIR = Path(__file__).resolve().parent

DEBUG = True
SECRET_KEY = "oscar-test-shop-not-secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
SITE_ID = 1

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.flatpages",

    "oscar.config.Shop",
    "oscar.apps.analytics.apps.AnalyticsConfig",
    "oscar.apps.checkout.apps.CheckoutConfig",
    "oscar.apps.address.apps.AddressConfig",
    "oscar.apps.shipping.apps.ShippingConfig",
    "oscar.apps.catalogue.apps.CatalogueConfig",
    "oscar.apps.catalogue.reviews.apps.CatalogueReviewsConfig",
    "oscar.apps.communication.apps.CommunicationConfig",
    "oscar.apps.partner.apps.PartnerConfig",
    "oscar.apps.basket.apps.BasketConfig",
    "oscar.apps.payment.apps.PaymentConfig",
    "oscar.apps.offer.apps.OfferConfig",
    "oscar.apps.order.apps.OrderConfig",
    "oscar.apps.customer.apps.CustomerConfig",
    "oscar.apps.search.apps.SearchConfig",
    "oscar.apps.voucher.apps.VoucherConfig",
    "oscar.apps.wishlists.apps.WishlistsConfig",
    "oscar.apps.dashboard.apps.DashboardConfig",
    "oscar.apps.dashboard.reports.apps.ReportsDashboardConfig",
    "oscar.apps.dashboard.users.apps.UsersDashboardConfig",
    "oscar.apps.dashboard.orders.apps.OrdersDashboardConfig",
    "oscar.apps.dashboard.catalogue.apps.CatalogueDashboardConfig",
    "oscar.apps.dashboard.offers.apps.OffersDashboardConfig",
    "oscar.apps.dashboard.partners.apps.PartnersDashboardConfig",
    "oscar.apps.dashboard.pages.apps.PagesDashboardConfig",
    "oscar.apps.dashboard.ranges.apps.RangesDashboardConfig",
    "oscar.apps.dashboard.reviews.apps.ReviewsDashboardConfig",
    "oscar.apps.dashboard.vouchers.apps.VouchersDashboardConfig",
    "oscar.apps.dashboard.communications.apps.CommunicationsDashboardConfig",
    "oscar.apps.dashboard.shipping.apps.ShippingDashboardConfig",

    # 3rd-party apps that Oscar depends on
    "widget_tweaks",
    "haystack",
    "treebeard",
    "sorl.thumbnail",
    "django_tables2",

    "rest_framework",    # buy-the-look
    "drf_spectacular",   # buy-the-look (the API's schema)
    "recommender",       # buy-the-look
]

MIDDLEWARE = [
    "recommender.middleware.ApiErrorsAsJson",  # buy-the-look: Django's own error pages as JSON under /api/
    "recommender.middleware.UploadLimits",  # buy-the-look: uploads over their door's limit refused unread
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "oscar.apps.basket.middleware.BasketMiddleware",
    "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware",
]

# buy-the-look: a file is stopped at its door's limit while it streams in (recommender.uploads)
FILE_UPLOAD_HANDLERS = [
    "recommender.uploads.SizeLimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

AUTHENTICATION_BACKENDS = (
    "oscar.apps.customer.auth_backends.EmailBackend",
    "django.contrib.auth.backends.ModelBackend",
)

ROOT_URLCONF = "tests.oscar_shop.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # the shop's own templates first: templates/oscar/catalogue/detail.html adds the widget
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.template.context_processors.i18n",
                "django.contrib.messages.context_processors.messages",
                "oscar.apps.search.context_processors.search_form",
                "oscar.apps.checkout.context_processors.checkout",
                "oscar.apps.communication.notifications.context_processors.notifications",
                "oscar.core.context_processors.metadata",
            ],
        },
    },
]

# The recommender stores its vectors with pgvector: the shop runs on PostgreSQL.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("OSCAR_SHOP_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/oscar_shop"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
    )
}
DATABASES["default"]["ATOMIC_REQUESTS"] = True  # as Oscar's sandbox
DATABASES["default"]["TEST"] = {
    "NAME": os.environ.get("TEST_DATABASE_NAME") or f"test_{DATABASES['default']['NAME']}_{os.getpid()}",
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"  # Oscar's models use AutoField

HAYSTACK_CONNECTIONS = {"default": {"ENGINE": "haystack.backends.simple_backend.SimpleEngine"}}
HAYSTACK_SIGNAL_PROCESSOR = "haystack.signals.BaseSignalProcessor"  # the simple engine keeps no index

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", Path(tempfile.gettempdir()) / "oscar_shop_static"))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", Path(tempfile.gettempdir()) / "oscar_shop_media"))

SERVE_MEDIA = True  # the test shop serves MEDIA_ROOT itself (tests run with DEBUG off); a real shop's web server does
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users only

OSCAR_SHOP_NAME = "Oscar test shop"
OSCAR_DEFAULT_CURRENCY = "EUR"

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "oscar-shop"}}

# Celery (Celery's usual Django set-up; the app is tests/oscar_shop/celery_app.py): eager in-process unless a
# broker is configured. With a broker the widget cache must be shared by web and worker processes.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
if CELERY_BROKER_URL.startswith("redis"):
    CACHES["default"] = {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                         "LOCATION": CELERY_BROKER_URL, "KEY_PREFIX": "oscar-shop"}

# buy-the-look: the adapter that reads Oscar's products, and what the shop's attributes and classes mean.
BUY_THE_LOOK = {
    "PRODUCT_ADAPTER": "recommender.adapters.oscar.OscarAdapter",
    "ADAPTER_OPTIONS": {
        "gender_attribute": "gender",
        "colour_attribute": "colour",
        "look_categories": {
            # product classes
            "T-shirts": "top",
            "Trousers": "bottom",
            "Dresses": "dress",
            "Shoes": "footwear",
            "Bags": "bag",
            # categories (name, slug or full slug)
            "clothing/tops": "top",
            "Footwear": "footwear",
            # whole outfits sold as one product: they get a widget, they are never a recommendation
            "Looks": "",
        },
    },
    "PRICE_FORMAT": "€{amount}",
}
# buy-the-look: the rate of search by photo (each search runs the whole pipeline)
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"search": "30/minute"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"recommender": {"handlers": ["console"], "level": "WARNING"}},
}
