"""The Celery application of the demo shop.

Without ``CELERY_BROKER_URL`` tasks run eagerly in the web process (see settings);
with it, ``make worker`` starts a worker that consumes them.
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
