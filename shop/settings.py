"""Settings of the demo shop that assembles ``catalog`` and ``recommender``.

Everything a deployment changes comes from the environment:

- ``DATABASE_URL``       default ``postgres://postgres@127.0.0.1:5432/shop``
- ``CELERY_BROKER_URL``  unset: tasks run eagerly in-process; set (e.g. ``redis://127.0.0.1:6379/0``): a worker runs them
- ``SECRET_KEY``, ``DEBUG`` (default on for local use), ``ALLOWED_HOSTS`` (comma separated),
  ``CSRF_TRUSTED_ORIGINS``, ``SECURE_SSL_REDIRECT``, ``SECURE_COOKIES``, ``MEDIA_ROOT``, ``STATIC_ROOT``.
- ``SERVE_STATIC``, ``SERVE_MEDIA`` (default off): the Django process serves the collected static files (WhiteNoise)
  and the uploaded media itself — the demo's production server, ``scripts/serve.sh`` (``make serve``), turns both on.
"""
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY") or (
    "insecure-local-development-key-change-me" if DEBUG else None
)
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "catalog",
    "recommender",
]

MIDDLEWARE = [
    "recommender.middleware.ApiErrorsAsJson",  # first: Django's own error pages on /api/ become JSON
    "recommender.middleware.UploadLimits",  # uploads over their door's limit refused before the body is read
    "django.middleware.security.SecurityMiddleware",
    "shop.middleware.RejectNullBytesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "shop.wsgi.application"
ASGI_APPLICATION = "shop.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# Test databases are named per process so that several test runs on one server never collide.
DATABASES["default"]["TEST"] = {
    "NAME": os.environ.get("TEST_DATABASE_NAME") or f"test_{DATABASES['default']['NAME']}_{os.getpid()}",
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))

# Uploads: files are refused at their door's limit while they stream in, before any byte is written to disk
# (recommender.uploads; BUY_THE_LOOK SEARCH_MAX_UPLOAD_BYTES and MAX_UPLOAD_BYTES). Form fields other than files:
# 1 MB and 500 fields in all (the admin's largest forms need a few dozen fields and a few KB).
FILE_UPLOAD_HANDLERS = [
    "recommender.uploads.SizeLimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 500
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_PERMISSIONS = 0o644

PROCESS_CACHE = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "buy-the-look",
    # Django's default of 300 entries is two per product page (the widget and "more like this") for only
    # 150 products: past that, pages evict each other and the cache stops working.
    "OPTIONS": {"MAX_ENTRIES": 5000},
}
CACHES = {"default": PROCESS_CACHE}
# With a worker (a broker is set), the widget cache must be shared by web and worker processes:
# default to the broker's Redis unless CACHE_URL says otherwise.
_cache_url = os.environ.get("CACHE_URL") or (
    os.environ.get("CELERY_BROKER_URL", "") if os.environ.get("CELERY_BROKER_URL", "").startswith("redis") else ""
)
if _cache_url:
    CACHES["default"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": _cache_url,
        "KEY_PREFIX": "buy-the-look",
    }

# Celery: eager in-process unless a broker is configured.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 24,
    "DEFAULT_THROTTLE_RATES": {"search": os.environ.get("SEARCH_THROTTLE_RATE", "30/minute")},
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Buy Me That Look API",
    "DESCRIPTION": "Catalogue, look recommendations and search by photo.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# The demo's production server (scripts/serve.sh, `make serve`: gunicorn, DEBUG off) serves its own files.
# SERVE_STATIC: WhiteNoise serves STATIC_ROOT (filled by `collectstatic`) with gzip-compressed, content-hashed file
# names cached for a year; off (tests, runserver, a shop whose web server serves STATIC_ROOT) nothing changes.
# SERVE_MEDIA: shop/urls.py serves MEDIA_ROOT (product photos uploaded by staff) with DEBUG off too.
SERVE_STATIC = env_bool("SERVE_STATIC", False)
SERVE_MEDIA = env_bool("SERVE_MEDIA", False)
if SERVE_STATIC:
    MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                      "whitenoise.middleware.WhiteNoiseMiddleware")
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "catalog": {"handlers": ["console"], "level": "INFO"},
        "recommender": {"handlers": ["console"], "level": "INFO"},
    },
}

if not DEBUG:
    # Django logs request errors (tracebacks of 500s, 404s as warnings) to the console only with DEBUG on.
    LOGGING["loggers"]["django"] = {"handlers": ["console"], "level": "WARNING"}

# The recommender's own settings; defaults live in recommender/conf.py.
BUY_THE_LOOK = {
    # How the recommender learns about the demo shop's products (catalog/adapter.py).
    "PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter",
    # Load the models when a server or worker process starts (WARM_UP=0 in the environment: on first use).
    "WARM_UP": env_bool("WARM_UP", True),
}

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Cookies only over HTTPS; SECURE_COOKIES=0 for a server reached over plain HTTP (scripts/serve.sh's default).
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
