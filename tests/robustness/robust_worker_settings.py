"""Settings of the Celery worker subprocess of the crash tests: the shop's settings, the weightless test parts
with a detector that is slow once (``$BTL_SLOW_MARKER``), and the visibility timeout from
``$BTL_VISIBILITY_TIMEOUT`` (seconds), the task time limit from ``$BTL_TIME_LIMIT``, the detector
from ``$BTL_DETECTOR`` so that a message of a killed worker comes back quickly."""
import os

from shop.settings import *  # noqa: F401,F403

from robust_parts import FAKE_PIPELINE

BUY_THE_LOOK = {"PRODUCT_ADAPTER": "catalog.adapter.CatalogAdapter", "WARM_UP": False, "PIPELINE": {**FAKE_PIPELINE, "detector": os.environ.get("BTL_DETECTOR", "robust_parts.SlowOnceDetector")},
                "TASK_TIME_LIMIT": int(os.environ.get("BTL_TIME_LIMIT", "600"))}
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(os.environ.get("BTL_VISIBILITY_TIMEOUT", "600")),
                                   # every Redis key of this test run is prefixed: runs in parallel never meet
                                   "global_keyprefix": os.environ.get("BTL_KEYPREFIX", ""),
                                   # how often the worker looks for messages whose visibility timed out
                                   "unacked_restore_interval": float(os.environ.get("BTL_RESTORE_INTERVAL", "10")),
                                   "unacked_restore_throttle": int(os.environ.get("BTL_RESTORE_THROTTLE", "10"))}
