"""The Oscar test shop's Celery app: Celery's standard Django recipe (a real shop has it in
``<project>/celery.py``, imported from ``<project>/__init__.py``). The worker runs as
``celery -A tests.oscar_shop.celery_app worker``; the recommender's tasks are found by ``autodiscover_tasks``."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.oscar_shop.settings")

app = Celery("oscar_shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
