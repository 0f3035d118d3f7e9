"""The one look-analysis pipeline of this process, built lazily from ``BUY_THE_LOOK["PIPELINE"]``.

Nothing here imports TensorFlow at import time: the ``ml`` modules (and their weights) are loaded on the
first analysis, i.e. in a Celery worker's child process after the fork, or in the web process on the first
search by photo.
"""
import threading

from .conf import DEFAULTS, settings

PART_NAMES = ("pose", "gender", "detector", "embedder")

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

    configured = settings.PIPELINE
    if dict(configured) == dict(DEFAULTS["PIPELINE"]) and hasattr(ml_pipeline, "default_parts"):
        return ml_pipeline.default_parts()
    instances = {name: settings.part(name)() for name in PART_NAMES}
    return ml_pipeline.Parts(**instances)


def reset():
    """Forget the parts (tests that swap ``PIPELINE``; the next analysis builds them again)."""
    global _parts
    with _lock:
        _parts = None


def analyse(image, *, gender=None, detect=None):
    """Run ``ml.pipeline.analyse`` with this process's parts; ``image`` is a PIL image, bytes or a path."""
    from ml import pipeline as ml_pipeline

    return ml_pipeline.analyse(image, gender=gender or None, parts=get_parts(), detect=detect)


def current_versions():
    """``{"pose": ..., "detector": ..., "embedder": ..., "gender": ...}`` of the configured parts."""
    parts = get_parts()
    versions = getattr(parts, "versions", None)
    if callable(versions):
        versions = versions()
    if isinstance(versions, dict):
        return {str(key): str(value) for key, value in versions.items()}
    result = {}
    for name in PART_NAMES:
        part = getattr(parts, name, None)
        version = getattr(part, "version", None) or getattr(part, "model_version", None)
        if callable(version):
            version = version()
        if version is not None:
            result[name] = str(version)
    return result


def embed_images(images):
    """Whole-image embeddings of several PIL images in one batch (catalogue photos), as float32 rows."""
    parts = get_parts()
    embedder = parts.embedder
    for method in ("embed_images", "embed_batch", "embed"):
        if hasattr(embedder, method):
            return getattr(embedder, method)(list(images))
    raise AttributeError("the configured embedder has no batch embedding method")
