"""Loading the models before the first visitor needs them.

The first analysis in a process loads TensorFlow and four models and traces their graphs (tens of seconds
on 2 cores); a visitor's first search by photo would wait for all of it. ``warm_up()`` does that work once:
it builds the pipeline parts and runs one analysis of a small synthetic photo (detector forced on).

- **Celery workers**: each worker process warms up as it starts (``worker_process_init``, i.e. after the
  fork: TensorFlow loaded before a prefork fork hangs the child), in a background thread so that the process
  reports to its pool within ``worker_proc_alive_timeout`` — connected in ``recommender.tasks``.
- **Web processes**: call ``start()`` in your WSGI module, after ``get_wsgi_application()`` (it runs in each
  server worker after its fork, e.g. gunicorn without ``--preload``, and under ``runserver``); the warm-up
  runs in a background thread, so the process answers pages meanwhile.

``BUY_THE_LOOK["WARM_UP"] = False`` turns both off (tests, memory-tight machines, processes that never analyse).
"""
import logging
import threading
import time

from .conf import settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_done = threading.Event()


def warm_up():
    """Build the pipeline parts and run one analysis; returns the seconds it took (0 when already warm)."""
    with _lock:
        if _done.is_set():
            return 0.0
        from PIL import Image, ImageDraw

        from . import pipeline

        started = time.perf_counter()
        photo = Image.new("RGB", (288, 448), (200, 200, 200))
        ImageDraw.Draw(photo).rectangle([100, 60, 190, 400], fill=(40, 60, 120))
        pipeline.analyse(photo, gender=None, detect=True)  # every part: pose, gender, detector, embedder
        elapsed = time.perf_counter() - started
        _done.set()
    logger.info("models warmed up in %.1f s", elapsed)
    return elapsed


def is_warm():
    return _done.is_set()


def start():
    """Warm up in a background thread of this process (no-op when ``BUY_THE_LOOK["WARM_UP"]`` is false)."""
    if not settings.WARM_UP or _done.is_set():
        return None

    def run():
        try:
            warm_up()
        except Exception:  # a broken model shows in the first analysis's error; the process keeps serving
            logger.exception("warming up the models failed")

    thread = threading.Thread(target=run, name="buy-the-look-warm-up", daemon=True)
    thread.start()
    return thread
