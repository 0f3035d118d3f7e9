"""Look analysis for "Buy Me That Look": plain Python + Keras, never Django.

Public names are imported lazily so that ``import ml`` stays cheap and never loads TensorFlow
(a Celery prefork worker must not load TensorFlow before it forks)::

    from ml import load_image, ImageError      # PIL + numpy only
    from ml import analyse, Analysis, Article  # the pipeline; models load on first use
"""
import importlib

_LAZY = {
    "ImageError": "ml.images",
    "load_image": "ml.images",
    "analyse": "ml.pipeline",
    "Analysis": "ml.pipeline",
    "Article": "ml.pipeline",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ml' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
