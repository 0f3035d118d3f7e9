"""The one look-analysis pipeline of this process, built lazily from ``BUY_THE_LOOK["PIPELINE"]``.

Nothing here imports TensorFlow at import time: the ``ml`` modules (and their weights) are loaded on the
first analysis, i.e. in a Celery worker's child process after the fork, or in the web process on the first
search by photo.
"""
import threading

from .conf import DEFAULTS, settings

PART_NAMES = ("pose", "gender", "detector", "embedder", "colour", "shot_test", "category_head", "kind_head")

_lock = threading.Lock()
_parts = None


def get_parts():
    """The pipeline parts of this process, instantiated once (thread-safe)."""
    global _parts
    if _parts is None:
        with _lock:
            if _parts is None:
                _parts = _build_parts()
    return _parts


def _build_parts():
    from ml import pipeline as ml_pipeline

    configured = dict(settings.PIPELINE)
    if configured == dict(DEFAULTS["PIPELINE"]):
        return ml_pipeline.default_parts()
    chosen = {name: configured.get(name) for name in PART_NAMES}
    chosen["colour"] = chosen["colour"] or False  # None in the settings: colours are not read
    chosen["shot_test"] = chosen["shot_test"] or False  # None: every catalogue photo runs the pose gate
    chosen["category_head"] = chosen["category_head"] or False  # None: the detections are not checked
    chosen["kind_head"] = chosen["kind_head"] or False  # None: no kind descriptors
    return ml_pipeline.parts_from_paths(**chosen)


def reset():
    """Forget the parts (tests that swap ``PIPELINE``; the next analysis builds them again)."""
    global _parts
    with _lock:
        _parts = None


def analyse(image, *, gender=None, detect=None):
    """Run ``ml.pipeline.analyse`` with this process's parts; ``image`` is a PIL image, bytes or a path."""
    from ml import pipeline as ml_pipeline

    return ml_pipeline.analyse(
        image, gender=gender or None, parts=get_parts(), detect=detect,
        min_confidence=settings.floors(),
    )


def analyse_batch(images, *, genders=None):
    """Run ``ml.pipeline.analyse_batch`` with this process's parts: an ``Analysis`` or an exception per image."""
    from ml import pipeline as ml_pipeline

    return ml_pipeline.analyse_batch(images, genders=genders, parts=get_parts(),
                                     min_confidence=settings.floors())


def current_versions():
    """``{"pose": ..., "gender": ..., "detector": ..., "embedder": ...}`` of the configured parts."""
    return {str(key): str(value) for key, value in get_parts().versions().items()}


def stale_versions(stored, current):
    """The parts whose version in ``stored`` (an analysis' ``model_versions``) differs from ``current``."""
    stored = stored or {}
    stale = {name for name, version in stored.items() if name in current and current[name] != version}
    # the colour reader runs on every image: an analysis without its version was made before colours were read
    stale |= {name for name in ("colour", "kind_head") if name in current and name not in stored}
    # the category head checks detections: an analysis that ran the detector without it is stale
    if "category_head" in current and "detector" in stored and "category_head" not in stored:
        stale.add("category_head")
    return sorted(stale)
